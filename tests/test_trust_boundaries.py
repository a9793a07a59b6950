"""Issue 13, item 1: the serving API's write route takes SigV4 (the CMS role), never the key every page carries."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.stub import Stubber

from components.settings import SettingsError, parse_settings
from tests.conftest import REGION
from tests.test_serving_handlers import aws, load, post, post_event, stubbed  # noqa: F401 (aws: a fixture)
from tests.test_serving_handlers import call as call_handler
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis, synthesize, synthesize_stack

METHOD = "aws:apigateway/method:Method"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CMS_USER = "arn:aws:iam::210987654321:role/cms-publisher"


@pytest.fixture(scope="module")
def dev() -> Synthesis:
    return synthesize_stack("dev", preview=False)


def serving_methods(synthesis: Synthesis) -> list[RegisteredResource]:
    return [r for r in synthesis.of_type(METHOD) if "-serving-" in r.name]


def named(synthesis: Synthesis, suffix: str, type_: str | None = None) -> RegisteredResource:
    [resource] = [r for r in synthesis.resources if r.name.endswith(suffix) and type_ in (None, r.type)]
    return resource


def integrated_function(synthesis: Synthesis, method: RegisteredResource) -> str:
    """The function a method's Lambda proxy integration invokes (by the integration on the same resource)."""
    resource = method.property_dependencies["resourceId"]
    [integration] = [i for i in synthesis.of_type("aws:apigateway/integration:Integration")
                     if i.property_dependencies.get("resourceId") == resource
                     and i.inputs["httpMethod"] == method.inputs["httpMethod"]]
    return str(integration.inputs.get("uri", ""))


def test_the_catalog_write_route_is_iam_authorized_and_keyless(dev: Synthesis) -> None:
    [post_items] = [m for m in serving_methods(dev) if m.name.endswith("-serving-post-items-method")]
    assert (post_items.inputs["authorization"], post_items.inputs["apiKeyRequired"]) == ("AWS_IAM", False)


def test_the_pages_key_reaches_no_function_that_writes(dev: Synthesis) -> None:
    # GIVEN every serving method the browsers' key opens
    keyed = [m for m in serving_methods(dev) if m.inputs.get("apiKeyRequired")]
    assert keyed  # (readers' token authorizers may sit on them too: tests of issue 13, item 2)
    items_function = named(dev, "-serving-items-function", "aws:lambda/function:Function").outputs["invokeArn"]
    # THEN none of them integrates the items function (the only serving function allowed to write)
    assert all(integrated_function(dev, m) != items_function for m in keyed)
    # AND every method integrating the items function needs SigV4
    writers = [m for m in serving_methods(dev) if integrated_function(dev, m) == items_function]
    assert writers and all(m.inputs["authorization"] == "AWS_IAM" for m in writers)


def test_cors_never_advertises_a_write_method_on_the_serving_api(dev: Synthesis) -> None:
    items_resource = named(dev, "-serving-items", "aws:apigateway/resource:Resource").urn
    options = [m for m in serving_methods(dev) if m.inputs["httpMethod"] == "OPTIONS"]
    assert all(items_resource not in m.property_dependencies.get("resourceId", []) for m in options)
    preflights = [r for r in dev.of_type("aws:apigateway/integrationResponse:IntegrationResponse")
                  if "-serving-" in r.name and r.name.endswith("-options-mock-200")]
    assert all(items_resource not in r.property_dependencies.get("resourceId", []) for r in preflights)
    assert preflights, "the read routes still answer preflights"


def test_the_cms_role_may_invoke_exactly_post_items_of_this_stage(dev: Synthesis) -> None:
    policy = json.loads(named(dev, "-serving-cms-policy").inputs["policy"])
    assert policy["Statement"] == [{
        "Sid": "PostItemsToThisStage", "Effect": "Allow", "Action": "execute-api:Invoke",
        "Resource": "arn:aws:execute-api:eu-west-1:123456789012:cp-dev-euw1-serving-api-id/v1/POST/items"}]
    assert named(dev, "-serving-cms-policy").property_dependencies["role"] == [named(dev, "-serving-cms-role").urn]


