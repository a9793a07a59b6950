"""The collection API's mapping templates and schema, rendered from the repository's files as API Gateway would.

GIVEN a body the schema accepts, WHEN the request template renders it, THEN the output is a Kinesis PutRecords
request botocore accepts, with the fixed stream, one record per event keyed by session, and data that decodes back to
the event plus the server's enrichment - for hostile values too.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from common.events import read_envelope
from components import templates
from tests.vtl import render

EVENT_TYPES = ("view", "click", "read", "share")
STREAM = "cp-dev-euw1-clicks"
ORIGINS = ("https://www.example.com", "https://blog.example.com")
PUT_RECORDS = botocore.session.get_session().get_service_model("kinesis").operation_model("PutRecords").input_shape
VALIDATOR = Draft4Validator(templates.events_schema(EVENT_TYPES))
ID_ALPHABET = "".join(c for c in string.printable if c not in "\"\\ \t\n\r\x0b\x0c")
HOSTILE = ['"}', "\\", "\n", "#set($x = 1)", "$util.base64Encode('x')", "${q}", "\\'", "</script>", "\u2028",
           "'; DROP TABLE", "😀", "\x00"]


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"eventId": "e-1", "eventType": "click", "sessionId": "s-1", "itemId": "post-42",
                             "timestamp": 1_764_150_000_000}
    event.update(overrides)
    return event


def render_request(body: Any, include_client_details: bool = False, **context: Any) -> dict[str, Any]:
    rendered = render(templates.put_records_request(STREAM, include_client_details), body, **context)
    request: dict[str, Any] = json.loads(rendered.text)
    return request


def raw_records(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(r["Data"], validate=True).decode("utf-8")) for r in request["Records"]]


def decoded_records(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Each record as the consumers read it (handlers/common/events.py): version, event, decoded server block."""
    envelopes = [read_envelope(raw) for raw in raw_records(request)]
    return [{"v": e.version, "event": e.event, "server": dict(e.server)} for e in envelopes]


def assert_valid_put_records(request: dict[str, Any]) -> None:
    params = {"StreamName": request["StreamName"],
              "Records": [{"Data": base64.b64decode(r["Data"], validate=True), "PartitionKey": r["PartitionKey"]}
                          for r in request["Records"]]}
    report = ParamValidator().validate(params, PUT_RECORDS)
    assert not report.has_errors(), report.generate_report()


ids = st.text(alphabet=ID_ALPHABET, min_size=1, max_size=40) | st.sampled_from(
    ["#set($x=1)", "$util.x", "$context.requestId", "'", "}{", "a/b", "#end", "##"])
hostile_text = st.text(max_size=64) | st.sampled_from(HOSTILE)
events = st.fixed_dictionaries(
    {"eventId": ids, "eventType": st.sampled_from(EVENT_TYPES), "sessionId": ids, "itemId": ids,
     "timestamp": st.integers(1577836800000, 4102444800000)},
    optional={"userId": ids, "recommendationId": st.text(alphabet=ID_ALPHABET, min_size=1, max_size=40),
              "impression": st.lists(ids, min_size=1, max_size=25),
              "properties": st.dictionaries(st.from_regex(r"\A[a-zA-Z][a-zA-Z0-9_]{0,31}\Z"),
                                            hostile_text | st.integers(-10**9, 10**9) | st.booleans(),
                                            max_size=5)},
)


# --- request template -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 500])
def test_valid_batches_become_one_record_per_event(count: int) -> None:
    body = {"events": [make_event(eventId=f"e-{i}", sessionId=f"s-{i % 7}") for i in range(count)]}

    request = render_request(body)

    assert_valid_put_records(request)
    assert request["StreamName"] == STREAM
    assert [r["PartitionKey"] for r in request["Records"]] == [e["sessionId"] for e in body["events"]]
    assert [d["event"] for d in decoded_records(request)] == body["events"]


def test_record_data_is_the_event_plus_server_enrichment_without_personal_data_by_default() -> None:
    event = make_event(userId="u-1", properties={"title": "Ünïcødé — ✓"})

    [data] = decoded_records(render_request({"events": [event]}, request_id="r-9", request_time_epoch=1234))

    assert data == {"v": 2, "event": event, "server": {"requestId": "r-9", "receivedAt": 1234}}


