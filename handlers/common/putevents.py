"""Kinesis records → Amazon Personalize PutEvents, so recommendations react to what a reader does now.

Events are grouped by (userId, sessionId) in stream order, sent ≤ 10 per call, groups concurrently. Transient errors
are retried with exponential backoff and full jitter while the invocation's time budget lasts. Every event of a
batch ends in exactly one outcome: sent, skipped (no event tracker yet: the event is in S3 already), reported for
retry (the event source mapping retries it), or dead-lettered with its payload (it can never succeed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError, HTTPClientError

from common.bots import is_bot
from common.events import ClickEvent, InvalidRecordError, decode_record
from common.interactions import interaction_seconds
from common.retry import backoff_delay, is_transient
from common.ssm import CachedParameter

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_CALL = 10  # PutEvents' limit
MAX_DEAD_LETTER_DATA = 200_000  # bytes of record data kept in a dead letter (SQS messages hold at most 256 KiB)


class Outcome(Enum):
    SENT = "sent"
    SKIPPED = "skipped"
    BOT = "bot"  # a known crawler's or automation's event: never sent (it is in S3, and training drops it too)
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class StreamRecord:
    sequence_number: str
    partition_key: str
    data: str
    arrival: float | None = None

    @classmethod
    def from_lambda(cls, record: Mapping[str, Any]) -> StreamRecord:
        kinesis = record.get("kinesis") or {}
        return cls(sequence_number=str(kinesis.get("sequenceNumber", "")),
                   partition_key=str(kinesis.get("partitionKey", "")), data=str(kinesis.get("data", "")),
                   arrival=kinesis.get("approximateArrivalTimestamp"))


@dataclass(frozen=True)
class Decoded:
    record: StreamRecord
    event: ClickEvent


@dataclass(frozen=True)
class DeadLetter:
    record: StreamRecord
    reason: str

    def message(self) -> str:
        data = self.record.data
        body: dict[str, Any] = {
            "source": "event-processor", "reason": self.reason,
            "sequenceNumber": self.record.sequence_number, "partitionKey": self.record.partition_key,
            "approximateArrivalTimestamp": self.record.arrival,
            "dataSha256": hashlib.sha256(data.encode()).hexdigest(),
        }
        if len(data) > MAX_DEAD_LETTER_DATA:
            body["data"], body["dataTruncated"] = data[:MAX_DEAD_LETTER_DATA], True
        else:
            body["data"] = data
        return json.dumps(body)


@dataclass
class GroupResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def merge(self, other: GroupResult) -> None:
        self.outcomes.update(other.outcomes)
        self.dead_letters += other.dead_letters
        self.calls += other.calls
        self.retries += other.retries
        self.latencies_ms += other.latencies_ms


@dataclass
class BatchReport(GroupResult):
    def count(self, outcome: Outcome) -> int:
        return sum(1 for o in self.outcomes.values() if o is outcome)

    def batch_item_failures(self) -> list[dict[str, str]]:
        return [{"itemIdentifier": seq} for seq, o in self.outcomes.items() if o is Outcome.RETRY]


def group_events(decoded: Sequence[Decoded]) -> list[list[Decoded]]:
    """Events of one (userId, sessionId) together, in stream order; groups in order of first appearance."""
    groups: dict[tuple[str | None, str], list[Decoded]] = {}
    for item in decoded:
        groups.setdefault((item.event.user_id, item.event.session_id), []).append(item)
    return list(groups.values())


def chunked(items: Sequence[Decoded], size: int = MAX_EVENTS_PER_CALL) -> Iterator[Sequence[Decoded]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def put_events_event(event: ClickEvent) -> dict[str, Any]:
    """One ``eventList`` entry of PutEvents, field by field."""
    entry: dict[str, Any] = {
        "eventId": event.event_id,
        "eventType": event.event_type,
        "itemId": event.item_id,
        # Whole seconds, as in the bulk CSV: Personalize then keeps an event it gets both ways once.
        "sentAt": datetime.fromtimestamp(interaction_seconds(event), tz=UTC),
    }
    if event.recommendation_id:
        entry["recommendationId"] = event.recommendation_id
    if event.impression:
        entry["impression"] = list(event.impression)
    if event.properties:
        entry["properties"] = json.dumps(event.properties, separators=(",", ":"), ensure_ascii=False)
    return entry


class SqsDeadLetters:
    """Dead letters to an SQS queue, 10 per call; returns the sequence numbers that could not be dead-lettered."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, letters: Sequence[DeadLetter]) -> set[str]:
        failed: set[str] = set()
        for start in range(0, len(letters), 10):
            batch = letters[start:start + 10]
            entries = [{"Id": str(i), "MessageBody": letter.message()} for i, letter in enumerate(batch)]
            try:
                response = self._client.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, HTTPClientError):
                logger.exception("dead-letter queue unavailable; the records will be retried")
                failed.update(letter.record.sequence_number for letter in batch)
                continue
            failed.update(batch[int(f["Id"])].record.sequence_number for f in response.get("Failed", []))
        return failed


