"""The second renderer: LocalStack's API Gateway (its own Velocity engine and ``$util``) runs the synthesized collection
template on hostile user agents.

GIVEN the collection API created in LocalStack from the program synthesized with client details on, WHEN a request
carries a hostile User-Agent (a backslash before a quote, control characters, ``$``, ``#``, JSON-breaking text),
THEN the request is accepted, the record is valid JSON whose server block holds only base64, and the consumers'
decoder gives back the header as sent - the same result as our reference renderer (tests/test_collect_envelope.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from common.events import decode_record, read_envelope
from tests.sandbox_fixtures import deployed_api, stream_records, wait_for
from tests.vtl import render
from tools.sandbox import collect_api
from tools.sandbox.localstack import LocalStack
from tools.synth import synthesize

SITE = "http://localhost:8766"
EVENT_TYPES = ("view", "click", "read", "share")
BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")
# What HTTP lets a client put in a header (no CR/LF); each one broke, or could break, an escaping template.
HOSTILE_AGENTS = {
    "backslash before a quote": b'Mozilla/5.0 \\" x',
    "backslash before an apostrophe": b"Mozilla/5.0 \\' it\\'s",
    "trailing backslash": b"Mozilla/5.0 \\",
    "control characters": b"a\x01b\x1fc\x7fd\te",
    "velocity": b"$util.base64Encode('x') #set($x = 1) ${q} $!context.requestId ## #end",
    "json breaking": b'"}],"StreamName":"x","Records":[{"',
}


@pytest.fixture(scope="module")
def api(localstack: LocalStack) -> Iterator[collect_api.CollectionApi]:
    config = {**collect_api.sandbox_config([SITE]), f"{collect_api.PROJECT}:collectClientDetails": "true"}
    synthesis = synthesize(config, stack=collect_api.STACK, preview=False)
    with deployed_api(localstack, synthesis) as deployed:
        yield deployed


def post_with_agent(url: str, body: bytes, user_agent: bytes) -> int:
    """http.client sends header bytes as given (urllib would refuse some of them)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=20)
    try:
        connection.putrequest("POST", parts.path + (f"?{parts.query}" if parts.query else ""),
                              skip_accept_encoding=True)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("User-Agent", user_agent)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def session_record(localstack: LocalStack, api: collect_api.CollectionApi, session: str) -> Any:
    def found() -> Any:
        records = stream_records(localstack.client("kinesis"), api.spec.stream_name)
        return next((r for r in records if r["PartitionKey"] == session), None)
    return wait_for(found, what=f"the record of {session}")


@pytest.mark.parametrize("agent", list(HOSTILE_AGENTS.values()), ids=list(HOSTILE_AGENTS))
def test_a_hostile_user_agent_reaches_the_record_unchanged_through_localstacks_velocity(
        localstack: LocalStack, api: collect_api.CollectionApi, agent: bytes) -> None:
    session = "s-ua-" + base64.b32encode(agent).decode().rstrip("=")[:40]
    event = {"eventId": "e-1", "eventType": "click", "sessionId": session, "itemId": "post-1",
             "timestamp": 1_764_150_000_000}

    status = post_with_agent(api.collect_url, json.dumps({"events": [event]}).encode(), agent)

    assert status == 200
    record = session_record(localstack, api, session)
    line = json.loads(record["Data"])
    assert line["v"] == 2 and line["event"] == event
    assert all(BASE64.match(v) for k, v in line["server"].items() if k.endswith("B64"))
    server = read_envelope(line).server
    assert server["userAgent"] == agent.decode("latin-1")
    assert decode_record(base64.b64encode(record["Data"]).decode(), EVENT_TYPES).event_id == "e-1"
    # byte for byte what the reference renderer makes of the same template and request
    template = api.spec.put_records.inputs["requestTemplates"]["application/json"]
    reference = json.loads(render(template, {"events": [event]}, request_id=server["requestId"],
                                  request_time_epoch=server["receivedAt"], source_ip=server["sourceIp"],
                                  user_agent=agent.decode("latin-1")).text)
    assert base64.b64decode(reference["Records"][0]["Data"]) == record["Data"]


# --- where readers are verified ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified_api(localstack: LocalStack) -> Iterator[collect_api.CollectionApi]:
    config = {**collect_api.sandbox_config([SITE]), f"{collect_api.PROJECT}:readerTokenIssuer": "https://auth.example",
              f"{collect_api.PROJECT}:namePrefix": "cp-sbx-verified"}  # its own stream next to the other API's
    synthesis = synthesize(config, stack=collect_api.STACK, preview=False)
    with deployed_api(localstack, synthesis) as deployed:
        yield deployed


def post_json(url: str, body: Any) -> int:
    return post_with_agent(url, json.dumps(body).encode(), b"pytest")


def test_localstack_records_the_reader_authorizer_of_the_signed_in_route(
        localstack: LocalStack, verified_api: collect_api.CollectionApi) -> None:
    client = localstack.client("apigateway")
    [recorded] = verified_api.spec.authorizers
    signed_in = verified_api.spec.signed_in_put_records
    assert signed_in is not None
    resource_id = verified_api.created.ids[signed_in.inputs["resourceId"]]

    method = client.get_method(restApiId=verified_api.created.api_id, resourceId=resource_id, httpMethod="POST")
    [created] = client.get_authorizers(restApiId=verified_api.created.api_id)["items"]

    assert method["authorizationType"] == "CUSTOM" and method["authorizerId"] == created["id"]
    assert created["identitySource"] == recorded.inputs["identitySource"] == "method.request.querystring.token"
    assert created["authorizerResultTtlInSeconds"] == 300
    assert verified_api.created.paths[signed_in.inputs["resourceId"]] == "/events/reader"


@pytest.mark.parametrize("route", ["/events", "/events/reader?token=not-a-verified-token"],
                         ids=["anonymous route", "signed-in route, authorizer not run"])
def test_a_userid_in_the_body_never_becomes_the_reader(localstack: LocalStack,
                                                       verified_api: collect_api.CollectionApi, route: str) -> None:
    # LocalStack (community) does not run the authorizer: the request gets through with no principal. Even then the
    # record is anonymous, never the body's claim - the template fails safe.
    session = "s-claim-" + str(abs(hash(route)))[:12]
    event = {"eventId": "e-1", "eventType": "click", "sessionId": session, "itemId": "post-1",
             "timestamp": 1_764_150_000_000, "userId": "victim"}
    base = verified_api.collect_url.removesuffix("/events")

    status = post_json(base + route, {"events": [event]})

    assert status == 200
    record = session_record(localstack, verified_api, session)
    line = json.loads(record["Data"])
    assert line["event"]["userId"] == "victim" and read_envelope(line).server["reader"] == ""
    assert decode_record(base64.b64encode(record["Data"]).decode(), EVENT_TYPES).user_id is None


def test_the_signed_in_route_without_a_token_is_refused_and_writes_nothing(
        localstack: LocalStack, verified_api: collect_api.CollectionApi) -> None:
    # AWS: the authorizer's identity source is missing, 401 before anything runs. LocalStack: the required query
    # parameter fails the request validator, 400. Either way nothing reaches the stream.
    before = len(stream_records(localstack.client("kinesis"), verified_api.spec.stream_name))
    event = {"eventId": "e-1", "eventType": "click", "sessionId": "s-no-token", "itemId": "post-1",
             "timestamp": 1_764_150_000_000}

    status = post_json(verified_api.collect_url + "/reader", {"events": [event]})

    assert status in (400, 401)
    assert len(stream_records(localstack.client("kinesis"), verified_api.spec.stream_name)) == before
