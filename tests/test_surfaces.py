"""The read surfaces of the recommendations function: related, trending, ranking next to for you; fresh posts as
promotions; item metadata in replies; the latency budget; anonymous readers end to end.

Personalize Runtime goes through botocore's Stubber (request shapes validated against the service model) or a local
endpoint; S3 and SSM are moto. The environment is the synthesized dev stack's, with every surface served.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from common.contract import FRESH_FILTER, FRESH_FILTER_EXPRESSION, SURFACE_METRICS, SURFACES, Env, Parameter
from common.readers import ANONYMOUS_RESOURCE
from common.surfaces import MAX_CANDIDATES, METADATA_COLUMNS, personalize_user
from components.settings import SettingsError, parse_settings
from tests.conftest import FakeLambdaContext
from tests.deployed import function_environment
from tests.test_event_processor import TRACKING_ID, click, records_of
from tools.fake_personalize import Reply, serve
from tools.sandbox.gateway import serving_routes
from tools.sandbox.personalize import PersonalizeStandIn
from tools.synth import Synthesis, stack_config, synthesize

REGION = "eu-west-1"
ACCOUNT = "123456789012"
BUCKET = "cp-dev-euw1-raw-123456789012"
NOW = 1_764_200_000
CAMPAIGNS = {s: f"arn:aws:personalize:{REGION}:{ACCOUNT}:campaign/cp-dev-euw1-{s}" for s in SURFACES}
FRESH = f"arn:aws:personalize:{REGION}:{ACCOUNT}:filter/cp-dev-euw1-fresh"
UNREAD = f"arn:aws:personalize:{REGION}:{ACCOUNT}:filter/cp-dev-euw1-unread"
SINCE = str(NOW - 24 * 3600)
PROMOTION = {"name": "fresh", "percentPromotedItems": 20, "filterArn": FRESH, "filterValues": {"SINCE": SINCE}}
SERVED = {"related": ("RelatedServed", "RelatedFallbackServed"), "trending": ("TrendingServed",
                                                                           "TrendingFallbackServed")}


def environment(**overrides: str) -> dict[str, str]:
    """The dev stack's recommendations function environment, serving every surface (metadata for you and ranking)."""
    return {**function_environment("recommendations"), Env.SERVED_SURFACES: json.dumps(list(SURFACES)),
            Env.METADATA_SURFACES: '["for-you", "ranking"]', **overrides}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    deployed = environment()
    for name, value in {**function_environment("items"), **deployed, "AWS_DEFAULT_REGION": REGION,
                        "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                        "POWERTOOLS_SERVICE_NAME": "recommendations"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield deployed


def publish(env: dict[str, str], variable: str, value: Any) -> None:
    boto3.client("ssm").put_parameter(Name=env[variable], Value=value if isinstance(value, str) else json.dumps(value),
                                      Type="String", Overwrite=True)


def published(env: dict[str, str]) -> None:
    """GIVEN training published every surface's campaign and the filters."""
    publish(env, Env.CAMPAIGN_ARNS_PARAMETER, CAMPAIGNS)
    publish(env, Env.FILTER_ARNS_PARAMETER, {"unread": UNREAD, "fresh": FRESH})


def store(*items: dict[str, Any]) -> None:
    """GIVEN posts in the items store, as POST /items keeps them."""
    items_module = importlib.reload(importlib.import_module("items"))
    items_module.service.cache_clear()
    result = items_module.handler({"httpMethod": "POST", "resource": "/items", "body": json.dumps({"items": items}),
                                   "requestContext": {"requestId": "r"}}, FakeLambdaContext())
    assert result["statusCode"] == 200, result


def post(n: int, category: str = "news", created: int = NOW - 10 * 86400) -> dict[str, Any]:
    return {"itemId": f"post-{n}", "creationTimestamp": created + n, "category": category, "title": f"Post {n}",
            "url": f"https://blog.example.com/posts/{n}"}


def shown(n: int, category: str = "news", created: int = NOW - 10 * 86400) -> dict[str, Any]:
    """What a reply shows of ``post(n)``."""
    return {"title": f"Post {n}", "url": f"https://blog.example.com/posts/{n}", "category": category,
            "creationTimestamp": created + n}


@pytest.fixture
def surfaces(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Stubber]]:
    """WHEN the function cold-starts with a Stubber-wrapped Personalize Runtime and a fixed clock."""
    module = importlib.reload(importlib.import_module("recommendations"))
    client = boto3.client("personalize-runtime", config=module.RUNTIME_CONFIG)
    real = boto3.client
    monkeypatch.setattr(boto3, "client",
                        lambda name, **kw: client if name == "personalize-runtime" else real(name, **kw))
    monkeypatch.setattr(module.service().surfaces, "_clock", lambda: float(NOW))
    with Stubber(client) as stubber:
        yield module, stubber
        stubber.assert_no_pending_responses()


