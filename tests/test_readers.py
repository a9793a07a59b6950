"""Verified readers at the resource level (components/readers.py and its routes), and the serving function's own
check of the reader (handlers/common/readers.py).

GIVEN a stack whose readers sign in (``readerTokenIssuer`` set, as dev), WHEN it is synthesized, THEN both APIs have
a cached REQUEST authorizer on the signed-in routes only, invocable by that API alone, backed by a function that may
read only the stack's secret, encrypted with the stack key; a stack without an issuer has none of it.
"""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from common.events import envelope_event, read_envelope
from common.readers import forbidden_reason
from components.settings import SettingsError, load_settings_from_values, parse_settings
from tests.test_serving_handlers import aws, call, recommendations  # noqa: F401 (fixtures of the serving handlers)
from tests.vtl import render
from tools import cost
from tools.synth import RegisteredResource, Synthesis, stack_config, synthesize, synthesize_stack

PROJECT = "clickstream-personalization"
AUTHORIZER = "aws:apigateway/authorizer:Authorizer"
METHOD = "aws:apigateway/method:Method"
RESOURCE = "aws:apigateway/resource:Resource"
INTEGRATION = "aws:apigateway/integration:Integration"
PERMISSION = "aws:lambda/permission:Permission"
SECRET = "aws:secretsmanager/secret:Secret"
FUNCTION = "aws:lambda/function:Function"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
EVENT_TYPES = ("view", "click", "read", "share")


@pytest.fixture(scope="module")
def dev() -> Synthesis:
    return synthesize_stack("dev", preview=False)


def with_config(**values: str) -> Synthesis:
    config = {**stack_config("dev"), **{f"{PROJECT}:{k}": v for k, v in values.items()}}
    return synthesize(config, stack="dev", preview=False)


def path_of(synthesis: Synthesis, resource_id: str) -> str:
    by_id = {f"{r.name}-id": r for r in synthesis.of_type(RESOURCE)}
    parts = []
    while resource_id in by_id:
        resource = by_id[resource_id]
        parts.append(resource.inputs["pathPart"])
        resource_id = resource.inputs["parentId"]
    return "/" + "/".join(reversed(parts))


def methods(synthesis: Synthesis) -> dict[tuple[str, str, str], RegisteredResource]:
    """(api, METHOD, path) -> method."""
    return {(m.inputs["restApi"], m.inputs["httpMethod"], path_of(synthesis, m.inputs["resourceId"])): m
            for m in synthesis.of_type(METHOD)}


def api_of(synthesis: Synthesis, suffix: str) -> str:
    [api] = [f"{r.name}-id" for r in synthesis.of_type("aws:apigateway/restApi:RestApi") if r.name.endswith(suffix)]
    return api


# --- resources -------------------------------------------------------------------------------------------------------

