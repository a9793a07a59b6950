"""The serving handlers: recommendations with their fallback, and new items.

Personalize Runtime and PutItems go through botocore's Stubber (validated against the service models); S3 and SSM
are moto. GIVEN/WHEN/THEN, with event factories for API Gateway proxy events.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import Stubber
from moto import mock_aws

from common.catalog import Item, parse_items
from common.recommend import BadRequestError, RecommendationRequest, parse_request
from tests.conftest import FakeLambdaContext
from tests.deployed import function_environment
from tools.fake_personalize import error_reply, operation_model, serve

REGION = "eu-west-1"
BUCKET = "cp-dev-euw1-raw-123456789012"
CAMPAIGN_PARAMETER = "/cp-dev-euw1/personalize/campaign-arn"
FILTERS_PARAMETER = "/cp-dev-euw1/personalize/filter-arns"
DATASET_PARAMETER = "/cp-dev-euw1/personalize/items-dataset-arn"
CAMPAIGN = f"arn:aws:personalize:{REGION}:123456789012:campaign/cp-dev-euw1-campaign"
UNREAD = f"arn:aws:personalize:{REGION}:123456789012:filter/cp-dev-euw1-unread"
DATASET = f"arn:aws:personalize:{REGION}:123456789012:dataset/cp-dev-euw1/ITEMS"


def get_event(user: str = "reader-1", **query: Any) -> dict[str, Any]:
    single = {k: v[-1] if isinstance(v, list) else str(v) for k, v in query.items()}
    multi = {k: v if isinstance(v, list) else [str(v)] for k, v in query.items()}
    return {"httpMethod": "GET", "resource": "/recommendations/{userId}", "pathParameters": {"userId": user},
            "queryStringParameters": single or None, "multiValueQueryStringParameters": multi or None,
            "requestContext": {"requestId": "api-req-1"}}


def post_event(body: Any) -> dict[str, Any]:
    return {"httpMethod": "POST", "resource": "/items", "body": body if isinstance(body, str) else json.dumps(body),
            "requestContext": {"requestId": "api-req-2"}}


def post(n: int, ts: int = 1_764_000_000, **fields: Any) -> dict[str, Any]:
    return {"itemId": f"post-{n}", "creationTimestamp": ts + n, **fields}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """GIVEN the environment the stack gives both serving functions (they share the bucket and cache settings)."""
    deployed = {**function_environment("recommendations"), **function_environment("items")}
    assert (deployed["DATA_BUCKET"], deployed["CAMPAIGN_ARN_PARAMETER"], deployed["FILTER_ARNS_PARAMETER"],
            deployed["ITEMS_DATASET_PARAMETER"]) == (BUCKET, CAMPAIGN_PARAMETER, FILTERS_PARAMETER, DATASET_PARAMETER)
    for name, value in {**deployed, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t",
                        "AWS_SECRET_ACCESS_KEY": "t", "POWERTOOLS_SERVICE_NAME": "serving"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield


def publish(name: str, value: str) -> None:
    boto3.client("ssm").put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def load(module: str) -> ModuleType:
    """A cold start: the module loads with the environment the stack gives it."""
    return importlib.reload(importlib.import_module(module))


def stubbed(monkeypatch: pytest.MonkeyPatch, service: str, **config: Any) -> Iterator[Stubber]:
    """Hand the handler a Stubber-wrapped client for ``service``; every other client is the usual (moto) one."""
    client = boto3.client(service, **config)
    real_client = boto3.client
    monkeypatch.setattr(boto3, "client", lambda name, **kw: client if name == service else real_client(name, **kw))
    with Stubber(client) as stubber:
        yield stubber


@pytest.fixture
def recommendations(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Stubber]]:
    module = load("recommendations")
    for stubber in stubbed(monkeypatch, "personalize-runtime", config=module.RUNTIME_CONFIG):
        yield module, stubber


def call(module: ModuleType, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    result = module.handler(event, FakeLambdaContext())
    return result["statusCode"], json.loads(result["body"])


# --- request validation -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("event", "message"), [
    (get_event(user="has space"), "userId must be"),
    (get_event(user='quote"d'), "userId must be"),
    (get_event(user="x" * 129), "userId must be"),
    (get_event(numResults=0), "numResults must be an integer from 1 to 100, got '0'"),
    (get_event(numResults=101), "numResults must be an integer from 1 to 100"),
    (get_event(numResults="ten"), "numResults must be an integer"),
    (get_event(filter="premium"), "unknown filter 'premium'; filters: unread"),
    (get_event(sessionId="a b"), "sessionId must be"),
    (get_event(context="no-colon"), "context entries must be KEY:value"),
    (get_event(context=[f"K{i}:v" for i in range(11)]), "at most 10 context entries"),
    (get_event(page=2), "unknown query parameters: page"),
])
def test_bad_parameters_are_refused_with_a_clear_message(event: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        parse_request(event, ["unread"])


def test_good_parameters_are_read() -> None:
    request = parse_request(get_event(numResults=5, filter="unread", sessionId="s-1",
                                      context=["DEVICE:mobile", "TIME_OF_DAY:evening"]), ["unread"])

    assert request == RecommendationRequest("reader-1", 5, "unread", "s-1",
                                            {"DEVICE": "mobile", "TIME_OF_DAY": "evening"})


# --- recommendations --------------------------------------------------------------------------------------------------

def test_personalize_answers_with_items_scores_and_recommendation_id(
        recommendations: tuple[ModuleType, Stubber]) -> None:
    module, stubber = recommendations
    publish(CAMPAIGN_PARAMETER, CAMPAIGN)
    publish(FILTERS_PARAMETER, json.dumps({"unread": UNREAD}))
    stubber.add_response("get_recommendations", {
        "itemList": [{"itemId": "post-9", "score": 0.42}, {"itemId": "post-3", "score": 0.2}],
        "recommendationId": "RID-1"},
        {"campaignArn": CAMPAIGN, "userId": "reader-1", "numResults": 2, "filterArn": UNREAD,
         "context": {"DEVICE": "mobile"}})

    status, body = call(module, get_event(numResults=2, filter="unread", context="DEVICE:mobile"))

    assert status == 200
    assert body == {"userId": "reader-1", "items": [{"itemId": "post-9", "score": 0.42},
                                                    {"itemId": "post-3", "score": 0.2}],
                    "recommendationId": "RID-1", "source": "personalize"}


def test_without_a_campaign_the_newest_items_are_served(recommendations: tuple[ModuleType, Stubber],
                                                        aws: None) -> None:
    module, _ = recommendations
    items_module = load("items")
    items_module.service.cache_clear()
    items_module.handler(post_event({"items": [post(1), post(3), post(2)]}), FakeLambdaContext())

    status, body = call(module, get_event(numResults=2))

    assert status == 200
    assert body["source"] == "fallback" and body["reason"] == "no campaign yet"
    assert body["items"] == [{"itemId": "post-3", "creationTimestamp": 1_764_000_003},
                             {"itemId": "post-2", "creationTimestamp": 1_764_000_002}]
    assert body["recommendationId"] is None


def test_the_popular_list_training_publishes_is_preferred(recommendations: tuple[ModuleType, Stubber]) -> None:
    module, _ = recommendations
    boto3.client("s3").put_object(Bucket=BUCKET, Key="published/popular-items.json",
                                  Body=json.dumps({"items": [{"itemId": "hit-1"}, {"itemId": "hit-2"}]}))

    _, body = call(module, get_event(numResults=5))

    assert body["items"] == [{"itemId": "hit-1"}, {"itemId": "hit-2"}]


@pytest.mark.parametrize(("fault", "reason"), [
    ({"service_error_code": "ThrottlingException", "http_status_code": 400}, "personalize ThrottlingException"),
    ({"service_error_code": "InternalServerError", "http_status_code": 500}, "personalize InternalServerError"),
    ({"service_error_code": "ResourceNotFoundException", "http_status_code": 404},
     "personalize ResourceNotFoundException"),
])
def test_personalize_failures_fall_back_without_an_error(recommendations: tuple[ModuleType, Stubber],
                                                         fault: dict[str, Any], reason: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    module, stubber = recommendations
    publish(CAMPAIGN_PARAMETER, CAMPAIGN)
    stubber.add_client_error("get_recommendations", **fault)

    status, body = call(module, get_event())

    assert (status, body["source"], body["reason"]) == (200, "fallback", reason)
    assert '"FallbackServed":[1.0]' in capsys.readouterr().out.replace(" ", "")


def test_a_timeout_falls_back(recommendations: tuple[ModuleType, Stubber], monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = recommendations
    publish(CAMPAIGN_PARAMETER, CAMPAIGN)

    class Slow:
        def get_recommendations(self, **_: Any) -> dict[str, Any]:
            raise ReadTimeoutError(endpoint_url="https://personalize-runtime")

    monkeypatch.setattr(module.service().surfaces, "_runtime", Slow())

    _, body = call(module, get_event())

    assert (body["source"], body["reason"]) == ("fallback", "personalize ReadTimeoutError")


def test_an_unknown_user_with_no_recommendations_gets_the_fallback(
        recommendations: tuple[ModuleType, Stubber]) -> None:
    module, stubber = recommendations
    publish(CAMPAIGN_PARAMETER, CAMPAIGN)
    stubber.add_response("get_recommendations", {"itemList": [], "recommendationId": "RID-2"})

    _, body = call(module, get_event(user="never-seen"))

    assert (body["source"], body["reason"]) == ("fallback", "no recommendations for this user")


def test_a_configured_filter_not_yet_published_falls_back(recommendations: tuple[ModuleType, Stubber]) -> None:
    module, _ = recommendations
    publish(CAMPAIGN_PARAMETER, CAMPAIGN)

    status, body = call(module, get_event(filter="unread"))

    assert (status, body["reason"]) == (200, "filter unread not published yet")


def test_an_unknown_filter_is_a_400_never_a_5xx(recommendations: tuple[ModuleType, Stubber]) -> None:
    module, _ = recommendations

    status, body = call(module, get_event(filter="does-not-exist"))

    assert status == 400
    assert body == {"message": "unknown filter 'does-not-exist'; filters: fresh, unread", "requestId": "api-req-1"}


def test_when_the_store_is_unreachable_the_fallback_is_empty_not_an_error(aws: None) -> None:
    from common.recommend import Fallback

    assert Fallback(boto3.client("s3"), "bucket-that-does-not-exist", 60).items(10) == []


# --- items ------------------------------------------------------------------------------------------------------------

@pytest.fixture
def items_module(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, Stubber]]:
    module = load("items")
    module.service.cache_clear()
    for stubber in stubbed(monkeypatch, "personalize-events"):
        yield module, stubber


def test_items_are_stored_and_only_stored_before_an_items_dataset_exists(
        items_module: tuple[ModuleType, Stubber]) -> None:
    module, _ = items_module

    status, body = call(module, post_event({"items": [post(1, category="engineering", tags=["aws", "kinesis"],
                                                              title="Streams — a primer")]}))

    assert (status, body) == (200, {"stored": 1, "sentToPersonalize": 0, "pending": 1})
    stored = json.loads(boto3.client("s3").get_object(Bucket=BUCKET, Key="items/by-id/post-1.json")["Body"].read())
    assert stored == {"itemId": "post-1", "creationTimestamp": 1_764_000_001, "category": "engineering",
                      "tags": ["aws", "kinesis"], "title": "Streams — a primer"}


def test_items_reach_personalize_in_calls_of_ten(items_module: tuple[ModuleType, Stubber]) -> None:
    module, stubber = items_module
    publish(DATASET_PARAMETER, DATASET)
    items = [post(i, category="news") for i in range(12)]
    parsed = parse_items({"items": items})
    stubber.add_response("put_items", {}, {"datasetArn": DATASET,
                                           "items": [i.personalize_item() for i in parsed[:10]]})
    stubber.add_response("put_items", {}, {"datasetArn": DATASET,
                                           "items": [i.personalize_item() for i in parsed[10:]]})

    status, body = call(module, post_event({"items": items}))

    assert (status, body) == (200, {"stored": 12, "sentToPersonalize": 12, "pending": 0})


class ThrottlingPutItems:
    """A local PutItems endpoint that throttles its first ``throttled`` calls, then accepts."""

    def __init__(self, throttled: int) -> None:
        self.throttled, self.calls = throttled, 0

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.calls += 1
        if self.calls <= self.throttled:
            return error_reply(operation_model("personalize-events", "PutItems"), "ThrottlingException",
                               "Rate exceeded")
        return 200, {}, b"{}"


@pytest.mark.parametrize(("throttled", "expected"), [
    (2, {"stored": 1, "sentToPersonalize": 1, "pending": 0}),
    (10, {"stored": 1, "sentToPersonalize": 0, "pending": 1}),
])
def test_put_items_throttling_is_retried_by_the_sdk_then_reported_pending(
        aws: None, monkeypatch: pytest.MonkeyPatch, throttled: int, expected: dict[str, int]) -> None:
    """GIVEN PutItems throttling, WHEN items arrive, THEN botocore's standard retry mode retries (4 attempts in all)
    and what still fails is left for the next training's import."""
    endpoint = ThrottlingPutItems(throttled)
    monkeypatch.setattr(ExponentialBackoff, "_DEFAULT_BACKOFF_CONFIG",
                        {"throttling_base_scale": 0.001, "non_throttling_base_scale": 0.001})
    publish(DATASET_PARAMETER, DATASET)
    with serve(endpoint) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS", url)
        module = load("items")
        module.service.cache_clear()

        status, body = call(module, post_event({"items": [post(1)]}))

    assert (status, body) == (200, expected)
    assert endpoint.calls == min(throttled + 1, 4)


