"""The collection API in LocalStack, built from the synthesized program's own resources.

GIVEN the program synthesized with the sandbox config and its collection API created in LocalStack, WHEN a site posts
events the way the tracker does (fetch with JSON, sendBeacon with a text/plain Blob), THEN the API answers like the
deployed one and the stream holds one record per event in the request template's format.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sandbox_fixtures import deployed_api, stream_records
from tests.vtl import render
from tools.sandbox import collect_api
from tools.sandbox.localstack import LocalStack
from tools.synth import Synthesis

SITE = "http://localhost:8765"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(url: str, method: str = "POST", body: bytes | None = None, /, **headers: str) -> Reply:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"eventId": "e-1", "eventType": "click", "sessionId": "s-1", "itemId": "post-1",
                            "timestamp": 1_764_150_000_000}
    base.update(overrides)
    return base


@pytest.fixture(scope="module")
def synthesis() -> Synthesis:
    return collect_api.synthesize_sandbox([SITE])


@pytest.fixture(scope="module")
def api(localstack: LocalStack, synthesis: Synthesis) -> Iterator[collect_api.CollectionApi]:
    with deployed_api(localstack, synthesis) as deployed:
        yield deployed


def records_of(localstack: LocalStack, api: collect_api.CollectionApi, session: str) -> list[dict[str, Any]]:
    found = [json.loads(r["Data"]) for r in stream_records(localstack.client("kinesis"), api.spec.stream_name)
             if r["PartitionKey"] == session]
    return found


# --- the API as deployed ----------------------------------------------------------------------------------------------

def test_the_created_api_carries_the_recorded_templates_model_and_method(
        localstack: LocalStack, api: collect_api.CollectionApi) -> None:
    client = localstack.client("apigateway")
    recorded = api.spec.put_records.inputs
    resource_id = api.created.ids[recorded["resourceId"]]

    integration = client.get_integration(restApiId=api.created.api_id, resourceId=resource_id, httpMethod="POST")
    method = client.get_method(restApiId=api.created.api_id, resourceId=resource_id, httpMethod="POST")
    [model] = api.spec.models
    created_model = client.get_model(restApiId=api.created.api_id, modelName=model.inputs["name"])

    assert integration["requestTemplates"] == recorded["requestTemplates"]
    assert integration["uri"] == recorded["uri"] and integration["passthroughBehavior"] == "NEVER"
    assert integration["requestParameters"] == recorded["requestParameters"]
    assert json.loads(created_model["schema"]) == json.loads(model.inputs["schema"])
    assert method["requestModels"] == {"application/json": model.inputs["name"], "text/plain": model.inputs["name"]}
    assert method["apiKeyRequired"] is False
    assert method["requestValidatorId"] == api.created.ids[collect_api.mock_id(api.spec.validators[0])]
    assert set(integration["integrationResponses"]) == {"200", "500", "503"}
    assert api.collect_url.endswith(f"/{api.spec.stage.inputs['stageName']}/events")


def test_gateway_responses_are_listed_as_skipped(api: collect_api.CollectionApi) -> None:
    assert api.created.skipped == [r.name for r in api.spec.gateway_responses]
    assert api.created.skipped  # the program declares them; LocalStack cannot apply their templates


# --- requests ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_valid_batch_is_accepted_and_lands_in_the_stream_in_the_template_format(
        localstack: LocalStack, api: collect_api.CollectionApi, content_type: str) -> None:
    session = f"s-{content_type.replace('/', '-')}"
    batch = [event(eventId=f"e-{i}", sessionId=session, itemId=f"post-{i}") for i in range(3)]

    reply = send(api.collect_url, "POST", json.dumps({"events": batch}).encode(), **{"Content-Type": content_type})

    assert reply.status == 200, reply.body
    assert reply.json() == {"accepted": 3, "failed": 0, "failures": []}
    records = records_of(localstack, api, session)
    assert [r["event"] for r in records] == batch
    # exactly what the reference renderer (tests/vtl.py) makes of the recorded template for this request
    template = api.spec.put_records.inputs["requestTemplates"][content_type]
    rendered = json.loads(render(template, {"events": batch}, request_id=reply.headers["x-amzn-RequestId"],
                                 request_time_epoch=records[0]["server"]["receivedAt"]).text)
    assert records == [json.loads(base64.b64decode(r["Data"])) for r in rendered["Records"]]


def test_text_plain_with_a_charset_is_refused_by_localstack(api: collect_api.CollectionApi) -> None:
    # What navigator.sendBeacon sends for a bare string. LocalStack matches request templates by the exact header.
    reply = send(api.collect_url, "POST", json.dumps({"events": [event()]}).encode(),
                 **{"Content-Type": "text/plain;charset=UTF-8"})

    assert reply.status == 415


@pytest.mark.parametrize("body", [b'{"events": []}', b"not json", json.dumps({"events": [event(eventType="buy")]}
                                                                             ).encode()],
                         ids=["empty batch", "not json", "unknown event type"])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_an_invalid_body_is_refused_with_400_and_nothing_is_written(
        localstack: LocalStack, api: collect_api.CollectionApi, body: bytes, content_type: str) -> None:
    before = len(stream_records(localstack.client("kinesis"), api.spec.stream_name))

    reply = send(api.collect_url, "POST", body, **{"Content-Type": content_type})

    assert reply.status == 400
    assert len(stream_records(localstack.client("kinesis"), api.spec.stream_name)) == before


def test_a_preflight_from_the_site_is_allowed(api: collect_api.CollectionApi) -> None:
    reply = send(api.collect_url, "OPTIONS", None, Origin=SITE, **{"Access-Control-Request-Method": "POST",
                                                                    "Access-Control-Request-Headers": "content-type"})

    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == SITE
    assert reply.headers["Access-Control-Allow-Methods"] == "POST,OPTIONS"
    assert "Content-Type" in reply.headers["Access-Control-Allow-Headers"].split(",")


def test_a_preflight_from_another_origin_gets_no_allow_origin(api: collect_api.CollectionApi) -> None:
    reply = send(api.collect_url, "OPTIONS", None, Origin="http://evil.example",
                 **{"Access-Control-Request-Method": "POST"})

    assert "Access-Control-Allow-Origin" not in reply.headers


def test_answers_to_the_site_expose_retry_after(api: collect_api.CollectionApi) -> None:
    reply = send(api.collect_url, "POST", json.dumps({"events": [event(sessionId="s-cors")]}).encode(), Origin=SITE,
                 **{"Content-Type": "text/plain"})

    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == SITE
    assert reply.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert reply.headers["Vary"] == "Origin"


def test_a_missing_stream_answers_500_without_internals(localstack: LocalStack, synthesis: Synthesis) -> None:
    # GIVEN an API whose template names a stream that does not exist: Kinesis answers ResourceNotFoundException
    spec = copy.deepcopy(collect_api.collection_spec(synthesis))
    templates = spec.put_records.inputs["requestTemplates"]
    for content_type, template in templates.items():
        templates[content_type] = template.replace(f'"{spec.stream_name}"', '"cp-missing-stream"')
    created = collect_api.create_collection_api(localstack.client("apigateway"), spec)
    try:
        url = created.url(localstack.url, created.paths[spec.put_records.inputs["resourceId"]])

        reply = send(url, "POST", json.dumps({"events": [event()]}).encode(), **{"Content-Type": "application/json"})

        assert reply.status == 500
        assert reply.json()["message"] == "The events could not be accepted; retry later."
        assert "cp-missing-stream" not in reply.body.decode()
    finally:
        localstack.client("apigateway").delete_rest_api(restApiId=created.api_id)


# --- finding the resources --------------------------------------------------------------------------------------------

def renamed(synthesis: Synthesis, prefix: str) -> Synthesis:
    """The same program with every logical name changed (ids follow the names, as in the mocks)."""
    ids = {f"{r.name}-{suffix}": f"{prefix}{r.name}-{suffix}" for r in synthesis.resources for suffix in ("id", "root")}

    def rename(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return ids.get(value, value) if isinstance(value, str) else value

    return Synthesis(stack=synthesis.stack, resources=[
        dataclasses.replace(r, name=prefix + r.name, inputs=rename(r.inputs), outputs=rename(r.outputs))
        for r in synthesis.resources])


def test_resources_are_found_by_type_and_structure_not_by_logical_name(synthesis: Synthesis) -> None:
    spec = collect_api.collection_spec(renamed(synthesis, "x-"))

    assert spec.rest_api.name.startswith("x-")
    assert [r.inputs["pathPart"] for r in spec.resources] == ["events"]
    assert {m.inputs["httpMethod"] for m in spec.methods} == {"POST", "OPTIONS"}
    assert len(spec.method_responses) == 4 and len(spec.integration_responses) == 4


def without(synthesis: Synthesis, predicate: Any) -> Synthesis:
    return Synthesis(stack=synthesis.stack, resources=[r for r in synthesis.resources if not predicate(r)])


def test_a_program_without_a_kinesis_integration_is_refused(synthesis: Synthesis) -> None:
    broken = without(synthesis, lambda r: r.type == collect_api.IntegrationT and r.inputs.get("type") == "AWS")

    with pytest.raises(collect_api.CollectApiError, match="one Kinesis PutRecords integration"):
        collect_api.collection_spec(broken)


def test_a_template_naming_an_unknown_stream_is_refused(synthesis: Synthesis) -> None:
    broken = copy.deepcopy(synthesis)
    broken.resources = [r for r in broken.resources if r.type != collect_api.StreamT]

    with pytest.raises(collect_api.CollectApiError, match="Kinesis stream named"):
        collect_api.collection_spec(broken)


def test_a_template_without_a_stream_name_is_refused(synthesis: Synthesis) -> None:
    broken = copy.deepcopy(synthesis)
    integration = collect_api.collection_spec(broken).put_records
    integration.inputs["requestTemplates"] = {"application/json": "{}"}

    with pytest.raises(collect_api.CollectApiError, match="names no StreamName"):
        collect_api.collection_spec(broken)


def test_the_mocks_account_is_replaced_in_arns() -> None:
    assert collect_api.local_arn("arn:aws:iam::123456789012:role/r") == "arn:aws:iam::000000000000:role/r"
    assert collect_api.local_arn(None) is None


def test_record_data_is_base64_of_one_json_line(localstack: LocalStack, api: collect_api.CollectionApi) -> None:
    send(api.collect_url, "POST", json.dumps({"events": [event(sessionId="s-raw", properties={"t": "é"})]}).encode(),
         **{"Content-Type": "application/json"})

    [raw] = [r for r in stream_records(localstack.client("kinesis"), api.spec.stream_name)
             if r["PartitionKey"] == "s-raw"]

    assert b"\n" not in raw["Data"]
    assert json.loads(raw["Data"].decode("utf-8"))["event"]["properties"] == {"t": "é"}
