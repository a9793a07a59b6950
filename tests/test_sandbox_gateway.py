"""The sandbox's serving gateway: routes from the synthesized API, API Gateway's checks, proxy events, real handlers."""

from __future__ import annotations

import copy
import json
import os
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from common.contract import Env
from tools.fake_personalize import serve
from tools.sandbox.gateway import (
    SANDBOX_CMS,
    Route,
    Serving,
    ServingGateway,
    StaticSite,
    serving_routes,
    sign_request,
    stage_name,
)
from tools.sandbox.lambda_host import FunctionSpec, InvokeResult, LambdaHost, sandbox_environment
from tools.sandbox.personalize import PersonalizeStandIn
from tools.synth import Synthesis, stack_config, synthesize

REGION = "eu-west-1"
KEY = "sandbox-serving-key"
ORIGIN = "http://127.0.0.1:9999"


def dev_without_reader_tokens() -> Synthesis:
    """dev verifies readers (its authorizer in the gateway: tests/test_sandbox_readers.py); the tests of the other
    routes use the same stack without readerTokenIssuer."""
    config = {k: v for k, v in stack_config("dev").items() if not k.endswith(":readerTokenIssuer")}
    return synthesize(config, stack="dev", preview=False)


@pytest.fixture(scope="module")
def synthesis() -> Synthesis:
    return dev_without_reader_tokens()


def request(url: str, method: str = "GET", body: Any = None, headers: Mapping[str, str] | None = None,
            ) -> tuple[int, dict[str, str], Any]:
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    call = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(call, timeout=10) as reply:
            status, reply_headers, raw = reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as error:
        status, reply_headers, raw = error.code, dict(error.headers), error.read()
    try:
        return status, reply_headers, json.loads(raw) if raw else None
    except ValueError:
        return status, reply_headers, raw


