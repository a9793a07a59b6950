"""The real-time event processor: Kinesis batch → PutEvents, with every failure mode accounted for.

Personalize calls go through botocore's Stubber (which validates each request against the real service model) or
through a local fake endpoint over HTTP; SSM and SQS are moto.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from common.events import InvalidRecordError, decode_record
from common.putevents import EventProcessor, Outcome, SqsDeadLetters, group_events, put_events_event
from common.ssm import CachedParameter
from tools.fake_personalize import FakePersonalize, serve

REGION = "eu-west-1"
TYPES = ("view", "click", "read", "share")
TRACKING_PARAMETER = "/cp-dev-euw1/personalize/tracking-id"
TRACKING_ID = "3f1c0d3e-tracking"


# --- factories --------------------------------------------------------------------------------------------------------

def click(n: int = 0, *, session: str = "s-1", user: str | None = "u-1", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": f"e-{n}", "eventType": "click", "sessionId": session,
                             "itemId": f"post-{n}", "timestamp": 1_764_150_000_000 + n}
    if user is not None:
        event["userId"] = user
    event.update(overrides)
    return event


def envelope_data(event: Any) -> str:
    line = json.dumps({"v": 1, "event": event, "server": {"requestId": "r", "receivedAt": 1}})
    return base64.b64encode(line.encode()).decode()


def kinesis_record(seq: int, event: Any = None, *, data: str | None = None) -> dict[str, Any]:
    payload = data if data is not None else envelope_data(event)
    return {"eventSource": "aws:kinesis", "eventID": f"shardId-000000000000:{seq}",
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk", "sequenceNumber": str(seq),
                        "data": payload, "approximateArrivalTimestamp": 1764150000.5}}


def records_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [kinesis_record(i, e) for i, e in enumerate(events)]


def expected_call(events: list[dict[str, Any]]) -> dict[str, Any]:
    first = events[0]
    call: dict[str, Any] = {"trackingId": TRACKING_ID, "sessionId": first["sessionId"],
                            "eventList": [put_events_event(decode_record(envelope_data(e), TYPES)) for e in events]}
    if first.get("userId"):
        call["userId"] = first["userId"]
    return call


# --- fixtures ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture
def queue_url(aws: None) -> str:
    url: str = boto3.client("sqs").create_queue(QueueName="cp-dev-euw1-event-processor-dlq")["QueueUrl"]
    return url


@pytest.fixture
def tracker(aws: None) -> CachedParameter:
    boto3.client("ssm").put_parameter(Name=TRACKING_PARAMETER, Value=TRACKING_ID, Type="String")
    return CachedParameter(boto3.client("ssm"), TRACKING_PARAMETER, ttl_seconds=60)


@pytest.fixture
def events_client() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("personalize-events", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


Make = Callable[..., EventProcessor]


@pytest.fixture
def make(events_client: tuple[Any, Stubber], tracker: CachedParameter, queue_url: str, sleeps: Sleeps) -> Make:
    def build(client: Any = None, workers: int = 1, tracking: CachedParameter | None = None,
              dead_letter_url: str | None = None) -> EventProcessor:
        return EventProcessor(events_client=client or events_client[0], tracking_id=tracking or tracker,
                              dead_letters=SqsDeadLetters(boto3.client("sqs"), dead_letter_url or queue_url),
                              event_types=TYPES, executor=ThreadPoolExecutor(max_workers=workers),
                              sleep=sleeps, jitter=lambda: 0.5)

    return build


def dead_letters(queue_url: str) -> list[dict[str, Any]]:
    messages = boto3.client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def throttled(code: str = "ThrottlingException") -> dict[str, Any]:
    return {"service_error_code": code, "service_message": "Rate exceeded", "http_status_code": 400}


# --- mapping and batching ---------------------------------------------------------------------------------------------

def test_events_map_field_by_field_to_put_events() -> None:
    event = click(1, recommendationId="rid-1", impression=["post-1", "post-2"],
                  properties={"section": "sport", "premium": True})

    entry = put_events_event(decode_record(envelope_data(event), TYPES))

    assert entry == {"eventId": "e-1", "eventType": "click", "itemId": "post-1",
                     "sentAt": datetime.fromtimestamp(1_764_150_000, tz=UTC), "recommendationId": "rid-1",
                     "impression": ["post-1", "post-2"], "properties": '{"section":"sport","premium":true}'}


def test_a_session_of_12_events_goes_out_in_calls_of_10_and_2(make: Make,
                                                              events_client: tuple[Any, Stubber]) -> None:
    _, stubber = events_client
    events = [click(i) for i in range(12)]
    stubber.add_response("put_events", {}, expected_call(events[:10]))
    stubber.add_response("put_events", {}, expected_call(events[10:]))

    report = make().process(records_of(events), budget_seconds=30)

    assert report.count(Outcome.SENT) == 12
    assert report.calls == 2
    assert report.batch_item_failures() == []


def test_events_are_grouped_by_user_and_session_in_stream_order(make: Make,
                                                                 events_client: tuple[Any, Stubber]) -> None:
    _, stubber = events_client
    a1, b1, a2, anon = click(1, session="a"), click(2, session="b", user="u-2"), click(3, session="a"), \
        click(4, session="a", user=None)
    for group in ([a1, a2], [b1], [anon]):
        stubber.add_response("put_events", {}, expected_call(group))

    report = make().process(records_of([a1, b1, a2, anon]), budget_seconds=30)

    assert report.count(Outcome.SENT) == 4
    assert "userId" not in expected_call([anon])


def test_no_tracker_yet_skips_every_event_without_calling_personalize(make: Make, aws: None) -> None:
    missing = CachedParameter(boto3.client("ssm"), "/cp-dev-euw1/personalize/absent", ttl_seconds=60)

    report = make(tracking=missing).process(records_of([click(1), click(2)]), budget_seconds=30)

    assert report.count(Outcome.SKIPPED) == 2
    assert report.calls == 0
    assert report.batch_item_failures() == []


def test_ssm_failing_reports_the_whole_batch_for_retry(make: Make) -> None:
    class BrokenSsm:
        class exceptions:  # noqa: N801 - mirrors boto3's client.exceptions
            ParameterNotFound = KeyError

        def get_parameter(self, Name: str) -> dict[str, Any]:  # noqa: N803
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetParameter")

    report = make(tracking=CachedParameter(BrokenSsm(), TRACKING_PARAMETER, 60)).process(
        records_of([click(1), click(2)]), budget_seconds=30)

    assert report.batch_item_failures() == [{"itemIdentifier": "0"}, {"itemIdentifier": "1"}]


# --- failures ---------------------------------------------------------------------------------------------------------

def test_throttling_is_retried_with_jittered_backoff(make: Make, events_client: tuple[Any, Stubber],
                                                     sleeps: Sleeps) -> None:
    _, stubber = events_client
    events = [click(1)]
    stubber.add_client_error("put_events", **throttled(), expected_params=expected_call(events))
    stubber.add_client_error("put_events", service_error_code="ServiceUnavailable", http_status_code=503,
                             expected_params=expected_call(events))
    stubber.add_response("put_events", {}, expected_call(events))

    report = make().process(records_of(events), budget_seconds=30)

    assert report.count(Outcome.SENT) == 1
    assert report.retries == 2
    assert sleeps == [0.5 * 0.05, 0.5 * 0.1]


def test_a_timeout_is_transient(make: Make, sleeps: Sleeps) -> None:
    class TimesOutOnce:
        calls = 0

        def put_events(self, **_: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 1:
                raise ReadTimeoutError(endpoint_url="https://personalize-events")
            return {}

    report = make(client=TimesOutOnce()).process(records_of([click(1)]), budget_seconds=30)

    assert report.count(Outcome.SENT) == 1
    assert len(sleeps) == 1


def test_throttling_past_the_budget_reports_the_group_for_retry_and_keeps_order(
        make: Make, events_client: tuple[Any, Stubber]) -> None:
    _, stubber = events_client
    session = [click(i) for i in range(12)]
    other = [click(20, session="other")]
    stubber.add_client_error("put_events", **throttled(), expected_params=expected_call(session[:10]))
    stubber.add_response("put_events", {}, expected_call(other))

    report = make().process(records_of(session + other), budget_seconds=0.001)

    assert report.batch_item_failures() == [{"itemIdentifier": str(i)} for i in range(12)]
    assert report.outcomes["12"] is Outcome.SENT  # the other session is not held back
    assert report.calls == 2  # events 10 and 11 were never sent ahead of 0-9


def test_an_event_personalize_rejects_is_dead_lettered_and_the_rest_sent(
        make: Make, events_client: tuple[Any, Stubber], queue_url: str) -> None:
    _, stubber = events_client
    events = [click(0), click(1), click(2)]
    stubber.add_client_error("put_events", service_error_code="InvalidInputException",
                             service_message="bad itemId", expected_params=expected_call(events))
    stubber.add_response("put_events", {}, expected_call(events[:1]))
    stubber.add_client_error("put_events", service_error_code="InvalidInputException",
                             service_message="bad itemId", expected_params=expected_call(events[1:2]))
    stubber.add_response("put_events", {}, expected_call(events[2:]))

    report = make().process(records_of(events), budget_seconds=30)

    assert [report.outcomes[s] for s in "012"] == [Outcome.SENT, Outcome.DEAD_LETTERED, Outcome.SENT]
    [letter] = dead_letters(queue_url)
    assert letter["reason"] == "rejected by Personalize: bad itemId"
    assert letter["sequenceNumber"] == "1"
    assert letter["data"] == envelope_data(events[1])  # the payload, replayable


@pytest.mark.parametrize(("data", "reason"), [
    ("not base64!", "not base64-encoded JSON"),
    (base64.b64encode(b"{not json").decode(), "not base64-encoded JSON"),
    (base64.b64encode(b'{"v": 3, "event": {}}').decode(), "not a version 1 or 2 event envelope"),
    (envelope_data({"eventId": "e-9", "eventType": "purchase", "sessionId": "s", "itemId": "i",
                    "timestamp": 1_764_150_000_000}), "does not match the schema"),
])
def test_a_poison_record_mid_batch_is_dead_lettered_with_its_payload(
        make: Make, events_client: tuple[Any, Stubber], queue_url: str, data: str, reason: str) -> None:
    _, stubber = events_client
    good = [click(0), click(2)]
    stubber.add_response("put_events", {}, expected_call(good))
    records = [kinesis_record(0, good[0]), kinesis_record(1, data=data), kinesis_record(2, good[1])]

    report = make().process(records, budget_seconds=30)

    assert [report.outcomes[s] for s in "012"] == [Outcome.SENT, Outcome.DEAD_LETTERED, Outcome.SENT]
    [letter] = dead_letters(queue_url)
    assert reason in letter["reason"]
    assert letter["data"] == data


def test_when_the_dead_letter_queue_fails_the_poison_record_is_retried(make: Make, aws: None) -> None:
    missing_queue = f"https://sqs.{REGION}.amazonaws.com/123456789012/does-not-exist"

    report = make(dead_letter_url=missing_queue).process([kinesis_record(0, data="garbage")], budget_seconds=30)

    assert report.batch_item_failures() == [{"itemIdentifier": "0"}]


def test_a_permanent_error_is_retried_later_and_refreshes_the_tracking_id(
        make: Make, events_client: tuple[Any, Stubber], tracker: CachedParameter) -> None:
    _, stubber = events_client
    stubber.add_client_error("put_events", service_error_code="AccessDeniedException", http_status_code=403)
    tracker.get()
    boto3.client("ssm").put_parameter(Name=TRACKING_PARAMETER, Value="new-tracker", Type="String", Overwrite=True)

    report = make().process(records_of([click(1)]), budget_seconds=30)

    assert report.batch_item_failures() == [{"itemIdentifier": "0"}]
    assert tracker.get() == "new-tracker"


def test_thirty_percent_throttling_over_http_loses_and_duplicates_nothing(
        tracker: CachedParameter, queue_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePersonalize(throttle_probability=0.3, seed=7)
    events = [click(i, session=f"s-{i % 9}", user=f"u-{i % 9}") for i in range(120)]
    with serve(fake) as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", endpoint)
        client = boto3.client("personalize-events", config=boto3.session.Config(retries={"total_max_attempts": 1}))
        processor = EventProcessor(events_client=client, tracking_id=tracker,
                                   dead_letters=SqsDeadLetters(boto3.client("sqs"), queue_url), event_types=TYPES,
                                   executor=ThreadPoolExecutor(max_workers=4), sleep=lambda _: None)
        report = processor.process(records_of(events), budget_seconds=30)

    sent_ids = [e["eventId"] for call in fake.calls for e in call["eventList"]]
    assert sorted(sent_ids) == sorted(e["eventId"] for e in events)  # retried until sent, each exactly once
    assert report.count(Outcome.SENT) == 120
    assert report.retries > 0 and fake.attempts == report.calls
    assert all(len(call["eventList"]) <= 10 for call in fake.calls)


# --- invariants, property-based ---------------------------------------------------------------------------------------

class ScriptedClient:
    """Thread-safe fake answering from the request: throttles a call whose first event id is in ``throttle``
    (every time), rejects calls holding an id in ``invalid``; records accepted calls."""

    def __init__(self, throttle: set[str], invalid: set[str]) -> None:
        import threading

        self.throttle, self.invalid = throttle, invalid
        self.accepted: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def put_events(self, **request: Any) -> dict[str, Any]:
        ids = [e["eventId"] for e in request["eventList"]]
        assert 1 <= len(ids) <= 10
        if ids[0] in self.throttle:
            raise ClientError({"Error": {"Code": "ThrottlingException"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                              "PutEvents")
        if set(ids) & self.invalid:
            raise ClientError({"Error": {"Code": "InvalidInputException", "Message": "bad"}}, "PutEvents")
        with self._lock:
            self.accepted.append(request)
        return {}


batches = st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.sampled_from(["ok", "ok", "ok", "throttle",
                                                                                 "invalid", "poison"])),
                   min_size=1, max_size=60)


class RecordingDeadLetters(SqsDeadLetters):
    def __init__(self) -> None:
        self.letters: list[Any] = []

    def send(self, letters: Any) -> set[str]:
        self.letters += letters
        return set()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_every_event_ends_in_exactly_one_outcome(batch: list[tuple[int, bool, str]], tracker: CachedParameter) -> None:
    events: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    throttle: set[str] = set()
    invalid: set[str] = set()
    for seq, (session, anonymous, fate) in enumerate(batch):
        event = click(seq, session=f"s-{session}", user=None if anonymous else f"u-{session}")
        events.append(event)
        records.append(kinesis_record(seq, data="%%%") if fate == "poison" else kinesis_record(seq, event))
        {"throttle": throttle, "invalid": invalid}.get(fate, set()).add(event["eventId"])
    client, letters = ScriptedClient(throttle, invalid), RecordingDeadLetters()
    processor = EventProcessor(events_client=client, tracking_id=tracker, dead_letters=letters, event_types=TYPES,
                               executor=ThreadPoolExecutor(max_workers=4), sleep=lambda _: None, jitter=lambda: 0.0)

    report = processor.process(records, budget_seconds=0.05)

    assert set(report.outcomes) == {str(seq) for seq in range(len(batch))}
    sent = [e["eventId"] for call in client.accepted for e in call["eventList"]]
    assert len(sent) == len(set(sent))  # nothing sent twice
    assert set(sent) == {f"e-{s}" for s, o in report.outcomes.items() if o is Outcome.SENT}
    for seq, (_, _, fate) in enumerate(batch):
        if fate == "poison":
            assert report.outcomes[str(seq)] is Outcome.DEAD_LETTERED
        if fate == "invalid" and report.outcomes[str(seq)] is not Outcome.RETRY:
            assert report.outcomes[str(seq)] is Outcome.DEAD_LETTERED
    for call in client.accepted:  # one (user, session) per call, in stream order
        ids = [int(e["eventId"][2:]) for e in call["eventList"]]
        assert ids == sorted(ids)
        assert len({(events[i].get("userId"), events[i]["sessionId"]) for i in ids}) == 1
    by_group: dict[tuple[Any, str], list[int]] = {}
    for call in client.accepted:
        first = events[int(call["eventList"][0]["eventId"][2:])]
        by_group.setdefault((first.get("userId"), first["sessionId"]), []).extend(
            int(e["eventId"][2:]) for e in call["eventList"])
    for sent_in_group in by_group.values():
        assert sent_in_group == sorted(sent_in_group)  # a session's events reach Personalize in stream order
    assert sorted(letter.record.sequence_number for letter in letters.letters) == sorted(
        s for s, o in report.outcomes.items() if o is Outcome.DEAD_LETTERED)


def test_grouping_keeps_every_event_once_in_order() -> None:
    decoded = [type("D", (), {"event": decode_record(envelope_data(click(i, session=f"s{i % 3}")), TYPES),
                              "record": None})() for i in range(9)]

    groups = group_events(decoded)

    assert [[d.event.event_id for d in g] for g in groups] == [
        ["e-0", "e-3", "e-6"], ["e-1", "e-4", "e-7"], ["e-2", "e-5", "e-8"]]


def test_invalid_envelopes_raise_invalid_record() -> None:
    with pytest.raises(InvalidRecordError, match="not a version 1 or 2 event envelope"):
        decode_record(base64.b64encode(b"[]").decode(), TYPES)
