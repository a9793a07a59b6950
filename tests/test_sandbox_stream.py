"""The event source mapping emulation: Lambda's Kinesis event, batching, partial failures, bisect, retries, age.

GIVEN records from a shard and a handler host that succeeds, fails or reports item failures, WHEN the mapping
delivers them, THEN the handler sees what Lambda would send and every record ends processed exactly once or given up
with its metadata on the on-failure queue.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.sandbox_fixtures import wait_for
from tools.sandbox import collect_api
from tools.sandbox.localstack import LocalStack
from tools.sandbox.stream_consumer import (
    RECORD_AGE_EXCEEDED,
    RETRIES_EXHAUSTED,
    BatchDelivery,
    MappingConfig,
    SqsDestination,
    StreamConsumer,
    failed_item_ids,
    kinesis_mapping,
    lambda_record,
)

STREAM_ARN = "arn:aws:kinesis:eu-west-1:000000000000:stream/clicks"
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:000000000000:function:event-processor"
NOW = 1_800_000_000.0


@dataclass
class Result:
    payload: Any = None
    function_error: str | None = None
    request_id: str = "req-1"


@dataclass
class FakeHost:
    """Answers with ``behaviour(sequence numbers of the batch)``; remembers every invocation."""

    behaviour: Callable[[list[str]], Result] = lambda _: Result()
    invocations: list[list[str]] = field(default_factory=list)
    events: list[Mapping[str, Any]] = field(default_factory=list)

    def invoke(self, event: Mapping[str, Any]) -> Result:
        sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        self.invocations.append(sequence)
        self.events.append(event)
        return self.behaviour(sequence)


@dataclass
class FakeDestination:
    messages: list[Mapping[str, Any]] = field(default_factory=list)

    def send(self, message: Mapping[str, Any]) -> None:
        self.messages.append(message)


def records(count: int, arrival: float = NOW - 5) -> list[dict[str, Any]]:
    return [{"SequenceNumber": str(49_000_000_000_000 + i), "PartitionKey": f"s-{i % 2}",
             "Data": json.dumps({"v": 1, "event": {"eventId": f"e-{i}"}}).encode(),
             "ApproximateArrivalTimestamp": datetime.fromtimestamp(arrival + i / 1000, UTC)} for i in range(count)]


def seq(batch: Sequence[Mapping[str, Any]], *indexes: int) -> list[str]:
    return [batch[i]["SequenceNumber"] for i in indexes]


def delivery(host: FakeHost, destination: FakeDestination | None = None, **settings: Any) -> BatchDelivery:
    config = MappingConfig(stream_arn=STREAM_ARN, function_arn=FUNCTION_ARN, **settings)
    return BatchDelivery(config=config, host=host, destination=destination, region="eu-west-1", now=lambda: NOW)


def failing(*poison: str, error: str = "Unhandled") -> Callable[[list[str]], Result]:
    return lambda batch: Result(function_error=error) if set(batch) & set(poison) else Result()


# --- the event --------------------------------------------------------------------------------------------------------

def test_the_handler_receives_lambdas_kinesis_event() -> None:
    [record] = records(1)

    event = lambda_record(record, "shardId-000000000001", STREAM_ARN, "eu-west-1", "arn:aws:iam::0:role/r")

    assert event == {
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "s-0", "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode(), "approximateArrivalTimestamp": NOW - 5},
        "eventSource": "aws:kinesis", "eventVersion": "1.0",
        "eventID": f"shardId-000000000001:{record['SequenceNumber']}", "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::0:role/r", "awsRegion": "eu-west-1", "eventSourceARN": STREAM_ARN}


def test_a_successful_batch_is_one_invocation() -> None:
    host, batch = FakeHost(), records(4)

    report = delivery(host).deliver("shard-1", batch)

    assert host.invocations == [seq(batch, 0, 1, 2, 3)]
    assert (report.invocations, report.delivered, report.discarded) == (1, 4, [])


# --- ReportBatchItemFailures ------------------------------------------------------------------------------------------

def test_reported_item_failures_resume_from_the_lowest_failed_sequence_number() -> None:
    batch = records(6)
    replies = iter([Result({"batchItemFailures": [{"itemIdentifier": s} for s in seq(batch, 4, 2)]}), Result()])
    host = FakeHost(lambda _: next(replies))

    report = delivery(host, report_batch_item_failures=True).deliver("shard-1", batch)

    assert host.invocations == [seq(batch, 0, 1, 2, 3, 4, 5), seq(batch, 2, 3, 4, 5)]
    assert report.delivered == 6 and report.discarded == []


@pytest.mark.parametrize("reply", [{"batchItemFailures": [{"itemIdentifier": "999"}]},
                                   {"batchItemFailures": [{"itemIdentifier": ""}]},
                                   {"batchItemFailures": [{}]}, {"batchItemFailures": "all"}, ["not", "a", "map"]],
                         ids=["unknown id", "empty id", "no id", "not a list", "not an object"])
def test_an_invalid_failure_reply_retries_the_whole_batch(reply: Any) -> None:
    batch = records(3)
    replies = iter([Result(reply), Result()])
    host = FakeHost(lambda _: next(replies))

    delivery(host, report_batch_item_failures=True).deliver("shard-1", batch)

    assert host.invocations == [seq(batch, 0, 1, 2)] * 2


@pytest.mark.parametrize("reply", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_replies_without_failures_are_success(reply: Any) -> None:
    assert failed_item_ids(reply, records(2)) == []


def test_item_failures_are_ignored_when_the_mapping_does_not_report_them() -> None:
    batch = records(3)
    host = FakeHost(lambda _: Result({"batchItemFailures": [{"itemIdentifier": batch[0]["SequenceNumber"]}]}))

    report = delivery(host, report_batch_item_failures=False).deliver("shard-1", batch)

    assert len(host.invocations) == 1 and report.delivered == 3


def test_item_failures_that_never_clear_end_on_the_failure_queue_after_the_retries() -> None:
    batch, destination = records(4), FakeDestination()
    host = FakeHost(lambda b: Result({"batchItemFailures": [{"itemIdentifier": batch[2]["SequenceNumber"]}]}))

    report = delivery(host, destination, report_batch_item_failures=True, maximum_retry_attempts=2
                      ).deliver("shard-1", batch)

    assert host.invocations == [seq(batch, 0, 1, 2, 3)] + [seq(batch, 2, 3)] * 2
    assert report.delivered == 2 and report.discarded == [(RETRIES_EXHAUSTED, 2)]
    [message] = destination.messages
    assert message["KinesisBatchInfo"]["startSequenceNumber"] == batch[2]["SequenceNumber"]
    assert message["responseContext"]["functionError"] is None


# --- function errors: bisect, retries, on-failure destination -------------------------------------------------------

def test_a_function_error_bisects_until_the_poison_record_is_alone_then_gives_it_up() -> None:
    batch, destination = records(4), FakeDestination()
    poison = batch[2]["SequenceNumber"]
    host = FakeHost(failing(poison))

    report = delivery(host, destination, bisect_on_function_error=True, maximum_retry_attempts=2
                      ).deliver("shard-7", batch)

    # splits do not count as retries: the poison record alone is tried once and retried twice, in shard order
    assert host.invocations == [seq(batch, 0, 1, 2, 3), seq(batch, 0, 1), seq(batch, 2, 3), *[seq(batch, 2)] * 3,
                                seq(batch, 3)]
    assert report.delivered == 3 and report.discarded == [(RETRIES_EXHAUSTED, 1)]
    [message] = destination.messages
    assert message["requestContext"] == {"requestId": "req-1", "functionArn": FUNCTION_ARN,
                                         "condition": RETRIES_EXHAUSTED, "approximateInvokeCount": 5}
    assert message["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST",
                                          "functionError": "Unhandled"}
    assert message["KinesisBatchInfo"] == {
        "shardId": "shard-7", "startSequenceNumber": poison, "endSequenceNumber": poison,
        "approximateArrivalOfFirstRecord": "2027-01-15T07:59:55.002Z",
        "approximateArrivalOfLastRecord": "2027-01-15T07:59:55.002Z", "batchSize": 1, "streamArn": STREAM_ARN}
    assert "Records" not in json.dumps(message) and "eventId" not in json.dumps(message)  # metadata only


def test_without_bisect_the_whole_batch_is_retried_then_given_up() -> None:
    batch, destination = records(3), FakeDestination()
    host = FakeHost(failing(batch[1]["SequenceNumber"], error="Sandbox.Timedout"))

    report = delivery(host, destination, maximum_retry_attempts=1).deliver("shard-1", batch)

    assert host.invocations == [seq(batch, 0, 1, 2)] * 2
    assert report.delivered == 0 and report.discarded == [(RETRIES_EXHAUSTED, 3)]
    assert destination.messages[0]["KinesisBatchInfo"]["batchSize"] == 3
    assert destination.messages[0]["responseContext"]["functionError"] == "Sandbox.Timedout"


def test_zero_retries_gives_up_after_the_first_failure() -> None:
    batch, destination = records(2), FakeDestination()

    delivery(FakeHost(failing(*seq(batch, 0, 1))), destination, maximum_retry_attempts=0).deliver("s", batch)

    assert [m["requestContext"]["approximateInvokeCount"] for m in destination.messages] == [1]


def test_unbounded_retries_continue_until_the_function_recovers() -> None:
    batch, outcomes = records(2), iter([Result(function_error="Unhandled")] * 5 + [Result()])
    host = FakeHost(lambda _: next(outcomes))

    report = delivery(host, FakeDestination(), maximum_retry_attempts=-1).deliver("s", batch)

    assert len(host.invocations) == 6 and report.delivered == 2 and report.discarded == []


def test_given_up_records_without_a_destination_are_only_counted() -> None:
    batch = records(1)

    report = delivery(FakeHost(failing(*seq(batch, 0))), None, maximum_retry_attempts=0).deliver("s", batch)

    assert report.discarded == [(RETRIES_EXHAUSTED, 1)]


# --- record age -------------------------------------------------------------------------------------------------------

def test_records_older_than_the_maximum_age_are_given_up_without_an_invocation() -> None:
    old, fresh = records(2, arrival=NOW - 100), records(1, arrival=NOW - 1)
    fresh[0]["SequenceNumber"] = "49000000000000099"
    host, destination = FakeHost(), FakeDestination()

    report = delivery(host, destination, maximum_record_age_seconds=60).deliver("s", [*old, *fresh])

    assert host.invocations == [seq(fresh, 0)]
    assert report.discarded == [(RECORD_AGE_EXCEEDED, 2)]
    [message] = destination.messages
    assert message["requestContext"]["condition"] == RECORD_AGE_EXCEEDED
    assert message["requestContext"]["approximateInvokeCount"] == 0 and "responseContext" not in message


def test_records_that_expire_while_being_retried_are_given_up() -> None:
    batch, clock = records(2), [NOW]
    host = FakeHost(lambda _: (clock.__setitem__(0, clock[0] + 40), Result(function_error="Unhandled"))[1])
    config = MappingConfig(stream_arn=STREAM_ARN, function_arn=FUNCTION_ARN, maximum_record_age_seconds=60)
    destination = FakeDestination()

    report = BatchDelivery(config=config, host=host, destination=destination, region="eu-west-1",
                           now=lambda: clock[0]).deliver("s", batch)

    assert len(host.invocations) == 2  # at +0 s and +40 s; at +80 s the records are older than 60 s
    assert report.discarded == [(RECORD_AGE_EXCEEDED, 2)]


# --- the synthesized mapping ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthesis() -> Any:
    return collect_api.synthesize_sandbox(["http://localhost:8765"])


def test_the_settings_come_from_the_synthesized_mapping(synthesis: Any) -> None:
    config, function = kinesis_mapping(synthesis)
    [mapping] = synthesis.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    inputs = mapping.inputs

    assert function.inputs["handler"] == "event_processor.handler"
    assert config.batch_size == int(inputs["batchSize"])
    assert config.batching_window_seconds == inputs["maximumBatchingWindowInSeconds"]
    assert config.maximum_retry_attempts == int(inputs["maximumRetryAttempts"])
    assert config.maximum_record_age_seconds == int(inputs["maximumRecordAgeInSeconds"])
    assert config.bisect_on_function_error and config.report_batch_item_failures
    assert config.on_failure_arn == inputs["destinationConfig"]["onFailure"]["destinationArn"]
    assert config.starting_position == "TRIM_HORIZON"


def test_a_program_without_a_kinesis_mapping_is_refused(synthesis: Any) -> None:
    from tools.synth import Synthesis

    stripped = Synthesis(stack="x", resources=[r for r in synthesis.resources
                                               if r.type != "aws:lambda/eventSourceMapping:EventSourceMapping"])

    with pytest.raises(LookupError, match="one Kinesis event source mapping"):
        kinesis_mapping(stripped)


# --- polling a LocalStack stream --------------------------------------------------------------------------------------

@pytest.fixture
def stream(localstack: LocalStack, request: pytest.FixtureRequest) -> Iterator[str]:
    kinesis = localstack.client("kinesis")
    name = f"esm-{request.node.name[:40].replace('[', '-').replace(']', '')}-{int(time.time() * 1000) % 100000}"
    kinesis.create_stream(StreamName=name, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    try:
        yield name
    finally:
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


@pytest.fixture
def failure_queue(localstack: LocalStack) -> Iterator[str]:
    sqs = localstack.client("sqs")
    url: str = sqs.create_queue(QueueName=f"esm-failures-{int(time.time() * 1000) % 100000}")["QueueUrl"]
    try:
        yield url
    finally:
        sqs.delete_queue(QueueUrl=url)


def put(localstack: LocalStack, stream: str, keys: Sequence[str]) -> list[str]:
    kinesis = localstack.client("kinesis")
    return [kinesis.put_record(StreamName=stream, PartitionKey=key, Data=json.dumps({"key": key, "n": n}).encode()
                               )["SequenceNumber"] for n, key in enumerate(keys)]


def run_consumer(localstack: LocalStack, stream: str, host: FakeHost, destination: Any,
                 **settings: Any) -> StreamConsumer:
    arn = localstack.client("kinesis").describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"]
    config = MappingConfig(stream_arn=arn, function_arn=FUNCTION_ARN, **settings)
    return StreamConsumer(localstack.client("kinesis"), stream,
                          BatchDelivery(config=config, host=host, destination=destination, region="eu-west-1"),
                          poll_seconds=0.05).start()


def test_every_record_of_every_shard_reaches_the_handler_once_in_shard_order(
        localstack: LocalStack, stream: str) -> None:
    host = FakeHost()
    sequence_numbers = put(localstack, stream, [f"session-{i % 5}" for i in range(12)])
    consumer = run_consumer(localstack, stream, host, None, batch_size=3)
    try:
        wait_for(lambda: sum(map(len, host.invocations)) >= 12, what="12 records delivered")
    finally:
        consumer.stop()

    delivered = [s for batch in host.invocations for s in batch]
    assert sorted(delivered) == sorted(sequence_numbers) and len(delivered) == 12
    assert max(map(len, host.invocations)) <= 3
    events = [r for e in host.events for r in e["Records"]]
    by_key: dict[str, list[int]] = {}
    for record in events:
        body = json.loads(base64.b64decode(record["kinesis"]["data"]))
        by_key.setdefault(body["key"], []).append(body["n"])
        assert record["eventSourceARN"].endswith(f"/{stream}") and record["eventID"].startswith("shardId-")
    assert all(ns == sorted(ns) for ns in by_key.values())  # order per partition key kept
    assert consumer.stats.delivered == 12 and consumer.stats.errors == []


def test_a_poison_record_ends_on_the_sqs_failure_queue_and_the_rest_is_delivered(
        localstack: LocalStack, stream: str, failure_queue: str) -> None:
    sequence_numbers = put(localstack, stream, ["same-session"] * 4)
    host = FakeHost(failing(sequence_numbers[1]))
    sqs = localstack.client("sqs")
    consumer = run_consumer(localstack, stream, host, SqsDestination(sqs, failure_queue), batch_size=4,
                            bisect_on_function_error=True, maximum_retry_attempts=1)
    try:
        messages = wait_for(lambda: sqs.receive_message(QueueUrl=failure_queue, WaitTimeSeconds=1).get("Messages"),
                            what="the failure queue's message")
        wait_for(lambda: consumer.stats.delivered == 3, what="the other records delivered")
    finally:
        consumer.stop()

    [message] = [json.loads(m["Body"]) for m in messages]
    assert message["KinesisBatchInfo"]["startSequenceNumber"] == sequence_numbers[1]
    assert message["KinesisBatchInfo"]["batchSize"] == 1
    assert message["requestContext"]["condition"] == RETRIES_EXHAUSTED
    delivered_ok = [s for batch in host.invocations if sequence_numbers[1] not in batch for s in batch]
    assert sorted(delivered_ok) == sorted(sequence_numbers[:1] + sequence_numbers[2:])


def test_a_partial_batch_waits_for_the_batching_window(localstack: LocalStack, stream: str) -> None:
    host = FakeHost()
    consumer = run_consumer(localstack, stream, host, None, batch_size=50, batching_window_seconds=1.5)
    try:
        began = time.monotonic()
        put(localstack, stream, ["k"] * 3)
        wait_for(lambda: host.invocations, what="the window's invocation")
        waited = time.monotonic() - began
    finally:
        consumer.stop()

    assert host.invocations and len(host.invocations[0]) == 3
    assert waited >= 1.4
