"""Lambda's Kinesis event source mapping, emulated: poll a (LocalStack) stream and invoke a handler host.

The mapping's settings come from the synthesized ``aws:lambda/eventSourceMapping:EventSourceMapping``:

- each shard is read with GetShardIterator/GetRecords from ``startingPosition``; records are batched up to
  ``batchSize``, waiting at most ``maximumBatchingWindowInSeconds`` after the first buffered record;
- the handler receives Lambda's Kinesis event (``Records[].kinesis.{kinesisSchemaVersion, partitionKey,
  sequenceNumber, data (base64), approximateArrivalTimestamp}``, ``eventSource``, ``eventSourceARN``, ``eventID``,
  ``eventName``, ``eventVersion``, ``invokeIdentityArn``, ``awsRegion``); a shard's next batch waits for its current
  one (the shard is blocked while a batch is retried, as in Lambda);
- with ``ReportBatchItemFailures`` a reply naming failed sequence numbers checkpoints at the lowest one and only the
  records from there are retried; a reply naming an unknown or empty identifier fails the whole batch;
- a function error (the handler raised or timed out) splits the batch in two when ``bisectBatchOnFunctionError``
  (each half retried on its own; a split does not count as a retry), otherwise the batch is retried whole;
- ``maximumRetryAttempts`` bounds the retries of every record (-1: until it expires), ``maximumRecordAgeInSeconds``
  drops records older than that before an invocation (-1: never); what is given up goes, as metadata only (shard,
  sequence range, arrival times, batch size, condition ``RetryAttemptsExhausted`` or ``RecordAgeExceeded``), to the
  on-failure destination (an SQS queue), like Lambda's invocation records.

Not emulated: ``parallelizationFactor`` (one batch per shard at a time; order per partition key is kept either
way), the 6 MB invocation payload limit, tumbling windows and filter criteria, resharding.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

LOG = logging.getLogger(__name__)
MAPPING_TYPE = "aws:lambda/eventSourceMapping:EventSourceMapping"
FUNCTION_TYPE = "aws:lambda/function:Function"
RETRIES_EXHAUSTED = "RetryAttemptsExhausted"
RECORD_AGE_EXCEEDED = "RecordAgeExceeded"


class InvokeOutcome(Protocol):
    @property
    def payload(self) -> Any: ...

    @property
    def function_error(self) -> str | None: ...


class FunctionHost(Protocol):
    def invoke(self, event: Mapping[str, Any]) -> InvokeOutcome: ...


class FailureDestination(Protocol):
    def send(self, message: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class MappingConfig:
    stream_arn: str
    function_arn: str
    batch_size: int = 100
    batching_window_seconds: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    bisect_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    report_batch_item_failures: bool = False
    on_failure_arn: str | None = None

    @classmethod
    def from_resource(cls, inputs: Mapping[str, Any]) -> MappingConfig:
        on_failure = ((inputs.get("destinationConfig") or {}).get("onFailure") or {}).get("destinationArn")
        return cls(
            stream_arn=str(inputs["eventSourceArn"]),
            function_arn=str(inputs["functionName"]),
            batch_size=int(inputs.get("batchSize", 100)),
            batching_window_seconds=float(inputs.get("maximumBatchingWindowInSeconds", 0)),
            starting_position=str(inputs.get("startingPosition", "TRIM_HORIZON")),
            bisect_on_function_error=bool(inputs.get("bisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(inputs.get("maximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(inputs.get("maximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in (inputs.get("functionResponseTypes") or []),
            on_failure_arn=str(on_failure) if on_failure else None,
        )


def kinesis_mapping(synthesis: Any) -> tuple[MappingConfig, Any]:
    """The one event source mapping reading a Kinesis stream, and the function resource it invokes."""
    mappings = [m for m in synthesis.of_type(MAPPING_TYPE)
                if ":kinesis:" in str(m.inputs.get("eventSourceArn", ""))]
    if len(mappings) != 1:
        raise LookupError(f"expected one Kinesis event source mapping, found {len(mappings)}")
    config = MappingConfig.from_resource(mappings[0].inputs)
    functions = [f for f in synthesis.of_type(FUNCTION_TYPE)
                 if config.function_arn in (f.outputs.get("arn"), f.inputs.get("name"), f.outputs.get("name"))]
    if len(functions) != 1:
        raise LookupError(f"expected one function for the mapping's {config.function_arn}, found {len(functions)}")
    return config, functions[0]


# --- the event Lambda sends -------------------------------------------------------------------------------------------

def _arrival(record: Mapping[str, Any]) -> float:
    value = record["ApproximateArrivalTimestamp"]
    return value.timestamp() if isinstance(value, datetime) else float(value)


def lambda_record(record: Mapping[str, Any], shard_id: str, stream_arn: str, region: str,
                  identity_arn: str) -> dict[str, Any]:
    data = record["Data"]
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": record["PartitionKey"],
            "sequenceNumber": record["SequenceNumber"],
            "data": base64.b64encode(data if isinstance(data, bytes) else str(data).encode()).decode("ascii"),
            "approximateArrivalTimestamp": round(_arrival(record), 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{record['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": identity_arn,
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    }


def failed_item_ids(payload: Any, batch: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """Sequence numbers a ReportBatchItemFailures reply names; None when the reply fails the whole batch."""
    if payload is None or payload == {} or payload == "":
        return []
    if not isinstance(payload, Mapping):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    known = {r["SequenceNumber"] for r in batch}
    ids: list[str] = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        ids.append(identifier)
    return ids


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- one batch, retried as the mapping would --------------------------------------------------------------------------

@dataclass
class DeliveryReport:
    invocations: int = 0
    delivered: int = 0  # records the function processed successfully
    discarded: list[tuple[str, int]] = field(default_factory=list)  # (condition, records)


@dataclass
class _Part:
    batch: list[Mapping[str, Any]]
    retries: int = 0
    invokes: int = 0
    last_error: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchDelivery:
    config: MappingConfig
    host: FunctionHost
    destination: FailureDestination | None
    region: str
    identity_arn: str = "arn:aws:iam::000000000000:role/event-processor"
    now: Callable[[], float] = time.time
    retry_delay_seconds: float = 0.0
    stopping: threading.Event = field(default_factory=threading.Event)

    def deliver(self, shard_id: str, records: Sequence[Mapping[str, Any]]) -> DeliveryReport:
        """Invoke until every record is processed or given up; returns what happened.

        Each pending part carries its retry count and how many invocations its records took part in. A split (bisect)
        does not count towards the retry quota, as in Lambda; retries of a part keep the shard's order.
        """
        report = DeliveryReport()
        pending: deque[_Part] = deque([_Part(list(records))])
        while pending and not self.stopping.is_set():
            part = pending.popleft()
            part.batch = self._drop_expired(shard_id, part, report)
            if not part.batch:
                continue
            if self._exhausted(part.retries):
                self._give_up(shard_id, part, RETRIES_EXHAUSTED, report)
                continue
            if part.retries:
                self.stopping.wait(self.retry_delay_seconds)
            result = self.host.invoke({"Records": [lambda_record(r, shard_id, self.config.stream_arn, self.region,
                                                                 self.identity_arn) for r in part.batch]})
            report.invocations += 1
            error = {"requestId": getattr(result, "request_id", None), "functionError": result.function_error}
            invokes = part.invokes + 1
            if result.function_error is not None:
                if self.config.bisect_on_function_error and len(part.batch) > 1:
                    half = len(part.batch) // 2
                    pending.appendleft(_Part(part.batch[half:], part.retries, invokes, error))
                    pending.appendleft(_Part(part.batch[:half], part.retries, invokes, error))
                else:
                    pending.appendleft(_Part(part.batch, part.retries + 1, invokes, error))
                continue
            failed = failed_item_ids(result.payload, part.batch) if self.config.report_batch_item_failures else []
            if failed is None:  # an invalid partial-failure reply fails the whole batch
                pending.appendleft(_Part(part.batch, part.retries + 1, invokes, error))
                continue
            if not failed:
                report.delivered += len(part.batch)
                continue
            lowest = min(failed, key=int)  # the checkpoint: everything before it succeeded
            checkpoint = next(i for i, r in enumerate(part.batch) if r["SequenceNumber"] == lowest)
            report.delivered += checkpoint
            pending.appendleft(_Part(part.batch[checkpoint:], part.retries + 1, invokes, error))
        return report

    def _exhausted(self, attempts: int) -> bool:
        limit = self.config.maximum_retry_attempts
        return limit >= 0 and attempts > limit

    def _drop_expired(self, shard_id: str, part: _Part, report: DeliveryReport) -> list[Mapping[str, Any]]:
        limit = self.config.maximum_record_age_seconds
        if limit < 0:
            return part.batch
        cutoff = self.now() - limit
        expired = [r for r in part.batch if _arrival(r) < cutoff]
        if expired:
            self._give_up(shard_id, _Part(expired, part.retries, part.invokes, part.last_error), RECORD_AGE_EXCEEDED,
                          report)
        return [r for r in part.batch if _arrival(r) >= cutoff]

    def _give_up(self, shard_id: str, part: _Part, condition: str, report: DeliveryReport) -> None:
        batch, attempts, last_error = part.batch, part.invokes, part.last_error
        report.discarded.append((condition, len(batch)))
        LOG.warning("giving up %d records of %s (%s after %d invocations)", len(batch), shard_id, condition,
                    attempts)
        if self.destination is None:
            return
        message: dict[str, Any] = {
            "requestContext": {"requestId": last_error.get("requestId"), "functionArn": self.config.function_arn,
                               "condition": condition, "approximateInvokeCount": attempts},
            "version": "1.0",
            "timestamp": _iso(self.now()),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": batch[0]["SequenceNumber"],
                "endSequenceNumber": batch[-1]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(_arrival(batch[0])),
                "approximateArrivalOfLastRecord": _iso(_arrival(batch[-1])),
                "batchSize": len(batch),
                "streamArn": self.config.stream_arn,
            },
        }
        if attempts:
            message["responseContext"] = {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": last_error.get("functionError")}
        self.destination.send(message)


@dataclass
class SqsDestination:
    """An on-failure destination queue (metadata only, never the records)."""

    sqs: Any
    queue_url: str

    def send(self, message: Mapping[str, Any]) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))


# --- polling ----------------------------------------------------------------------------------------------------------

@dataclass
class ConsumerStats:
    invocations: int = 0
    delivered: int = 0
    discarded: int = 0
    read: int = 0
    errors: list[str] = field(default_factory=list)


class StreamConsumer:
    """One polling thread per shard; ``stop()`` ends them (a batch in flight finishes its current invocation)."""

    def __init__(self, kinesis: Any, stream_name: str, delivery: BatchDelivery, *, poll_seconds: float = 0.2) -> None:
        self.kinesis = kinesis
        self.stream_name = stream_name
        self.delivery = delivery
        self.poll_seconds = poll_seconds
        self.stats = ConsumerStats()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def config(self) -> MappingConfig:
        return self.delivery.config

    def start(self) -> StreamConsumer:
        shards = self.kinesis.list_shards(StreamName=self.stream_name)["Shards"]
        for shard in shards:
            thread = threading.Thread(target=self._run_shard, args=(shard["ShardId"],), daemon=True,
                                      name=f"esm-{shard['ShardId']}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 10) -> None:
        self.delivery.stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run_shard(self, shard_id: str) -> None:
        try:
            self._poll(shard_id)
        except Exception as error:  # reported; the other shards keep running
            if not self.delivery.stopping.is_set():
                LOG.exception("shard %s stopped", shard_id)
                with self._lock:
                    self.stats.errors.append(f"{shard_id}: {error}")

    def _poll(self, shard_id: str) -> None:
        stopping, config = self.delivery.stopping, self.config
        iterator: str | None = self.kinesis.get_shard_iterator(
            StreamName=self.stream_name, ShardId=shard_id,
            ShardIteratorType=config.starting_position)["ShardIterator"]
        buffer: list[Mapping[str, Any]] = []
        first_buffered = 0.0
        while iterator and not stopping.is_set():
            fetched: list[Mapping[str, Any]] = []
            if len(buffer) < config.batch_size:
                page = self.kinesis.get_records(ShardIterator=iterator, Limit=config.batch_size - len(buffer))
                fetched, iterator = page["Records"], page.get("NextShardIterator")
                if fetched and not buffer:
                    first_buffered = time.monotonic()
                buffer += fetched
                with self._lock:
                    self.stats.read += len(fetched)
            window_over = time.monotonic() - first_buffered >= config.batching_window_seconds
            if buffer and (len(buffer) >= config.batch_size or window_over):
                batch, buffer = buffer[:config.batch_size], buffer[config.batch_size:]
                first_buffered = time.monotonic()
                report = self.delivery.deliver(shard_id, batch)
                with self._lock:
                    self.stats.invocations += report.invocations
                    self.stats.delivered += report.delivered
                    self.stats.discarded += sum(n for _, n in report.discarded)
            elif not fetched:
                stopping.wait(self.poll_seconds)
