"""The serving API component: routes, their functions and permissions, the stage, the key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.serving import ServingApi, ServingArgs
from components.settings import StackSettings, parse_settings
from components.templates import items_schema
from components.waf import WebFirewall, WebFirewallArgs
from tests.conftest import REGION, Synthesize, assert_policy_pack_passes
from tools.policy_eval import evaluate
from tools.synth import ACCOUNT_ID, Synthesis

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0000"
BUCKET = f"cp-dev-euw1-raw-{ACCOUNT_ID}"


def run(synth: Synthesize, preview: bool = False, **values: str) -> Synthesis:
    settings = parse_settings({"environment": "dev", **values}, region=REGION, stack="dev")
    return synth(lambda: ServingApi("srv", serving_args(settings)), preview=preview)


def serving_args(settings: StackSettings) -> ServingArgs:
    return ServingArgs(stack=settings, serving=settings.serving, sites=settings.sites, published=settings.published,
                       key_arn=KEY_ARN, data_bucket_name=BUCKET, data_bucket_arn=f"arn:aws:s3:::{BUCKET}")


def methods(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {r.inputs["httpMethod"]: r.inputs for r in synthesis.of_type("aws:apigateway/method:Method")}


def function(synthesis: Synthesis, name: str) -> dict[str, Any]:
    return synthesis.find("aws:lambda/function:Function", f"srv-{name}-function").inputs


def statements(synthesis: Synthesis, name: str) -> dict[str, dict[str, Any]]:
    policy = synthesis.find("aws:iam/rolePolicy:RolePolicy", f"srv-{name}-policy").inputs["policy"]
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


def test_reads_need_the_api_key_writes_sigv4_and_both_proxy_to_their_function(synth: Synthesize) -> None:
    synthesis = run(synth)

    by_method = methods(synthesis)
    assert set(by_method) == {"GET", "POST"}
    assert (by_method["GET"]["apiKeyRequired"], by_method["GET"]["authorization"]) == (True, "NONE")
    assert (by_method["POST"]["apiKeyRequired"], by_method["POST"]["authorization"]) == (False, "AWS_IAM")
    assert by_method["GET"]["requestParameters"] == {"method.request.path.userId": True}
    integrations = {r.name: r.inputs for r in synthesis.of_type("aws:apigateway/integration:Integration")}
    recommendations = synthesis.find("aws:lambda/function:Function", "srv-recommendations-function")
    assert integrations["srv-get-recommendations-integration"]["type"] == "AWS_PROXY"
    assert integrations["srv-get-recommendations-integration"]["uri"] == recommendations.outputs["invokeArn"]


def test_new_items_are_validated_at_the_gateway_with_the_handlers_schema(synth: Synthesize) -> None:
    synthesis = run(synth)

    post = methods(synthesis)["POST"]
    [model] = synthesis.of_type("aws:apigateway/model:Model")
    assert post["requestValidatorId"] == "srv-validator-id"
    assert post["requestModels"] == {"application/json": "NewItemsBatch"}
    assert json.loads(model.inputs["schema"]) == items_schema()


def test_each_function_may_be_invoked_by_its_route_only(synth: Synthesize) -> None:
    synthesis = run(synth)

    permissions = {r.name: r.inputs for r in synthesis.of_type("aws:lambda/permission:Permission")}
    execution_arn = f"arn:aws:execute-api:eu-west-1:{ACCOUNT_ID}:srv-api-id"
    assert permissions["srv-get-recommendations-permission"]["sourceArn"] == (
        f"{execution_arn}/*/GET/recommendations/*")
    assert permissions["srv-post-items-permission"]["sourceArn"] == f"{execution_arn}/*/POST/items"
    assert {p["principal"] for p in permissions.values()} == {"apigateway.amazonaws.com"}


def test_the_recommendations_function_reads_only_what_it_serves(synth: Synthesize) -> None:
    synthesis = run(synth, personalizeFilters='["unread=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\\"read\\")",'
                                              ' "fresh=INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > 0"]',
                    corsAllowedOrigins='["https://www.example.com"]', freshPostsPercent="0")

    env = function(synthesis, "recommendations")["environment"]["variables"]
    assert json.loads(env["FILTER_NAMES"]) == ["fresh", "unread"]
    assert json.loads(env["CORS_ALLOWED_ORIGINS"]) == ["https://www.example.com"]
    assert env["CAMPAIGN_ARN_PARAMETER"] == "/cp-dev-euw1/personalize/campaign-arn"
    by_sid = statements(synthesis, "recommendations")
    assert by_sid["RecommendFromThisStacksCampaigns"]["Resource"] == (
        f"arn:aws:personalize:{REGION}:{ACCOUNT_ID}:campaign/cp-dev-euw1-*")
    assert by_sid["ReadPopularItemsAndItemsStore"]["Resource"] == [
        f"arn:aws:s3:::{BUCKET}/published/popular-items.json", f"arn:aws:s3:::{BUCKET}/items/by-id/*"]
    assert by_sid["RecommendFromThisStacksCampaigns"]["Action"] == ["personalize:GetRecommendations"]
    assert by_sid["ListNewestItems"]["Condition"] == {"StringLike": {"s3:prefix": "items/by-time/*"}}


def test_the_items_function_writes_the_store_and_the_items_dataset_only(synth: Synthesize) -> None:
    synthesis = run(synth)

    by_sid = statements(synthesis, "items")
    assert by_sid["WriteItemsStore"]["Resource"] == f"arn:aws:s3:::{BUCKET}/items/*"
    assert by_sid["PutItemsToThisStacksDataset"]["Resource"] == (
        f"arn:aws:personalize:{REGION}:{ACCOUNT_ID}:dataset/cp-dev-euw1/ITEMS")
    assert function(synthesis, "items")["environment"]["variables"]["ITEMS_DATASET_PARAMETER"] == (
        "/cp-dev-euw1/personalize/items-dataset-arn")


def test_the_stage_and_key_are_throttled_from_settings(synth: Synthesize) -> None:
    synthesis = run(synth, servingThrottleRateLimit="50", servingThrottleBurstLimit="80")

    [stage] = synthesis.of_type("aws:apigateway/stage:Stage")
    assert stage.inputs["xrayTracingEnabled"] is True
    [settings] = synthesis.of_type("aws:apigateway/methodSettings:MethodSettings")
    assert (settings.inputs["settings"]["throttlingRateLimit"], settings.inputs["settings"]["throttlingBurstLimit"]) \
        == (50, 80)
    [plan] = synthesis.of_type("aws:apigateway/usagePlan:UsagePlan")
    assert plan.inputs["throttleSettings"] == {"rateLimit": 50.0, "burstLimit": 80.0}


def test_browsers_get_a_preflight_only_with_configured_origins(synth: Synthesize) -> None:
    assert "OPTIONS" not in methods(run(synth))
    assert "OPTIONS" in methods(run(synth, corsAllowedOrigins='["https://www.example.com"]'))


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_serving_behind_the_firewall_passes_the_policy_pack(synth: Synthesize, preview: bool) -> None:
    settings = parse_settings({"environment": "dev"}, region=REGION, stack="dev")

    def program() -> None:
        serving = ServingApi("srv", serving_args(settings))
        WebFirewall("waf", WebFirewallArgs(stack=settings, waf=settings.waf, key_arn=KEY_ARN,
                                           stages={"serve": serving.stage}))

    assert_policy_pack_passes(evaluate(synth(program, preview=preview)), preview)