def test_by_default_only_principals_of_this_account_may_assume_the_cms_role(dev: Synthesis) -> None:
    trust = json.loads(named(dev, "-serving-cms-role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                                   "Action": "sts:AssumeRole"}]


def test_configured_cms_principals_replace_the_account_root_in_the_trust() -> None:
    synthesis = synthesize({"aws:region": REGION, "clickstream-personalization:environment": "dev",
                            "clickstream-personalization:cmsPrincipalArns": json.dumps([CMS_USER])},
                           stack="dev", preview=False)
    trust = json.loads(named(synthesis, "-serving-cms-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"AWS": [CMS_USER]}
    assert synthesis.outputs["cmsRoleArn"] == named(synthesis, "-serving-cms-role").outputs["arn"]


def test_the_cms_role_is_a_stack_output(dev: Synthesis) -> None:
    role = named(dev, "-serving-cms-role")
    assert dev.outputs["cmsRoleArn"] == role.outputs["arn"]
    assert role.outputs["arn"].endswith(":role/cp-dev-euw1-cms-items")


@pytest.mark.parametrize("bad", [
    ["*"], ["arn:aws:iam::123:root"], ["arn:aws:sts::123456789012:assumed-role/x/y"], [CMS_USER, CMS_USER],
    ["arn:aws:iam::123456789012:group/editors"],
])
def test_cms_principals_must_be_iam_role_user_or_root_arns(bad: list[str]) -> None:
    with pytest.raises(SettingsError, match="cmsPrincipalArns"):
        parse_settings({"environment": "dev", "cmsPrincipalArns": json.dumps(bad)}, region=REGION, stack="dev")


def test_the_policy_pack_counts_aws_iam_as_authorized_and_still_refuses_an_open_write(dev: Synthesis) -> None:
    def with_items_method(**inputs: Any) -> Synthesis:
        changed = copy.deepcopy(dev)
        method = next(r for r in changed.resources if r.name.endswith("post-items-method"))
        method.inputs.update(inputs)
        method.outputs.update(inputs)
        return changed

    def write_findings(synthesis: Synthesis) -> list[str]:
        return [f.message for f in evaluate(synthesis) if f.policy == "apigateway-method-write-authorized"]

    assert write_findings(with_items_method(authorization="AWS_IAM", apiKeyRequired=False)) == []
    [finding] = write_findings(with_items_method(authorization="NONE", apiKeyRequired=False))
    assert "post-items-method lets anyone write" in finding


@pytest.fixture
def items_handler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                  ) -> Iterator[tuple[ModuleType, Stubber]]:
    """GIVEN the items handler with the stack's environment, moto and a stubbed Personalize."""
    request.getfixturevalue("aws")
    module = load("items")
    module.service.cache_clear()
    for stubber in stubbed(monkeypatch, "personalize-events"):
        yield module, stubber


def test_the_items_handler_logs_the_verified_signer_of_each_write(
        items_handler: tuple[ModuleType, Stubber], caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a POST /items event as API Gateway passes it after checking the SigV4 signature
    module, _ = items_handler
    event = post_event({"items": [post(1)]})
    signer = "arn:aws:sts::123456789012:assumed-role/cp-dev-euw1-cms-items/cms"
    event["requestContext"]["identity"] = {"userArn": signer, "accessKey": "ASIAEXAMPLE"}
    # WHEN it is handled
    status, _ = call_handler(module, event)
    # THEN the log line of the write names the signer
    # (Powertools' handler writes to the stdout of its first import: read the records through its formatter.)
    records = [json.loads(module.logger.registered_formatter.format(r)) for r in caplog.records]
    [stored] = [r for r in records if r.get("message") == "items stored"]
    assert status == 200 and stored["stored"] == 1
    assert stored["caller"] == signer