def test_each_api_has_one_cached_request_authorizer_reading_where_its_clients_can_send_a_token(dev: Synthesis) -> None:
    authorizers = {a.inputs["restApi"]: a.inputs for a in dev.of_type(AUTHORIZER)}
    collect, serve = api_of(dev, "ingestion-api"), api_of(dev, "serving-api")

    assert set(authorizers) == {collect, serve}
    assert authorizers[collect]["identitySource"] == "method.request.querystring.token"  # beacons: no headers
    assert authorizers[serve]["identitySource"] == "method.request.header.Authorization"
    for inputs in authorizers.values():
        assert inputs["type"] == "REQUEST" and inputs["authorizerResultTtlInSeconds"] == 300
    [function] = [f for f in dev.of_type(FUNCTION) if f.inputs["handler"] == "reader_authorizer.handler"]
    assert {a.inputs["authorizerUri"] for a in dev.of_type(AUTHORIZER)} == {
        f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{function.outputs['arn']}/invocations"}


def test_the_cache_ttl_follows_the_configuration() -> None:
    synthesis = with_config(readerTokenCacheSeconds="900")

    assert {a.inputs["authorizerResultTtlInSeconds"] for a in synthesis.of_type(AUTHORIZER)} == {900}


@pytest.mark.parametrize(("value", "message"), [("30", "between 60 and 3600"), ("0", "between 60 and 3600"),
                                                ("7200", "between 60 and 3600")])
def test_a_cache_ttl_that_would_run_a_lambda_per_request_or_outlive_api_gateways_limit_is_refused(
        value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_settings({"environment": "dev", "readerTokenIssuer": "https://a.example",
                        "readerTokenCacheSeconds": value}, region="eu-west-1", stack="dev")


def test_only_the_signed_in_routes_use_the_authorizer(dev: Synthesis) -> None:
    routes = methods(dev)
    collect, serve = api_of(dev, "ingestion-api"), api_of(dev, "serving-api")
    ids = {a.inputs["restApi"]: f"{a.name}-id" for a in dev.of_type(AUTHORIZER)}

    signed_in = {key: m.inputs for key, m in routes.items() if m.inputs["authorization"] == "CUSTOM"}
    assert set(signed_in) == {(collect, "POST", "/events/reader"), (serve, "GET", "/recommendations/{userId}")}
    assert all(inputs["authorizerId"] == ids[api] for (api, _, _), inputs in signed_in.items())
    assert signed_in[(collect, "POST", "/events/reader")]["requestParameters"] == {
        "method.request.querystring.token": True}
    assert routes[(collect, "POST", "/events")].inputs["authorization"] == "NONE"  # anonymous collection
    assert routes[(serve, "GET", "/recommendations/anonymous/{userId}")].inputs["authorization"] == "NONE"
    assert routes[(serve, "OPTIONS", "/recommendations/{userId}")].inputs["authorization"] == "NONE"


def test_both_collection_routes_take_the_reader_from_the_authorizer_never_from_the_body(dev: Synthesis) -> None:
    collect = api_of(dev, "ingestion-api")
    routes = {path_of(dev, i.inputs["resourceId"]): i.inputs["requestTemplates"]
              for i in dev.of_type(INTEGRATION) if i.inputs["restApi"] == collect and i.inputs["type"] == "AWS"}
    body = {"events": [{"eventId": "e-1", "eventType": "click", "sessionId": "s-1", "itemId": "post-1",
                        "timestamp": 1_764_150_000_000, "userId": "victim"}]}

    assert set(routes) == {"/events", "/events/reader"}
    for path, principal, reader in [("/events", None, None), ("/events/reader", "alice", "alice")]:
        for template in routes[path].values():
            request = json.loads(render(template, body, authorizer={"principalId": principal} if principal else {}
                                        ).text)
            line = json.loads(base64.b64decode(request["Records"][0]["Data"]))
            assert envelope_event(read_envelope(line), EVENT_TYPES).user_id == reader, path


def test_only_its_own_api_may_invoke_the_authorizer(dev: Synthesis) -> None:
    [function] = [f for f in dev.of_type(FUNCTION) if f.inputs["handler"] == "reader_authorizer.handler"]
    permissions = [p.inputs for p in dev.of_type(PERMISSION) if p.inputs["function"] == function.outputs["name"]]
    authorizers = {f"{a.name}-id": a.inputs["restApi"] for a in dev.of_type(AUTHORIZER)}

    assert len(permissions) == 2
    for permission in permissions:
        assert permission["principal"] == "apigateway.amazonaws.com"
        api_arn, authorizer_id = permission["sourceArn"].split("/authorizers/")
        assert api_arn.endswith(":" + authorizers[authorizer_id])


def test_the_authorizer_may_read_only_the_stacks_secret_encrypted_with_the_stack_key(dev: Synthesis) -> None:
    [secret] = dev.of_type(SECRET)
    [key] = dev.of_type("aws:kms/key:Key")
    [function] = [f for f in dev.of_type(FUNCTION) if f.inputs["handler"] == "reader_authorizer.handler"]
    [role] = [r for r in dev.of_type("aws:iam/role:Role") if r.outputs["arn"] == function.inputs["role"]]
    [policy] = [json.loads(p.inputs["policy"]) for p in dev.of_type(ROLE_POLICY)
                if p.inputs["role"] == f"{role.name}-id"]
    statements = {s["Sid"]: s for s in policy["Statement"]}

    assert secret.inputs["kmsKeyId"] == key.outputs["arn"]
    assert "secretString" not in secret.inputs  # the value never passes through Pulumi
    assert statements["ReadReaderTokenSecret"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert statements["ReadReaderTokenSecret"]["Resource"] == secret.outputs["arn"]
    assert statements["DecryptReaderTokenSecret"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    assert not [s for s in policy["Statement"] if "secretsmanager:PutSecretValue" in s["Action"]]
    environment = function.inputs["environment"]["variables"]
    assert environment["READER_JWT_KEY_ARN"] == secret.outputs["arn"]
    assert environment["READER_JWT_ISSUER"] == "https://auth.dev.example.com"


def test_a_stack_without_an_issuer_verifies_no_reader() -> None:
    synthesis = synthesize_stack("prod-eu", preview=False)

    assert not synthesis.of_type(AUTHORIZER) and not synthesis.of_type(SECRET)
    assert {m.inputs["authorization"] for m in synthesis.of_type(METHOD)} <= {"NONE", "AWS_IAM"}
    assert not [p for p in methods(synthesis) if p[2] in {"/events/reader", "/recommendations/anonymous/{userId}"}]


# --- the serving function's own check --------------------------------------------------------------------------------

def proxy_event(resource: str, user: str, principal: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"requestId": "r-1"}
    if principal is not None:
        context["authorizer"] = {"principalId": principal, "reader": principal}
    return {"resource": resource, "pathParameters": {"userId": user}, "requestContext": context}


@pytest.mark.parametrize(("event", "reason"), [
    (proxy_event("/recommendations/{userId}", "alice", "alice"), None),
    (proxy_event("/recommendations/{userId}", "bob", "alice"), "does not belong to this reader"),
    (proxy_event("/recommendations/{userId}", "alice"), None),  # a stack without reader verification
    (proxy_event("/recommendations/anonymous/{userId}", "anon-k3x9"), None),
    (proxy_event("/recommendations/anonymous/{userId}", "alice"), "serves anonymous ids"),
], ids=["own token", "another reader's token", "no verification", "anonymous id", "signed-in id anonymously"])
def test_the_function_checks_the_reader_again(event: dict[str, Any], reason: str | None) -> None:
    found = forbidden_reason(event)

    assert (found is None) if reason is None else (found is not None and reason in found)


def test_the_recommendations_function_answers_403_to_another_readers_token(
        recommendations: tuple[ModuleType, Stubber]) -> None:  # noqa: F811 (the imported fixture)
    module, stubber = recommendations  # no Personalize call is expected

    status, body = call(module, proxy_event("/recommendations/{userId}", "bob", "alice"))

    assert status == 403 and "does not belong to this reader" in body["message"]
    stubber.assert_no_pending_responses()


def test_the_anonymous_route_serves_anonymous_ids_and_refuses_signed_in_ones(
        recommendations: tuple[ModuleType, Stubber]) -> None:  # noqa: F811 (the imported fixture)
    module, _ = recommendations

    anonymous_status, anonymous = call(module, proxy_event("/recommendations/anonymous/{userId}", "anon-k3x9"))
    signed_in_status, _ = call(module, proxy_event("/recommendations/anonymous/{userId}", "alice"))

    assert anonymous_status == 200 and anonymous["source"] == "fallback"  # no campaign yet in this test
    assert signed_in_status == 403


# --- the cost view ---------------------------------------------------------------------------------------------------

def authorizer_cost(stack: str, cache_seconds: int | None = None, **profile: Any) -> Any:
    config = stack_config(stack)
    if cache_seconds is not None:
        config[f"{PROJECT}:readerTokenCacheSeconds"] = str(cache_seconds)
    settings = load_settings_from_values(config, stack)
    costs = cost.estimate(settings, cost.Profile(events_per_day=1_000_000, recommendations_per_day=300_000,
                                                 **profile), cost.load_prices())
    return costs.get("Lambda: reader authorizer")


def test_the_cost_view_counts_authorizer_invocations_per_session_and_cache_period() -> None:
    five_minutes = authorizer_cost("dev", signed_in_sessions_per_day=100_000, session_minutes=10)
    one_hour = authorizer_cost("dev", cache_seconds=3600, signed_in_sessions_per_day=100_000, session_minutes=10)

    # 100,000 sessions x 30.4 days x 2 APIs x ceil(600 s / 300 s)
    assert five_minutes.note.startswith("12.16 M invocations")
    assert one_hour.note.startswith("6.08 M invocations")
    assert five_minutes.cost > one_hour.cost > 0 and not five_minutes.confirmed
    assert authorizer_cost("prod-eu") is None  # no reader verification, no authorizer