class Recorder:
    """An in-process invoker: records events, answers a fixed proxy response (or a function error)."""

    def __init__(self, payload: Any = None, function_error: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.payload = payload if payload is not None else {"statusCode": 200, "body": "{}"}
        self.function_error = function_error

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        self.events.append(dict(event))
        return InvokeResult(self.payload, self.function_error, "r", 0.0)


def recorded_gateway(synthesis: Synthesis, **invokers: Recorder) -> ServingGateway:
    routes = serving_routes(synthesis)
    names = {r.function for r in routes if r.function}
    default = Recorder()
    by_name = {name: next((v for k, v in invokers.items() if k in name), default) for name in names if name}
    return ServingGateway(routes, by_name, api_keys={KEY}, allowed_origins={ORIGIN}, stage=stage_name(synthesis))


def cms_signed(target: str, body: bytes, host: str = "127.0.0.1") -> dict[str, str]:
    """The headers of a POST signed as the sandbox's CMS (what the stack's CMS role would send)."""
    return sign_request("POST", f"http://{host}{target}", body, SANDBOX_CMS, REGION,
                        {"Content-Type": "application/json"})


def call(gateway: ServingGateway, method: str, target: str, body: bytes = b"",
         **headers: str) -> tuple[int, dict[str, str], Any]:
    reply = gateway.handle(method, target, [(k.replace("_", "-"), v) for k, v in headers.items()], body)
    return reply.status, {k.lower(): v for k, v in reply.headers}, json.loads(reply.body) if reply.body else None


# --- routes come from the synthesized API -----------------------------------------------------------------------

def test_routes_are_the_synthesized_serving_api(synthesis: Synthesis) -> None:
    routes = {(r.resource, r.method): r for r in serving_routes(synthesis)}
    surfaces = {("/items/{itemId}/related", "GET"), ("/trending", "GET"), ("/rank", "POST"),
                ("/items/{itemId}/related", "OPTIONS"), ("/trending", "OPTIONS"), ("/rank", "OPTIONS")}
    # (no /recommendations/anonymous/{userId}: the fixture's stack does not verify readers)
    assert set(routes) == {("/items", "POST"), ("/recommendations/{userId}", "GET"),
                           ("/recommendations/{userId}", "OPTIONS"), *surfaces}
    assert {routes[(r, m)].function for r, m in surfaces if m != "OPTIONS"} == {"cp-dev-euw1-recommendations"}
    assert routes[("/rank", "POST")].models["application/json"]["title"] == "RankRequest"
    assert routes[("/items", "POST")].authorization == "AWS_IAM" and not routes[("/items", "POST")].api_key_required
    assert routes[("/items", "POST")].function == "cp-dev-euw1-items"
    assert routes[("/items", "POST")].models["application/json"]["title"] == "NewItemsBatch"
    assert routes[("/recommendations/{userId}", "GET")].function == "cp-dev-euw1-recommendations"
    preflight = routes[("/recommendations/{userId}", "OPTIONS")]
    assert preflight.integration == "MOCK" and not preflight.api_key_required
    assert preflight.response_headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert stage_name(synthesis) == "v1"


def test_a_change_in_the_synthesized_resources_changes_the_routes(synthesis: Synthesis) -> None:
    # GIVEN the program's resources with the items method requiring a key instead of SigV4 and its path renamed
    changed = copy.deepcopy(synthesis)
    method = next(r for r in changed.of_type("aws:apigateway/method:Method") if r.name.endswith("post-items-method"))
    method.inputs.update(apiKeyRequired=True, authorization="NONE")
    resource = next(r for r in changed.of_type("aws:apigateway/resource:Resource") if r.name.endswith("serving-items"))
    resource.inputs["pathPart"] = "posts"
    # THEN the gateway's routes follow
    routes = {(r.resource, r.method): r for r in serving_routes(changed)}
    assert ("/items", "POST") not in routes and routes[("/posts", "POST")].api_key_required is True
    assert routes[("/posts", "POST")].authorization == "NONE"


def test_a_method_without_an_integration_is_refused(synthesis: Synthesis) -> None:
    changed = copy.deepcopy(synthesis)
    changed.resources = [r for r in changed.resources if not r.name.endswith("post-items-integration")]
    with pytest.raises(LookupError, match="POST /items has no integration"):
        serving_routes(changed)


def test_a_gateway_without_an_invoker_for_a_routed_function_is_refused(synthesis: Synthesis) -> None:
    with pytest.raises(ValueError, match="no invoker"):
        ServingGateway(serving_routes(synthesis), {}, api_keys={KEY}, allowed_origins=())


# --- API Gateway's own answers ----------------------------------------------------------------------------------

def test_a_missing_or_wrong_api_key_is_forbidden_and_the_function_never_runs(synthesis: Synthesis) -> None:
    recommendations = Recorder()
    gateway = recorded_gateway(synthesis, recommendations=recommendations)
    for key in (None, "wrong"):
        extra = {"x_api_key": key} if key else {}
        status, reply_headers, body = call(gateway, "GET", "/v1/recommendations/u1", b"", Origin=ORIGIN, **extra)
        assert status == 403 and body["message"] == "Forbidden"
        assert reply_headers["access-control-allow-origin"] == ORIGIN  # the browser can read the refusal
    assert recommendations.events == []
    assert call(gateway, "GET", "/v1/recommendations/u1", x_api_key=KEY)[0] == 200


def test_cors_preflight_answers_allowed_origins_only(synthesis: Synthesis) -> None:
    gateway = recorded_gateway(synthesis)
    status, headers, _ = call(gateway, "OPTIONS", "/v1/recommendations/u1", Origin=ORIGIN)
    assert status == 200 and headers["access-control-allow-origin"] == ORIGIN
    assert headers["access-control-allow-headers"] == "Content-Type,X-Api-Key"
    assert headers["access-control-max-age"] == "600"
    status, headers, _ = call(gateway, "OPTIONS", "/v1/recommendations/u1", Origin="https://evil.example")
    assert status == 200 and "access-control-allow-origin" not in headers


def test_unknown_paths_are_404_and_undeclared_methods_405(synthesis: Synthesis) -> None:
    gateway = recorded_gateway(synthesis)
    assert call(gateway, "GET", "/v1/nothing", x_api_key=KEY)[0] == 404
    assert call(gateway, "GET", "/v2/recommendations/u1", x_api_key=KEY)[0] == 404  # another stage
    assert call(gateway, "GET", "/v1/recommendations/u1/extra", x_api_key=KEY)[0] == 404
    status, headers, _ = call(gateway, "DELETE", "/v1/recommendations/u1", x_api_key=KEY)
    assert status == 405 and headers["allow"] == "GET,OPTIONS"
    assert call(gateway, "OPTIONS", "/v1/items")[0] == 405  # no preflight for the CMS route


def test_a_body_that_breaks_the_request_model_is_400_before_the_function(synthesis: Synthesis) -> None:
    items = Recorder()
    gateway = recorded_gateway(synthesis, items=items)
    for body in (b'{"items": []}', b'{"items": [{"itemId": "a"}]}', b"not json", b""):
        status, _, reply = call(gateway, "POST", "/v1/items", body, **cms_signed("/v1/items", body))
        assert status == 400 and reply["message"] == "Invalid request body", body
    assert items.events == []
    good = json.dumps({"items": [{"itemId": "a", "creationTimestamp": 1_790_000_000}]}).encode()
    assert call(gateway, "POST", "/v1/items", good, **cms_signed("/v1/items", good))[0] == 200
    assert len(items.events) == 1


def test_a_function_error_or_a_malformed_proxy_reply_is_502(synthesis: Synthesis) -> None:
    for recorder in (Recorder({"errorType": "ValueError", "errorMessage": "x"}, "Unhandled"),
                     Recorder({"body": "no status"}), Recorder({"statusCode": 200, "body": {"not": "a string"}})):
        status, _, body = call(recorded_gateway(synthesis, recommendations=recorder), "GET",
                               "/v1/recommendations/u1", x_api_key=KEY)
        assert (status, body["message"]) == (502, "Internal server error")


def test_the_proxy_event_is_api_gateways_v1_shape(synthesis: Synthesis) -> None:
    recommendations = Recorder({"statusCode": 201, "headers": {"X-One": "1"},
                                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": "hi"})
    gateway = recorded_gateway(synthesis, recommendations=recommendations)
    reply = gateway.handle("GET", "/v1/recommendations/reader%201?numResults=3&context=A:1&context=B:2",
                           [("X-Api-Key", KEY), ("User-Agent", "pytest"), ("Accept", "a"), ("Accept", "b")], b"")
    event = recommendations.events[0]
    assert event["resource"] == "/recommendations/{userId}" and event["path"] == "/recommendations/reader%201"
    assert event["httpMethod"] == "GET" and event["pathParameters"] == {"userId": "reader 1"}
    assert event["queryStringParameters"] == {"numResults": "3", "context": "B:2"}
    assert event["multiValueQueryStringParameters"]["context"] == ["A:1", "B:2"]
    assert event["headers"]["Accept"] == "b" and event["multiValueHeaders"]["Accept"] == ["a", "b"]
    context = event["requestContext"]
    assert context["stage"] == "v1" and context["path"] == "/v1/recommendations/reader%201"
    assert context["resourcePath"] == "/recommendations/{userId}" and context["requestId"]
    assert context["identity"]["apiKey"] == KEY and context["identity"]["userAgent"] == "pytest"
    assert event["body"] is None and event["isBase64Encoded"] is False
    # and the function's reply becomes the HTTP reply, multi-value headers included
    assert reply.status == 201 and reply.body == b"hi"
    assert ("X-One", "1") in reply.headers and [v for k, v in reply.headers if k == "Set-Cookie"] == ["a=1", "b=2"]


# --- the real handlers behind the gateway -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def stand_in() -> PersonalizeStandIn:
    return PersonalizeStandIn(region=REGION, prefix="cp-dev-euw1")


@pytest.fixture(scope="module")
def personalize_url(stand_in: PersonalizeStandIn) -> Iterator[str]:
    with serve(stand_in) as url:
        yield url


@pytest.fixture(scope="module")
def serving(synthesis: Synthesis, moto_endpoint: str, stand_in: PersonalizeStandIn, personalize_url: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    """GIVEN the serving functions with their synthesized environment, local S3/SSM and the Personalize stand-in,
    with what training would publish already in SSM."""
    aws = {"endpoint_url": moto_endpoint, "region_name": REGION, "aws_access_key_id": "testing",
           "aws_secret_access_key": "testing"}
    recommendations = FunctionSpec.from_synthesis(synthesis, "recommendations").environment
    items = FunctionSpec.from_synthesis(synthesis, "items").environment
    boto3.client("s3", **aws).create_bucket(Bucket=recommendations[Env.DATA_BUCKET],
                                            CreateBucketConfiguration={"LocationConstraint": REGION})
    ssm = boto3.client("ssm", **aws)
    published = stand_in.parameters()
    for variable, environment in ((Env.CAMPAIGN_ARN_PARAMETER, recommendations),
                                  (Env.CAMPAIGN_ARNS_PARAMETER, recommendations),
                                  (Env.FILTER_ARNS_PARAMETER, recommendations),
                                  (Env.ITEMS_DATASET_PARAMETER, items)):
        name = environment[variable]
        ssm.put_parameter(Name=name, Value=published[name.rsplit("/", 1)[1]], Type="String")
    endpoints = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_SSM": moto_endpoint,
                 "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": personalize_url,
                 "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME": personalize_url}
    with Serving.start(synthesis, tmp_path_factory.mktemp("serving"), endpoints=endpoints, region=REGION,
                       api_keys={KEY}, allowed_origins=[ORIGIN]) as running:
        yield running


def test_posts_registered_through_the_items_handler_are_recommended_and_follow_reads(
        serving: Serving, stand_in: PersonalizeStandIn, personalize_url: str) -> None:
    # GIVEN posts registered with POST /items (the real handler, which sends them with PutItems)
    now = int(time.time())
    posts = [{"itemId": f"tech-{i}", "creationTimestamp": now - 60 * i, "category": "tech"} for i in range(3)]
    posts += [{"itemId": f"food-{i}", "creationTimestamp": now - 60 * i - 30, "category": "food"} for i in range(3)]
    body = json.dumps({"items": posts}).encode()
    status, _, stored = request(f"{serving.url}/items", "POST", body,
                                sign_request("POST", f"{serving.url}/items", body, SANDBOX_CMS, REGION,
                                             {"Content-Type": "application/json"}))
    assert (status, stored) == (200, {"stored": 6, "sentToPersonalize": 6, "pending": 0})
    # WHEN a new reader asks, THEN the stand-in answers through the real recommendations handler, with CORS
    status, headers, body = request(f"{serving.url}/recommendations/reader-1?numResults=3",
                                    headers={"x-api-key": KEY, "Origin": ORIGIN})
    assert status == 200 and body["source"] == "personalize" and len(body["items"]) == 3
    assert body["recommendationId"].startswith("RID-") and headers["Access-Control-Allow-Origin"] == ORIGIN
    # WHEN the reader reads a food post (as the event processor would send it)
    boto3.client("personalize-events", endpoint_url=personalize_url, region_name=REGION,
                 aws_access_key_id="t", aws_secret_access_key="t").put_events(
        trackingId=stand_in.tracking_id, userId="reader-1", sessionId="s-1",
        eventList=[{"eventId": "e-1", "eventType": "read", "itemId": "food-2", "sentAt": time.time()}])
    # THEN food posts lead, and with ?filter=unread the one read is gone
    _, _, after = request(f"{serving.url}/recommendations/reader-1?numResults=2", headers={"x-api-key": KEY})
    assert {i["itemId"] for i in after["items"]} <= {"food-0", "food-1", "food-2"}
    _, _, unread = request(f"{serving.url}/recommendations/reader-1?numResults=6&filter=unread",
                           headers={"x-api-key": KEY})
    assert "food-2" not in [i["itemId"] for i in unread["items"]] and len(unread["items"]) == 5
    assert stand_in.calls()["getRecommendations"][-1]["request"]["filterArn"] == stand_in.filter_arns["unread"]


def test_the_other_surfaces_are_served_through_the_gateway_by_the_real_handler(
        serving: Serving, stand_in: PersonalizeStandIn) -> None:
    # GIVEN posts registered with POST /items (two categories, one published an hour ago)
    now = int(time.time())
    posts = [{"itemId": f"s-{c}-{i}", "creationTimestamp": now - 86400 * (i + 2), "category": c,
              "title": f"{c} {i}", "url": f"https://blog.example.com/{c}/{i}"}
             for c in ("tech", "food") for i in range(3)]
    posts.append({"itemId": "s-new", "creationTimestamp": now - 3600, "category": "tech", "title": "New"})
    body = json.dumps({"items": posts}).encode()
    status, _, _ = request(f"{serving.url}/items", "POST", body,
                           sign_request("POST", f"{serving.url}/items", body, SANDBOX_CMS, REGION,
                                        {"Content-Type": "application/json"}))
    assert status == 200
    key = {"x-api-key": KEY}
    # WHEN a reader asks for posts related to one, trending posts, and a ranking of candidates
    _, _, related = request(f"{serving.url}/items/s-tech-0/related?numResults=20&sessionId=sess-9", headers=key)
    _, _, trending = request(f"{serving.url}/trending?numResults=4", headers=key)
    rank_body = json.dumps({"sessionId": "sess-9", "itemIds": ["s-food-1", "s-tech-2"]}).encode()
    status, _, ranked = request(f"{serving.url}/rank", "POST", rank_body,
                                {**key, "Content-Type": "application/json"})
    # THEN each comes from its own campaign of the stand-in, with metadata from the items store
    assert related["source"] == "personalize" and "s-tech-0" not in [i["itemId"] for i in related["items"]]
    mine = [i for i in related["items"] if i["itemId"].startswith("s-")]  # other tests' posts have no title
    assert mine and all(i["title"] == i["itemId"][2:].replace("-", " ") or i["title"] == "New" for i in mine)
    assert trending["source"] == "personalize" and trending["recommendationId"].startswith("RID-")
    assert status == 200 and sorted(i["itemId"] for i in ranked["items"]) == ["s-food-1", "s-tech-2"]
    campaigns = [c["request"].get("campaignArn") for c in stand_in.calls()["getRecommendations"][-3:]]
    assert stand_in.campaign_arns["related"] in campaigns and stand_in.campaign_arns["ranking"] in campaigns
    # and the gateway's model refuses a rank body the API cannot take
    status, _, _ = request(f"{serving.url}/rank", "POST", b'{"itemIds": []}',
                           {**key, "Content-Type": "application/json"})
    assert status == 400


def test_the_real_handlers_own_400s_pass_through_and_keys_are_enforced(serving: Serving) -> None:
    status, _, body = request(f"{serving.url}/recommendations/u1?numResults=0", headers={"x-api-key": KEY})
    assert status == 400 and "numResults" in body["message"]
    assert request(f"{serving.url}/recommendations/u1")[0] == 403
    empty = b'{"items": []}'
    assert request(f"{serving.url}/items", "POST", empty,
                   sign_request("POST", f"{serving.url}/items", empty, SANDBOX_CMS, REGION))[0] == 400
    assert request(f"{serving.url}/items", "POST", empty, {"x-api-key": KEY})[0] == 403  # the pages' key cannot write


def test_a_raising_handler_behind_the_gateway_is_502_and_the_host_survives(
        synthesis: Synthesis, tmp_path: Path) -> None:
    # GIVEN a host whose handler raises, routed as the recommendations function
    root = tmp_path / "handlers"
    (root / "common").mkdir(parents=True)
    (root / "common" / "__init__.py").write_text("")
    (root / "boom.py").write_text(textwrap.dedent("""
        def handler(event, context):
            if event["pathParameters"]["userId"] == "boom":
                raise RuntimeError("broken")
            return {"statusCode": 200, "body": "{}"}
    """))
    routes = [r for r in serving_routes(synthesis) if r.function != "cp-dev-euw1-items"]
    with LambdaHost.start("boom", {"AWS_DEFAULT_REGION": REGION}, 3, tmp_path / "host", handlers_root=root) as host:
        server = ServingGateway(routes, {"cp-dev-euw1-recommendations": host}, api_keys={KEY},
                                allowed_origins={ORIGIN}).serve()
        try:
            status, _, body = request(f"{server.url}/v1/recommendations/boom", headers={"x-api-key": KEY})
            assert (status, body["message"]) == (502, "Internal server error")
            assert request(f"{server.url}/v1/recommendations/fine", headers={"x-api-key": KEY})[0] == 200
        finally:
            server.stop()


def test_stopping_the_serving_stops_every_host(synthesis: Synthesis, moto_endpoint: str, tmp_path: Path) -> None:
    endpoints = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_SSM": moto_endpoint}
    running = Serving.start(synthesis, tmp_path, endpoints=endpoints, region=REGION, api_keys={KEY},
                            allowed_origins=[])
    try:
        pids = [h.pid for h in running.hosts.values()]
        functions = {r.function for r in serving_routes(synthesis) if r.function}
        assert len(pids) >= len(functions) >= 2 and all(pids)
    finally:
        running.stop()
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_recommendations_function_gets_the_sandbox_origins_for_cors(synthesis: Synthesis) -> None:
    spec = FunctionSpec.from_synthesis(synthesis, "recommendations")
    assert Env.CORS_ALLOWED_ORIGINS in spec.environment  # so Serving.start can replace it
    env = sandbox_environment(spec, {}, REGION, {Env.CORS_ALLOWED_ORIGINS: json.dumps([ORIGIN])})
    assert json.loads(env[Env.CORS_ALLOWED_ORIGINS]) == [ORIGIN]


# --- the static site --------------------------------------------------------------------------------------------

def test_the_static_site_serves_mounted_files_only(tmp_path: Path) -> None:
    site, dist = tmp_path / "site", tmp_path / "dist"
    (site / "posts").mkdir(parents=True)
    dist.mkdir()
    (site / "index.html").write_text("<h1>home</h1>")
    (site / "posts" / "a.html").write_text("<h1>a</h1>")
    (dist / "clickstream.min.js").write_text("window.Clickstream={}")
    (tmp_path / "secret.txt").write_text("no")
    server = StaticSite({"/": site, "/tracker/": dist}).serve()
    try:
        status, headers, body = request(f"{server.url}/")
        assert status == 200 and body == b"<h1>home</h1>" and headers["Content-Type"].startswith("text/html")
        assert request(f"{server.url}/posts/a.html")[2] == b"<h1>a</h1>"
        status, headers, body = request(f"{server.url}/tracker/clickstream.min.js")
        assert status == 200 and "javascript" in headers["Content-Type"]
        assert request(f"{server.url}/../secret.txt")[0] == 404
        assert request(f"{server.url}/%2e%2e/secret.txt")[0] == 404
        assert request(f"{server.url}/missing.html")[0] == 404
        assert request(f"{server.url}/", "POST", b"x")[0] == 405
    finally:
        server.stop()


def test_route_matching_handles_parameters_and_greedy_paths() -> None:
    assert Route("/a/{id}", "GET", False, "MOCK").match("/a/x%2Fy") == {"id": "x/y"}
    assert Route("/a/{id}", "GET", False, "MOCK").match("/a") is None
    assert Route("/files/{proxy+}", "GET", False, "MOCK").match("/files/x/y/z") == {"proxy": "x/y/z"}
