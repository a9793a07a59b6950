"""The API definition helper: the deployment's trigger is a hash of the real route definitions."""

from __future__ import annotations

from typing import Any

import pulumi_aws as aws

from components.apistage import ApiDefinition, regional_rest_api
from tests.conftest import Synthesize
from tools.synth import Synthesis

DEPLOYMENT = "aws:apigateway/deployment:Deployment"


def api(synth: Synthesize, *, template: str = '{"statusCode": 200}', extra_route: bool = False,
        api_key_required: bool = True, preview: bool = False) -> Synthesis:
    def program() -> None:
        rest = regional_rest_api(None, "demo-api", "demo", "Demo")  # type: ignore[arg-type]
        definition = ApiDefinition(rest, rest)
        resource = definition.add(aws.apigateway.Resource, "demo-things", parent_id=rest.root_resource_id,
                                  path_part="things")
        method = definition.add(aws.apigateway.Method, "demo-get", resource_id=resource.id, http_method="GET",
                                authorization="NONE", api_key_required=api_key_required)
        definition.add(aws.apigateway.Integration, "demo-mock", resource_id=resource.id,
                       http_method=method.http_method, type="MOCK", request_templates={"application/json": template})
        if extra_route:
            definition.add(aws.apigateway.Method, "demo-post", resource_id=resource.id, http_method="POST",
                           authorization="NONE", api_key_required=True)
        definition.deployment("demo-deployment", "Demo")

    return synth(program, preview=preview)


def trigger(synthesis: Synthesis) -> Any:
    [deployment] = synthesis.of_type(DEPLOYMENT)
    return deployment.inputs["triggers"]["definition"]


def test_the_same_definitions_give_the_same_trigger(synth: Synthesize) -> None:
    assert trigger(api(synth)) == trigger(api(synth))


def test_any_change_to_a_definition_changes_the_trigger(synth: Synthesize) -> None:
    base = trigger(api(synth))

    assert trigger(api(synth, template='{"statusCode": 204}')) != base
    assert trigger(api(synth, api_key_required=False)) != base
    assert trigger(api(synth, extra_route=True)) != base


def test_the_deployment_waits_for_every_definition(synth: Synthesize) -> None:
    synthesis = api(synth, extra_route=True)
    [deployment] = synthesis.of_type(DEPLOYMENT)
    made = {r.urn for r in synthesis.resources
            if r.type.startswith("aws:apigateway/") and r.type != DEPLOYMENT and r.name != "demo-api"}

    assert len(made) == 4
    assert made <= set(deployment.dependencies)