def test_items_personalize_properties_follow_the_items_dataset() -> None:
    item = Item("post-1", 1_764_000_000, "engineering", ("aws", "kinesis"), "Streams — a primer",
                "https://blog.example.com/p/1")

    assert item.personalize_item() == {"itemId": "post-1", "properties": (
        '{"creationTimestamp":1764000000,"category":"engineering","tags":"aws|kinesis",'
        '"title":"Streams — a primer","url":"https://blog.example.com/p/1"}')}
    assert json.loads(Item("post-2", 1).personalize_item()["properties"]) == {"creationTimestamp": 1}


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "the body must be JSON"),
    ({"items": []}, "invalid items"),
    ({"items": [post(i) for i in range(101)]}, "invalid items"),
    ({"items": [{"itemId": "post-1"}]}, "invalid items"),
    ({"items": [post(1, creationTimestamp=1_764_000_000_000)]}, "invalid items"),
    ({"items": [post(1, category="a|b")]}, "invalid items"),
    ({"items": [post(1, tags=["x"] * 21)]}, "invalid items"),
    ({"items": [post(1, price=3)]}, "invalid items"),
    ({"items": [post(1), post(1)]}, "each itemId may appear once per request"),
])
def test_bad_item_batches_get_400(items_module: tuple[ModuleType, Stubber], body: Any, message: str) -> None:
    module, _ = items_module

    status, reply = call(module, post_event(body))

    assert status == 400 and message in reply["message"]


def test_a_store_failure_asks_the_client_to_retry(items_module: tuple[ModuleType, Stubber],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = items_module
    monkeypatch.setenv("DATA_BUCKET", "bucket-that-does-not-exist")
    module.service.cache_clear()

    result = module.handler(post_event({"items": [post(1)]}), FakeLambdaContext())

    assert result["statusCode"] == 503 and result["headers"]["Retry-After"] == "1"


@pytest.mark.parametrize(("origin", "allowed"), [("https://www.example.com", True), ("https://evil.example", False)])
def test_browsers_of_configured_origins_may_read_recommendations(
        recommendations: tuple[ModuleType, Stubber], monkeypatch: pytest.MonkeyPatch, origin: str,
        allowed: bool) -> None:
    module, _ = recommendations
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", '["https://www.example.com"]')
    module.service.cache_clear()

    result = module.handler({**get_event(), "headers": {"origin": origin}}, FakeLambdaContext())

    assert result["headers"].get("Access-Control-Allow-Origin") == (origin if allowed else None)
    assert result["headers"]["Vary"] == "Origin"