def test_client_details_are_added_only_when_enabled_and_the_user_agent_is_capped() -> None:
    user_agent = 'Mozilla/5.0 ("quoted") \\ it\'s' + "x" * 400

    [data] = decoded_records(render_request({"events": [make_event()]}, include_client_details=True,
                                            source_ip="198.51.100.7", user_agent=user_agent))

    assert data["server"]["sourceIp"] == "198.51.100.7"
    assert data["server"]["userAgent"] == user_agent[:256]


def test_the_stream_name_never_comes_from_the_client() -> None:
    body = {"StreamName": "attacker-stream", "events": [make_event(properties={"StreamName": "attacker"})]}

    request = render_request(body)

    assert request["StreamName"] == STREAM
    assert set(request) == {"StreamName", "Records"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events, min_size=1, max_size=8), user_agent=hostile_text)
def test_hostile_schema_valid_events_cannot_break_or_inject(batch: list[dict[str, Any]], user_agent: str) -> None:
    body = {"events": batch}
    assert VALIDATOR.is_valid(body)

    request = render_request(body, include_client_details=True, user_agent=user_agent)

    assert_valid_put_records(request)
    assert set(request) == {"StreamName", "Records"} and request["StreamName"] == STREAM
    assert [r["PartitionKey"] for r in request["Records"]] == [e["sessionId"] for e in batch]
    for data, event in zip(decoded_records(request), batch, strict=True):
        assert data == {"v": 2, "event": event, "server": {"requestId": "req-1", "receivedAt": 1_764_150_000_000,
                                                           "sourceIp": "203.0.113.9",
                                                           "userAgent": user_agent[:256]}}


def test_hostile_values_at_full_length_pass_through_unchanged() -> None:
    hostile_id = ("#set($x=1)$util.base64Encode('x')${q}}{'" * 4)[:128]
    event = make_event(eventId=hostile_id[:64], sessionId=hostile_id, userId=hostile_id, itemId=hostile_id,
                       recommendationId=hostile_id[:40], impression=[hostile_id] * 25,
                       properties={f"p{i}": ('"}\\\n\u2028#end$' * 10)[:64] for i in range(5)})
    body = {"events": [event] * 3}
    assert VALIDATOR.is_valid(body)

    request = render_request(body, include_client_details=True, user_agent='"}\\' * 200)

    assert_valid_put_records(request)
    assert [d["event"] for d in decoded_records(request)] == body["events"]
    assert {d["server"]["userAgent"] for d in decoded_records(request)} == {('"}\\' * 200)[:256]}


def test_the_largest_valid_batch_fits_one_put_records_call() -> None:
    longest = "x" * 128
    event = make_event(eventId="e" * 64, sessionId="s" * 128, userId="u" * 128, itemId=longest,
                       recommendationId="r" * 40, impression=[longest] * 25, eventType="share",
                       properties={f"k{i}" + "p" * 30: "v" * 64 for i in range(5)})
    body = {"events": [dict(event, sessionId=f"{i:0128d}") for i in range(500)]}
    assert VALIDATOR.is_valid(body)

    request = render_request(body, include_client_details=True, user_agent="A" * 1000)

    records = request["Records"]
    sizes = [len(base64.b64decode(r["Data"])) + len(r["PartitionKey"].encode()) for r in records]
    assert sum(sizes) <= 5 * 1024 * 1024  # PutRecords: 5 MiB per call including partition keys
    assert max(sizes) <= 1024 * 1024  # and 1 MiB per record
    # Personalize's PutEvents limits hold for the same event: properties as a JSON string <= 1024, event <= 10 KB.
    assert len(json.dumps(event["properties"], separators=(",", ":"))) <= 1024
    assert len(json.dumps(event).encode()) <= 10 * 1024


def test_unsafe_server_side_values_are_refused() -> None:
    with pytest.raises(ValueError, match="not a valid Kinesis stream name"):
        templates.put_records_request('x", "StreamName": "y', False)
    with pytest.raises(ValueError, match="must look like https://host"):
        templates.cors_prelude(['https://a.example"#set($x=1)'])