def get(resource: str, path: dict[str, str] | None = None, **query: Any) -> dict[str, Any]:
    return {"httpMethod": "GET", "resource": resource, "pathParameters": path,
            "queryStringParameters": {k: str(v) for k, v in query.items()} or None,
            "multiValueQueryStringParameters": {k: [str(v)] for k, v in query.items()} or None,
            "requestContext": {"requestId": "api-req"}}


def rank_event(body: Any, *, verified: bool = True) -> dict[str, Any]:
    """POST /rank; ``verified``: as if the request carried the verified identity of the body's userId."""
    context: dict[str, Any] = {"requestId": "api-req"}
    if verified and isinstance(body, dict) and "userId" in body:
        context["authorizer"] = {"principalId": body["userId"]}
    return {"httpMethod": "POST", "resource": "/rank", "body": body if isinstance(body, str) else json.dumps(body),
            "requestContext": context}


def call(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    result = module.handler(event, FakeLambdaContext())
    return result["statusCode"], json.loads(result["body"])


def emitted(output: str) -> dict[str, Any]:
    """The metrics of the last invocation."""
    last = [json.loads(line) for line in output.splitlines() if '"_aws"' in line][-1]
    return {k: v for k, v in last.items() if k not in ("_aws", "service")}


# --- related ------------------------------------------------------------------------------------------------------

def test_related_posts_come_from_the_similar_items_campaign_with_a_fresh_promotion_and_store_metadata(
        surfaces: tuple[ModuleType, Stubber], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    module, stubber = surfaces
    published(env)
    store(post(1), post(2))
    stubber.add_response("get_recommendations", {
        "itemList": [{"itemId": "post-2", "score": 0.3}, {"itemId": "post-9", "score": 0.1, "promotionName": "fresh"}],
        "recommendationId": "RID-rel"},
        {"campaignArn": CAMPAIGNS["related"], "itemId": "post-1", "userId": "s-anon", "numResults": 2,
         "promotions": [PROMOTION]})

    status, body = call(module, get("/items/{itemId}/related", {"itemId": "post-1"}, numResults=2, sessionId="s-anon"))

    assert status == 200
    assert body == {"itemId": "post-1", "userId": "s-anon", "recommendationId": "RID-rel", "source": "personalize",
                    "items": [{"itemId": "post-2", "score": 0.3, **shown(2)},
                              {"itemId": "post-9", "score": 0.1, "promotion": "fresh"}]}
    assert emitted(capsys.readouterr().out) == {"RelatedServed": [1.0], "RelatedFallbackServed": [0.0]}


def test_related_falls_back_to_the_same_categorys_newest_then_popular(
        surfaces: tuple[ModuleType, Stubber], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    module, _ = surfaces
    store(post(1, "aws"), post(2, "aws"), post(3, "news"), post(4, "aws"))
    boto3.client("s3").put_object(Bucket=BUCKET, Key="published/popular-items.json",
                                  Body=json.dumps({"items": [{"itemId": "post-1"}, {"itemId": "post-3"}]}))

    status, body = call(module, get("/items/{itemId}/related", {"itemId": "post-1"}, numResults=3))

    assert status == 200
    assert (body["source"], body["reason"], body["recommendationId"]) == ("fallback", "no campaign yet", None)
    assert body["items"] == [{"itemId": "post-4", **shown(4, "aws")}, {"itemId": "post-2", **shown(2, "aws")},
                             {"itemId": "post-3", **shown(3, "news")}]
    assert emitted(capsys.readouterr().out) == {"RelatedServed": [1.0], "RelatedFallbackServed": [1.0]}


@pytest.mark.parametrize(("event", "message"), [
    (get("/items/{itemId}/related", {"itemId": "a b"}), "itemId must be"),
    (get("/items/{itemId}/related", {"itemId": "post-1"}, numResults=0), "numResults must be"),
    (get("/items/{itemId}/related", {"itemId": "post-1"}, page=2), "unknown query parameters: page"),
    (get("/items/{itemId}/related", {"itemId": "post-1"}, sessionId='q"'), "sessionId must be"),
    (get("/items/{itemId}/related", {"itemId": "post-1"}, filter="nope"), "unknown filter 'nope'"),
    (get("/trending", sessionId="a b"), "sessionId must be"),
    (get("/trending", filter="unread"), "unknown query parameters: filter"),
])
def test_bad_surface_requests_get_400(surfaces: tuple[ModuleType, Stubber], event: dict[str, Any],
                                      message: str) -> None:
    module, _ = surfaces

    status, body = call(module, event)

    assert status == 400 and message in body["message"]


# --- trending -----------------------------------------------------------------------------------------------------

def test_trending_asks_the_trending_campaign_even_without_a_reader(
        surfaces: tuple[ModuleType, Stubber], env: dict[str, str]) -> None:
    module, stubber = surfaces
    published(env)
    stubber.add_response("get_recommendations", {"itemList": [{"itemId": "post-5", "score": 0.9}],
                                                 "recommendationId": "RID-tr"},
                         {"campaignArn": CAMPAIGNS["trending"], "userId": "anonymous", "numResults": 5,
                          "promotions": [PROMOTION]})

    _, body = call(module, get("/trending", numResults=5))

    assert body == {"items": [{"itemId": "post-5", "score": 0.9}], "recommendationId": "RID-tr",
                    "source": "personalize"}


def test_trending_falls_back_to_popular_then_newest(surfaces: tuple[ModuleType, Stubber], env: dict[str, str]) -> None:
    module, stubber = surfaces
    published(env)
    store(post(1), post(2))
    stubber.add_client_error("get_recommendations", service_error_code="ThrottlingException", http_status_code=400)

    _, body = call(module, get("/trending", numResults=5, sessionId="s-1"))

    assert (body["source"], body["reason"]) == ("fallback", "personalize ThrottlingException")
    assert [i["itemId"] for i in body["items"]] == ["post-2", "post-1"]


@pytest.mark.parametrize("event", [
    get("/trending", userId="alice"), get("/items/{itemId}/related", {"itemId": "post-1"}, userId="alice"),
    rank_event({"userId": "alice", "itemIds": ["a"]}, verified=False),
    {**rank_event({"userId": "alice", "itemIds": ["a"]}, verified=False),
     "requestContext": {"requestId": "r", "authorizer": {"principalId": "bob"}}}])
def test_a_user_id_without_that_readers_verified_identity_is_refused(surfaces: tuple[ModuleType, Stubber],
                                                                       event: dict[str, Any]) -> None:
    """GIVEN a stack that verifies signed-in readers (dev), WHEN a page names a userId it has no token for, THEN 403:
    no one reads another reader's personalization through these surfaces."""
    module, _ = surfaces

    status, body = call(module, event)

    assert status == 403 and "sessionId" in body["message"]


def test_without_reader_verification_a_user_id_is_taken_as_given(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.READERS_VERIFIED, "false")
    module = importlib.reload(importlib.import_module("recommendations"))

    status, body = call(module, get("/trending", userId="alice"))

    assert (status, body["userId"], body["source"]) == (200, "alice", "fallback")


# --- ranking ------------------------------------------------------------------------------------------------------

def test_ranking_reorders_the_candidates_with_personalize_metadata(
        surfaces: tuple[ModuleType, Stubber], env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    module, stubber = surfaces
    published(env)
    metadata = {"TITLE": "Post 3", "URL": "https://blog.example.com/posts/3", "CATEGORY": "aws|cloud",
                "CREATION_TIMESTAMP": "1764000003"}
    stubber.add_response("get_personalized_ranking", {
        "personalizedRanking": [{"itemId": "post-3", "score": 0.7, "metadata": metadata},
                                {"itemId": "post-1", "score": 0.2}], "recommendationId": "RID-rank"},
        {"campaignArn": CAMPAIGNS["ranking"], "inputList": ["post-1", "post-3"], "userId": "reader-1",
         "filterArn": UNREAD, "context": {"DEVICE": "mobile"}, "metadataColumns": {"ITEMS": list(METADATA_COLUMNS)}})

    status, body = call(module, rank_event({"userId": "reader-1", "itemIds": ["post-1", "post-3"], "filter": "unread",
                                            "context": {"DEVICE": "mobile"}}))

    assert status == 200
    assert body["items"] == [{"itemId": "post-3", "score": 0.7, "title": "Post 3",
                              "url": "https://blog.example.com/posts/3", "category": "aws",
                              "creationTimestamp": 1764000003}, {"itemId": "post-1", "score": 0.2}]
    assert (body["userId"], body["recommendationId"]) == ("reader-1", "RID-rank")
    assert emitted(capsys.readouterr().out) == {"RankingServed": [1.0], "RankingFallbackServed": [0.0]}


def test_ranking_falls_back_to_the_candidates_in_their_order(surfaces: tuple[ModuleType, Stubber]) -> None:
    module, _ = surfaces
    store(post(2))

    _, body = call(module, rank_event({"sessionId": "s-1", "itemIds": ["post-7", "post-2"]}))

    assert (body["source"], body["reason"]) == ("fallback", "no campaign yet")
    assert body["items"] == [{"itemId": "post-7"}, {"itemId": "post-2", **shown(2)}]


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "the body must be a JSON object"),
    ([], "the body must be a JSON object"),
    ({"itemIds": ["a"]}, "userId or sessionId is required"),
    ({"userId": "u", "itemIds": []}, f"itemIds must be a list of 1 to {MAX_CANDIDATES}"),
    ({"userId": "u", "itemIds": [f"p-{i}" for i in range(MAX_CANDIDATES + 1)]}, "itemIds must be a list"),
    ({"userId": "u", "itemIds": ["a", "a"]}, "each itemId may appear once"),
    ({"userId": "u", "itemIds": ["a b"]}, "each itemId must be"),
    ({"userId": "u", "itemIds": ["a"], "numResults": 3}, "unknown body fields: numResults"),
    ({"userId": "u", "itemIds": ["a"], "context": ["x"]}, "context must be an object"),
])
def test_bad_rank_bodies_get_400(surfaces: tuple[ModuleType, Stubber], body: Any, message: str) -> None:
    module, _ = surfaces

    status, reply = call(module, rank_event(body))

    assert status == 400 and message in reply["message"]


def test_the_whole_candidate_limit_is_accepted(surfaces: tuple[ModuleType, Stubber], env: dict[str, str]) -> None:
    module, stubber = surfaces
    published(env)
    ids = [f"p-{i}" for i in range(MAX_CANDIDATES)]
    stubber.add_response("get_personalized_ranking", {"personalizedRanking": [{"itemId": i} for i in ids[::-1]]},
                         {"campaignArn": CAMPAIGNS["ranking"], "inputList": ids, "userId": "u",
                          "metadataColumns": {"ITEMS": list(METADATA_COLUMNS)}})

    _, body = call(module, rank_event({"userId": "u", "itemIds": ids}))

    assert [i["itemId"] for i in body["items"]] == ids[::-1]


# --- for you, fresh posts, configuration --------------------------------------------------------------------------

def test_for_you_asks_metadata_and_the_fresh_filter_gets_its_since_value(
        surfaces: tuple[ModuleType, Stubber], env: dict[str, str]) -> None:
    module, stubber = surfaces
    published(env)
    stubber.add_response("get_recommendations", {"itemList": [{"itemId": "new-1", "score": 1.0}]},
                         {"campaignArn": CAMPAIGNS["for-you"], "userId": "reader-1", "numResults": 3,
                          "filterArn": FRESH, "filterValues": {"SINCE": SINCE}, "promotions": [PROMOTION],
                          "metadataColumns": {"ITEMS": list(METADATA_COLUMNS)}})

    status, body = call(module, get("/recommendations/{userId}", {"userId": "reader-1"}, numResults=3, filter="fresh"))

    assert (status, body["source"], body["userId"]) == (200, "personalize", "reader-1")


def test_the_older_campaign_parameter_still_serves_for_you(surfaces: tuple[ModuleType, Stubber],
                                                           env: dict[str, str]) -> None:
    module, stubber = surfaces
    publish(env, Env.CAMPAIGN_ARN_PARAMETER, CAMPAIGNS["for-you"])
    stubber.add_response("get_recommendations", {"itemList": [{"itemId": "a"}]},
                         {"campaignArn": CAMPAIGNS["for-you"], "userId": "u", "numResults": 25,
                          "metadataColumns": {"ITEMS": list(METADATA_COLUMNS)}})

    _, body = call(module, get("/recommendations/{userId}", {"userId": "u"}))

    assert body["source"] == "personalize"


def test_a_surface_the_stack_does_not_serve_is_a_404(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(Env.SERVED_SURFACES, '["for-you"]')
    module = importlib.reload(importlib.import_module("recommendations"))

    status, _ = call(module, get("/trending"))

    assert status == 404


@pytest.mark.parametrize(("variable", "value"), [
    (Env.SERVED_SURFACES, '["for-you", "everything"]'), (Env.DEADLINE_MS, "0"), (Env.FRESH_POSTS_PERCENT, "101"),
    (Env.FRESH_POSTS_HOURS, "0"), (Env.DEADLINE_MS, "fast"), (Env.READERS_VERIFIED, "yes")])
def test_bad_surface_configuration_fails_the_cold_start(env: dict[str, str], variable: str, value: str) -> None:
    from recommendations import build_service

    from common.config import MissingConfigurationError

    with pytest.raises(MissingConfigurationError, match=variable):
        build_service({**env, variable: value})


def test_surface_metrics_of_the_contract_are_the_ones_the_handler_emits() -> None:
    import recommendations

    assert recommendations.SERVED_METRICS == SURFACE_METRICS


def test_fresh_posts_need_the_fresh_filter() -> None:
    with pytest.raises(SettingsError, match="freshPostsPercent"):
        parse_settings({"environment": "dev", "personalizeFilters": '["unread=EXCLUDE ItemID WHERE '
                        'Interactions.EVENT_TYPE IN (\\"read\\")"]'}, region=REGION, stack="dev")
    settings = parse_settings({"environment": "dev", "freshPostsPercent": "0", "personalizeFilters": "[]"},
                              region=REGION, stack="dev")
    assert settings.serving.fresh_posts_percent == 0
    assert parse_settings({"environment": "dev"}, region=REGION, stack="dev").published.filters[FRESH_FILTER] == (
        FRESH_FILTER_EXPRESSION)


@pytest.mark.parametrize(("path_id", "user"), [("anon-s-1", "s-1"), ("alice", "alice"), ("anon-", "anon-"),
                                              ("x-anon-1", "x-anon-1")])
def test_an_anonymous_path_id_is_the_session_id_for_personalize(path_id: str, user: str) -> None:
    assert personalize_user(path_id) == user


# --- the latency budget -------------------------------------------------------------------------------------------

class Hanging:
    """A Personalize endpoint that answers only when released (or after 10 s)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.calls = 0

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        self.calls += 1
        self.released.wait(10)
        return 200, {}, b'{"itemList": []}'


@pytest.mark.parametrize("surface", ["for-you", "related"])
def test_a_hanging_personalize_costs_the_deadline_not_the_sdk_timeouts(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch, surface: str) -> None:
    """GIVEN Personalize that never answers and a 300 ms deadline, WHEN a page asks, THEN the fallback comes back well
    before the SDK's own timeouts and retries would have given up."""
    published(env)
    store(post(1), post(2))
    hanging = Hanging()
    monkeypatch.setenv(Env.DEADLINE_MS, "300")
    with serve(hanging) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME", url)
        module = importlib.reload(importlib.import_module("recommendations"))
        event = (get("/recommendations/{userId}", {"userId": "u"}) if surface == "for-you"
                 else get("/items/{itemId}/related", {"itemId": "post-1"}))
        module.service()  # the cold start is not the request's
        started = time.monotonic()
        try:
            _, body = call(module, event)
            elapsed = time.monotonic() - started
        finally:
            hanging.released.set()

    assert (body["source"], body["reason"]) == ("fallback", "personalize deadline exceeded")
    assert body["items"] and hanging.calls == 1
    assert elapsed < 1.0


# --- anonymous readers, end to end --------------------------------------------------------------------------------

def test_an_anonymous_reader_gets_recommendations_from_their_session_and_keeps_them_on_sign_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN an anonymous reader's clicks (session id only) through the event processor into the stand-in,
    WHEN the page asks on the anonymous route for ``anon-<session id>``, THEN Personalize is asked for the session id
    and the list follows that session's reading; and after sign-in (events with user and session id) the signed-in
    reader's list still builds on that history."""
    stand_in = PersonalizeStandIn(region=REGION, prefix="cp-dev-euw1", clock=lambda: 1_764_150_100.0)
    with mock_aws(), serve(stand_in) as url:
        processor_env = function_environment("event_processor")
        serving_env = environment()
        for name, value in {**processor_env, **serving_env, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t",
                            "AWS_SECRET_ACCESS_KEY": "t", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": url,
                            "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME": url}.items():
            monkeypatch.setenv(name, value)
        boto3.client("sqs").create_queue(QueueName=processor_env[Env.DEAD_LETTER_QUEUE_URL].rsplit("/", 1)[1])
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        ssm = boto3.client("ssm")
        for key, value in {**stand_in.parameters(), Parameter.TRACKING_ID: stand_in.tracking_id}.items():
            ssm.put_parameter(Name=f"/cp-dev-euw1/personalize/{key}", Value=value, Type="String", Overwrite=True)
        assert TRACKING_ID  # the processor reads the stand-in's tracking id, published above
        stand_in.handle("POST", "/items", json.dumps({"datasetArn": stand_in.dataset_arn, "items": [
            {"itemId": f"post-{n}", "properties": json.dumps({"creationTimestamp": 1_764_000_000 + n,
                                                              "category": "aws" if n < 5 else "news"})}
            for n in range(1, 9)]}).encode())
        # Another reader's session links post-1 and post-7 (co-visitation).
        processor = importlib.reload(importlib.import_module("event_processor"))
        processor.processor.cache_clear()
        others = [click(n, session="s-other", user=None) for n in (1, 7)]
        anonymous = [click(n, session="s-anon", user=None) for n in (1, 2)]
        assert processor.handler({"Records": records_of(others + anonymous)}, FakeLambdaContext()) == {
            "batchItemFailures": []}
        sent = [c for c in stand_in.calls()["putEvents"] if c["sessionId"] == "s-anon"]
        assert sent and all("userId" not in c for c in sent)

        recommendations = importlib.reload(importlib.import_module("recommendations"))
        _, anonymous_list = call(recommendations, get(ANONYMOUS_RESOURCE, {"userId": "anon-s-anon"}, numResults=3))
        _, related = call(recommendations, get("/items/{itemId}/related", {"itemId": "post-1"}, sessionId="s-anon"))

        signed_in = [click(10, session="s-anon", user="alice")]
        assert processor.handler({"Records": records_of(signed_in)}, FakeLambdaContext()) == {"batchItemFailures": []}
        _, alice = call(recommendations, get("/recommendations/{userId}", {"userId": "alice"}, numResults=3))

    asked = stand_in.calls()["getRecommendations"]
    assert asked[0]["request"]["userId"] == "s-anon"
    assert anonymous_list["source"] == "personalize"
    assert "post-7" in [i["itemId"] for i in anonymous_list["items"]]  # from the session's co-visitation
    assert related["source"] == "personalize" and related["userId"] == "s-anon"
    assert asked[1]["request"]["itemId"] == "post-1" and asked[1]["request"]["userId"] == "s-anon"
    assert alice["source"] == "personalize"
    assert "post-7" in [i["itemId"] for i in alice["items"]]  # the anonymous session's history carried over


# --- the program: routes, environment and permissions per configured surface ---------------------------------------

@pytest.fixture(scope="module")
def every_surface() -> Synthesis:
    config = {**stack_config("dev"), "clickstream-personalization:personalizeSurfaces": json.dumps(list(SURFACES))}
    return synthesize(config, stack="dev", preview=False)


def only_for_you() -> Synthesis:
    config = {**stack_config("dev"), "clickstream-personalization:personalizeSurfaces": '["for-you"]',
              "clickstream-personalization:personalizeMetadataSurfaces": "[]"}
    return synthesize(config, stack="dev", preview=False)


def recommendations_function(synthesis: Synthesis) -> Any:
    return next(f for f in synthesis.of_type("aws:lambda/function:Function")
                if f.inputs["handler"].startswith("recommendations."))


def test_only_the_configured_surfaces_get_routes(every_surface: Synthesis) -> None:
    routes = {(r.resource, r.method) for r in serving_routes(every_surface)}
    assert {("/items/{itemId}/related", "GET"), ("/trending", "GET"), ("/rank", "POST"),
            ("/recommendations/{userId}", "GET")} <= routes
    assert {("/items/{itemId}/related", "OPTIONS"), ("/trending", "OPTIONS"), ("/rank", "OPTIONS")} <= routes
    for_you_only = {(r.resource, r.method) for r in serving_routes(only_for_you())}
    assert not {r for r, _ in for_you_only} & {"/items/{itemId}/related", "/trending", "/rank"}
    assert ("/recommendations/{userId}", "GET") in for_you_only


def test_the_function_is_told_its_surfaces_and_may_rank_only_when_ranking_is_served(
        every_surface: Synthesis) -> None:
    variables = recommendations_function(every_surface).inputs["environment"]["variables"]
    assert json.loads(variables[Env.SERVED_SURFACES]) == list(SURFACES)
    assert variables[Env.DEADLINE_MS] == "400" and variables[Env.FRESH_POSTS_PERCENT] == "20"

    def actions(synthesis: Synthesis) -> set[str]:
        policies = [p for p in synthesis.of_type("aws:iam/rolePolicy:RolePolicy") if "recommendations" in p.name]
        return {a for p in policies for s in json.loads(p.inputs["policy"])["Statement"]
                for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    assert "personalize:GetPersonalizedRanking" in actions(every_surface)
    assert "personalize:GetPersonalizedRanking" not in actions(only_for_you())
    assert {"personalize:GetRecommendations", "ssm:GetParameter", "s3:GetObject"} <= actions(every_surface)


def test_the_personalize_client_timeouts_follow_the_deadline() -> None:
    from common.surfaces import runtime_config

    config = runtime_config(0.4)

    assert (config.connect_timeout, config.read_timeout) == pytest.approx((0.3, 0.3))
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
