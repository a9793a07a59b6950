"""The record envelope (version 2) and its consumers: client-influenced strings travel as base64, so every Velocity
engine renders the same request, and a verified reader id replaces the body's userId.

GIVEN hostile header values (a backslash before a quote, control characters, non-ASCII, ``$``, ``#``) or a hostile
principal, WHEN the collection template renders a batch (airspeed + tests/vtl.py, the reference of API Gateway's
``$util``), THEN the server block holds only base64 strings and the consumers decode them back byte for byte; version
1 records written before still decode.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.events import InvalidRecordError, decode_record, envelope_event, read_envelope
from components import templates
from tests.vtl import render

EVENT_TYPES = ("view", "click", "read", "share")
STREAM = "cp-dev-euw1-clicks"
BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
HOSTILE_HEADERS = {
    "backslash before a quote": 'Mozilla/5.0 \\" x',
    "backslash before an apostrophe": "Mozilla/5.0 \\' it\\'s",
    "trailing backslash": "Mozilla/5.0 \\",
    "control characters": "a\x00b\x01c\x1fd\x7fe\tf",
    "line breaks": "a\nb\rc\u2028d\u2029e",
    "non-ASCII": "Ünïcødé — ✓ 😀",
    "velocity": "$util.base64Encode('x') #set($x = 1) ${q} $!context.requestId ## #end",
    "json breaking": '"}],"StreamName":"x","Records":[{"',
    "empty": "",
}


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"eventId": "e-1", "eventType": "click", "sessionId": "s-1", "itemId": "post-42",
                            "timestamp": 1_764_150_000_000}
    base.update(overrides)
    return base


def rendered_lines(events: list[dict[str, Any]], *, verify_readers: bool = False, include_client_details: bool = True,
                   **context: Any) -> list[dict[str, Any]]:
    template = templates.put_records_request(STREAM, include_client_details, verify_readers)
    request = json.loads(render(template, {"events": events}, **context).text)
    return [json.loads(base64.b64decode(r["Data"], validate=True)) for r in request["Records"]]


def data_of(line: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(line).encode()).decode()


# --- the template ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", list(HOSTILE_HEADERS.values()), ids=list(HOSTILE_HEADERS))
def test_hostile_header_values_reach_the_record_as_base64_and_decode_unchanged(value: str) -> None:
    [line] = rendered_lines([event()], user_agent=value, source_ip=value, request_id=value)

    assert line["v"] == 2
    assert set(line["server"]) == {"requestIdB64", "receivedAt", "sourceIpB64", "userAgentB64"}
    assert all(BASE64.match(v) for k, v in line["server"].items() if k.endswith("B64"))
    server = read_envelope(line).server
    assert (server["userAgent"], server["sourceIp"], server["requestId"]) == (value, value, value)


@pytest.mark.parametrize("principal", list(HOSTILE_HEADERS.values()), ids=list(HOSTILE_HEADERS))
def test_a_hostile_principal_reaches_the_record_as_base64(principal: str) -> None:
    [line] = rendered_lines([event()], verify_readers=True, authorizer={"principalId": principal})

    assert BASE64.match(line["server"]["readerB64"])
    assert read_envelope(line).server["reader"] == principal


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_agent=st.text(max_size=300), principal=st.text(max_size=64), request_id=st.text(max_size=64))
def test_any_text_in_any_client_influenced_field_round_trips(user_agent: str, principal: str, request_id: str) -> None:
    lines = rendered_lines([event(), event(eventId="e-2")], verify_readers=True, user_agent=user_agent,
                           request_id=request_id, authorizer={"principalId": principal})

    for line in lines:
        server = read_envelope(line).server
        assert server == {"requestId": request_id, "receivedAt": 1_764_150_000_000, "sourceIp": "203.0.113.9",
                          "userAgent": user_agent[:256], "reader": principal}


def test_without_client_details_or_reader_verification_the_server_block_is_minimal() -> None:
    [line] = rendered_lines([event(userId="u-1")], include_client_details=False, request_id="r-1")

    assert line["server"] == {"requestIdB64": base64.b64encode(b"r-1").decode(), "receivedAt": 1_764_150_000_000}
    assert envelope_event(read_envelope(line), EVENT_TYPES).user_id == "u-1"  # no verification: the body's id


# --- verified readers in the record ----------------------------------------------------------------------------------

def test_a_verified_reader_replaces_the_userid_the_body_claims() -> None:
    [line] = rendered_lines([event(userId="victim")], verify_readers=True, authorizer={"principalId": "alice"})

    assert line["event"]["userId"] == "victim"  # kept as sent, for the record ...
    assert decode_record(data_of(line), EVENT_TYPES).user_id == "alice"  # ... but the reader is the token's


def test_without_a_token_a_claimed_userid_is_anonymous_where_readers_are_verified() -> None:
    [line] = rendered_lines([event(userId="victim")], verify_readers=True)  # the anonymous route: no authorizer

    assert read_envelope(line).server["reader"] == ""
    assert decode_record(data_of(line), EVENT_TYPES).user_id is None


def test_a_verified_reader_id_must_still_be_a_valid_user_id() -> None:
    [line] = rendered_lines([event()], verify_readers=True, authorizer={"principalId": "has space"})

    with pytest.raises(InvalidRecordError, match="does not match the schema"):
        decode_record(data_of(line), EVENT_TYPES)


# --- the consumers ---------------------------------------------------------------------------------------------------

def test_version_1_records_still_decode_with_their_plain_server_block() -> None:
    line = {"v": 1, "event": event(userId="u-1"), "server": {"requestId": "r", "receivedAt": 1,
                                                             "sourceIp": "198.51.100.7", "userAgent": 'a "b"'}}

    envelope = read_envelope(line)

    assert envelope.version == 1 and envelope.server["userAgent"] == 'a "b"' and not envelope.reader_verified
    assert decode_record(data_of(line), EVENT_TYPES).user_id == "u-1"


@pytest.mark.parametrize(("server", "reason"), [
    ({"requestIdB64": "not base64!", "receivedAt": 1}, "requestIdB64 is not base64 of UTF-8"),
    ({"requestIdB64": base64.b64encode(b"\xff\xfe").decode(), "receivedAt": 1}, "requestIdB64 is not base64 of UTF-8"),
    ({"requestIdB64": 12, "receivedAt": 1}, "requestIdB64 is not a base64 string"),
    ({"readerB64": None}, "readerB64 is not a base64 string"),
    ("not an object", "server block is not an object"),
], ids=["not base64", "not utf-8", "not a string", "null reader", "server not an object"])
def test_a_malformed_version_2_server_block_is_an_invalid_record(server: Any, reason: str) -> None:
    with pytest.raises(InvalidRecordError, match=reason):
        decode_record(data_of({"v": 2, "event": event(), "server": server}), EVENT_TYPES)


@pytest.mark.parametrize("line", [{"v": 3, "event": event()}, {"v": 2}, {"v": "2", "event": event()}, []],
                         ids=["unknown version", "no event", "version as string", "not an object"])
def test_unknown_envelopes_are_invalid_records(line: Any) -> None:
    with pytest.raises(InvalidRecordError, match="not a version 1 or 2 event envelope"):
        read_envelope(line)