# --- schema -----------------------------------------------------------------------------------------------------------

GOOD_BODIES = [
    {"events": [make_event()]},
    {"events": [make_event(userId="u-1", recommendationId="rec-1", impression=["a", "b"],
                           properties={"numberOfRatings": 12, "premium": True, "section": "sport"})]},
    {"events": [make_event(eventId=f"e-{i}") for i in range(500)]},
]
BAD_BODIES = {
    "no events": {},
    "empty batch": {"events": []},
    "501 events": {"events": [make_event()] * 501},
    "not an object": [make_event()],
    "extra top-level key": {"events": [make_event()], "stream": "x"},
    "missing eventId": {"events": [{k: v for k, v in make_event().items() if k != "eventId"}]},
    "missing sessionId": {"events": [{k: v for k, v in make_event().items() if k != "sessionId"}]},
    "missing itemId": {"events": [{k: v for k, v in make_event().items() if k != "itemId"}]},
    "missing timestamp": {"events": [{k: v for k, v in make_event().items() if k != "timestamp"}]},
    "unknown eventType": {"events": [make_event(eventType="purchase")]},
    "unknown field": {"events": [make_event(price=3)]},
    "timestamp as string": {"events": [make_event(timestamp="2026-11-26T10:00:00Z")]},
    "timestamp in seconds": {"events": [make_event(timestamp=1_764_150_000)]},
    "fractional timestamp": {"events": [make_event(timestamp=1_764_150_000_000.5)]},
    "empty userId": {"events": [make_event(userId="")]},
    "id with a space": {"events": [make_event(itemId="post 42")]},
    "id with a quote": {"events": [make_event(sessionId='s"1')]},
    "id with a backslash": {"events": [make_event(eventId="e\\1")]},
    "non-ASCII id": {"events": [make_event(userId="jürgen")]},
    "id too long": {"events": [make_event(itemId="x" * 129)]},
    "recommendationId too long": {"events": [make_event(recommendationId="r" * 41)]},
    "26 impressions": {"events": [make_event(impression=["a"] * 26)]},
    "empty impression": {"events": [make_event(impression=[])]},
    "6 properties": {"events": [make_event(properties={f"p{i}": i for i in range(6)})]},
    "nested property": {"events": [make_event(properties={"a": {"b": 1}})]},
    "property value too long": {"events": [make_event(properties={"a": "v" * 65})]},
    "property key with a dash": {"events": [make_event(properties={"a-b": 1})]},
    "null property": {"events": [make_event(properties={"a": None})]},
}


@pytest.mark.parametrize("body", GOOD_BODIES, ids=["minimal", "full", "500"])
def test_the_schema_accepts_good_bodies(body: Any) -> None:
    assert list(VALIDATOR.iter_errors(body)) == []


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_the_schema_rejects_bad_bodies(body: Any) -> None:
    assert not VALIDATOR.is_valid(body)


def test_the_schema_is_valid_draft4_with_the_configured_event_types() -> None:
    schema = templates.events_schema(["view", "play"])

    Draft4Validator.check_schema(schema)
    assert schema["properties"]["events"]["items"]["properties"]["eventType"]["enum"] == ["view", "play"]


# --- response templates -----------------------------------------------------------------------------------------------

def kinesis_reply(codes: list[str | None]) -> dict[str, Any]:
    records = [{"ErrorCode": c, "ErrorMessage": "m"} if c else {"SequenceNumber": "1", "ShardId": "s"} for c in codes]
    return {"FailedRecordCount": sum(1 for c in codes if c), "Records": records}


def test_a_fully_accepted_batch_answers_200_with_counts() -> None:
    rendered = render(templates.put_records_response(ORIGINS), kinesis_reply([None, None, None]))

    assert rendered.json() == {"accepted": 3, "failed": 0, "failures": []}
    assert rendered.status_override is None


def test_partial_failures_name_the_failed_events_by_index() -> None:
    reply = kinesis_reply([None, "ProvisionedThroughputExceededException", None, "InternalFailure"])

    rendered = render(templates.put_records_response(ORIGINS), reply)

    assert rendered.json() == {"accepted": 2, "failed": 2, "failures": [
        {"index": 1, "errorCode": "ProvisionedThroughputExceededException"},
        {"index": 3, "errorCode": "InternalFailure"}]}
    assert rendered.status_override is None