class EventProcessor:
    def __init__(self, *, events_client: Any, tracking_id: CachedParameter, dead_letters: SqsDeadLetters,
                 event_types: tuple[str, ...], executor: Executor, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random, base_delay: float = 0.05, max_delay: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._events = events_client
        self._tracking_id = tracking_id
        self._dead_letters = dead_letters
        self._event_types = event_types
        self._executor = executor
        self._sleep = sleep
        self._jitter = jitter
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock = clock

    def process(self, records: Sequence[Mapping[str, Any]], budget_seconds: float) -> BatchReport:
        """Deliver a Lambda Kinesis batch; retries stop ``budget_seconds`` from now."""
        deadline = self._clock() + budget_seconds
        report = BatchReport()
        decoded: list[Decoded] = []
        for raw in records:
            record = StreamRecord.from_lambda(raw)
            try:
                event = decode_record(record.data, self._event_types)
            except InvalidRecordError as error:
                report.dead_letters.append(DeadLetter(record, str(error)))
                continue
            if is_bot(event.user_agent):
                report.outcomes[record.sequence_number] = Outcome.BOT
            else:
                decoded.append(Decoded(record, event))

        if decoded:
            try:
                tracking_id = self._tracking_id.get()
            except (ClientError, HTTPClientError):
                logger.exception("cannot read the tracking id from SSM; the batch will be retried")
                report.outcomes.update({d.record.sequence_number: Outcome.RETRY for d in decoded})
                tracking_id = None
            else:
                if tracking_id is None:  # no training has published an event tracker yet
                    report.outcomes.update({d.record.sequence_number: Outcome.SKIPPED for d in decoded})
            if tracking_id is not None:
                futures = [self._executor.submit(self._send_group, group, tracking_id, deadline)
                           for group in group_events(decoded)]
                for future in futures:
                    report.merge(future.result())

        undeliverable = self._dead_letters.send(report.dead_letters) if report.dead_letters else set()
        for letter in report.dead_letters:
            seq = letter.record.sequence_number
            report.outcomes[seq] = Outcome.RETRY if seq in undeliverable else Outcome.DEAD_LETTERED
        return report

    def _send_group(self, group: Sequence[Decoded], tracking_id: str, deadline: float) -> GroupResult:
        result = GroupResult()
        for index, chunk in enumerate(chunked(group)):
            self._send_chunk(chunk, tracking_id, deadline, result)
            if any(result.outcomes.get(d.record.sequence_number) is Outcome.RETRY for d in chunk):
                # Keep the session's order: what follows a failed call waits for the retry too.
                for later in group[(index + 1) * MAX_EVENTS_PER_CALL:]:
                    result.outcomes[later.record.sequence_number] = Outcome.RETRY
                break
        return result

    def _send_chunk(self, chunk: Sequence[Decoded], tracking_id: str, deadline: float,
                    result: GroupResult) -> None:
        first = chunk[0].event
        request: dict[str, Any] = {"trackingId": tracking_id, "sessionId": first.session_id,
                                   "eventList": [put_events_event(d.event) for d in chunk]}
        if first.user_id:
            request["userId"] = first.user_id
        attempt = 0
        while True:
            started = self._clock()
            try:
                result.calls += 1
                self._events.put_events(**request)
            except ClientError as error:
                result.latencies_ms.append((self._clock() - started) * 1000)
                code = error.response.get("Error", {}).get("Code", "")
                if code == "InvalidInputException":
                    self._isolate_invalid(chunk, tracking_id, deadline, result, error)
                    return
                if not is_transient(error):
                    logger.error("PutEvents failed (%s); the events will be retried", code)
                    self._tracking_id.invalidate()  # the tracker may have been replaced
                    self._mark(chunk, Outcome.RETRY, result)
                    return
            except HTTPClientError:
                result.latencies_ms.append((self._clock() - started) * 1000)
            else:
                result.latencies_ms.append((self._clock() - started) * 1000)
                self._mark(chunk, Outcome.SENT, result)
                return
            delay = backoff_delay(attempt, self._jitter(), self._base_delay, self._max_delay)
            if self._clock() + delay >= deadline:
                self._mark(chunk, Outcome.RETRY, result)
                return
            self._sleep(delay)
            attempt += 1
            result.retries += 1

    def _isolate_invalid(self, chunk: Sequence[Decoded], tracking_id: str, deadline: float, result: GroupResult,
                         error: ClientError) -> None:
        """Personalize refused a call: send its events one by one so only the invalid ones are dead-lettered."""
        if len(chunk) == 1:
            message = error.response.get("Error", {}).get("Message", "")
            result.dead_letters.append(DeadLetter(chunk[0].record, f"rejected by Personalize: {message}"))
            return
        for index, item in enumerate(chunk):
            self._send_chunk([item], tracking_id, deadline, result)
            if result.outcomes.get(item.record.sequence_number) is Outcome.RETRY:
                self._mark(chunk[index + 1:], Outcome.RETRY, result)
                return

    @staticmethod
    def _mark(chunk: Sequence[Decoded], outcome: Outcome, result: GroupResult) -> None:
        for item in chunk:
            result.outcomes[item.record.sequence_number] = outcome