def test_a_fully_throttled_batch_answers_503_with_a_retry_hint() -> None:
    reply = kinesis_reply(["ProvisionedThroughputExceededException"] * 2)

    rendered = render(templates.put_records_response(ORIGINS), reply)

    assert rendered.status_override == 503
    assert rendered.header_overrides == {"Retry-After": "1"}
    assert rendered.json()["failed"] == 2


@pytest.mark.parametrize("error_type", ["ProvisionedThroughputExceededException", "LimitExceededException",
                                        "KMSThrottlingException"])
def test_kinesis_throttling_answers_503_with_a_retry_hint(error_type: str) -> None:
    rendered = render(templates.kinesis_error_response(ORIGINS), {"__type": error_type, "message": "slow down"})

    assert rendered.status_override == 503
    assert rendered.header_overrides == {"Retry-After": "1"}
    assert "retry" in rendered.json()["message"]


def test_other_kinesis_errors_do_not_leak_internals() -> None:
    reply = {"__type": "AccessDeniedException",
             "message": "User arn:aws:sts::123456789012:assumed-role/x is not authorized on stream cp-dev-euw1-clicks"}

    rendered = render(templates.kinesis_error_response(ORIGINS), reply)

    assert rendered.status_override is None  # keeps the integration response's 500
    assert rendered.json() == {"message": "The events could not be accepted; retry later.", "requestId": "req-1"}
    assert "123456789012" not in rendered.text


@pytest.mark.parametrize(("origin", "allowed"), [("https://blog.example.com", True), ("https://evil.example", False),
                                                 ("", False)])
def test_cors_echoes_only_configured_origins(origin: str, allowed: bool) -> None:
    rendered = render(templates.put_records_response(ORIGINS), kinesis_reply([None]),
                      headers={"Origin": origin} if origin else {})

    assert rendered.header_overrides == ({"Access-Control-Allow-Origin": origin,
                                          "Access-Control-Expose-Headers": "Retry-After"} if allowed else {})
    assert rendered.json()["accepted"] == 1


@pytest.mark.parametrize(("template", "throttled"), [
    (templates.put_records_response(ORIGINS), kinesis_reply(["ProvisionedThroughputExceededException"])),
    (templates.kinesis_error_response(ORIGINS), {"__type": "ProvisionedThroughputExceededException"}),
], ids=["put-records", "kinesis-error"])
def test_a_page_on_an_allowed_origin_can_read_the_retry_hint(template: str, throttled: dict[str, Any]) -> None:
    rendered = render(template, throttled, headers={"Origin": ORIGINS[1]})

    assert rendered.status_override == 503
    assert rendered.header_overrides == {"Access-Control-Allow-Origin": ORIGINS[1],
                                         "Access-Control-Expose-Headers": "Retry-After", "Retry-After": "1"}


def test_preflight_allows_configured_origins_only() -> None:
    allowed = render(templates.cors_preflight_response(ORIGINS), None, headers={"Origin": ORIGINS[0]})
    denied = render(templates.cors_preflight_response(ORIGINS), None, headers={"Origin": "https://evil.example"})

    assert allowed.header_overrides == {"Access-Control-Allow-Origin": ORIGINS[0],
                                        "Access-Control-Expose-Headers": "Retry-After"}
    assert denied.header_overrides == {}
    assert allowed.json() == {}


def test_validation_errors_are_reported_as_valid_json() -> None:
    message = 'instance value ("purchase") not found in enum (possible values: ["view","click"]) it\'s \\ bad'

    rendered = render(templates.gateway_bad_request_body_response(), None,
                      error={"validationErrorString": f"[{message}]"})

    assert rendered.json() == {"message": "The request body does not match the event schema.",
                               "errors": f"[{message}]", "requestId": "req-1"}


def test_gateway_errors_are_json_with_the_request_id() -> None:
    rendered = render(templates.gateway_error_response(), None, error={"messageString": '"Forbidden"'})

    assert rendered.json() == {"message": "Forbidden", "requestId": "req-1"}
