"""What every REST API of the stack gets around its routes: an observable, throttled stage, JSON gateway errors, and
an API key with a usage plan. Helpers create the resources as children of the calling component."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pulumi
import pulumi_aws as aws

from components import templates
from components.settings import StackBasics
from components.shared import encrypted_log_group

STAGE_NAME = "v1"
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTimeEpoch",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "errorMessage": "$context.error.message",
    "validationError": "$context.error.validationErrorString",
    "wafResponseCode": "$context.wafResponseCode",
    "apiKeyId": "$context.identity.apiKeyId",
    "xrayTraceId": "$context.xrayTraceId",
}


R = TypeVar("R", bound=pulumi.CustomResource)
# Inputs that only wire a definition to its API and resource: the logical names already stand for them.
_WIRING = frozenset({"rest_api", "rest_api_id", "resource_id", "parent_id", "request_validator_id"})


@dataclass
class ApiDefinition:
    """Makes an API's routes and remembers every input it gave them, so the deployment's trigger is a hash of the
    real definitions: any change to a method, integration, model, validator or response redeploys the stage."""

    parent: pulumi.Resource
    api: aws.apigateway.RestApi
    resources: list[pulumi.Resource] = field(default_factory=list)
    _inputs: list[Any] = field(default_factory=list)

    def add(self, kind: type[R], logical_name: str, /, depends_on: Sequence[pulumi.Resource] = (),
            **inputs: Any) -> R:
        wired = {"rest_api_id" if kind is aws.apigateway.Response else "rest_api": self.api.id, **inputs}
        resource = kind(logical_name, **wired,
                        opts=pulumi.ResourceOptions(parent=self.parent, depends_on=list(depends_on)))
        self._inputs.append([kind.__name__, logical_name, {k: v for k, v in inputs.items() if k not in _WIRING}])
        self.resources.append(resource)
        return resource

    def fingerprint(self) -> pulumi.Output[str]:
        return pulumi.Output.from_input(self._inputs).apply(
            lambda inputs: hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest())

    def deployment(self, name: str, description: str) -> aws.apigateway.Deployment:
        return aws.apigateway.Deployment(
            name, rest_api=self.api.id, description=description, triggers={"definition": self.fingerprint()},
            opts=pulumi.ResourceOptions(parent=self.parent, depends_on=self.resources))


@dataclass(frozen=True)
class Throttle:
    rate_limit: int
    burst_limit: int
    quota_per_day: int = 0


def regional_rest_api(parent: pulumi.Resource, name: str, physical_name: str,
                      description: str) -> aws.apigateway.RestApi:
    """A regional REST API (WAF attaches to REST stages) whose API keys come from the x-api-key header."""
    return aws.apigateway.RestApi(
        name, name=physical_name, description=description,
        endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(types="REGIONAL"),
        api_key_source="HEADER", opts=pulumi.ResourceOptions(parent=parent))


def gateway_responses(definition: ApiDefinition, name: str, origins: Sequence[str]) -> None:
    """JSON bodies for the errors API Gateway answers itself. They cannot run the CORS template: with one origin it
    is named; with several, the request's Origin is echoed (only error messages are exposed that way, never data)."""
    headers: dict[str, str] = {}
    if len(origins) == 1:
        headers["gatewayresponse.header.Access-Control-Allow-Origin"] = f"'{origins[0]}'"
    elif origins:
        headers["gatewayresponse.header.Access-Control-Allow-Origin"] = "method.request.header.Origin"
    bodies = {"BAD_REQUEST_BODY": templates.gateway_bad_request_body_response(),
              "DEFAULT_4XX": templates.gateway_error_response(),
              "DEFAULT_5XX": templates.gateway_error_response()}
    for kind, body in bodies.items():
        definition.add(aws.apigateway.Response, f"{name}-{kind.lower().replace('_', '-')}", response_type=kind,
                       response_templates={"application/json": body}, response_parameters=headers or None)


def cors_preflight(definition: ApiDefinition, name: str, resource: aws.apigateway.Resource, origins: Sequence[str],
                   methods: str, headers: str = "Content-Type,X-Api-Key") -> None:
    """OPTIONS answered by API Gateway itself (MOCK): allowed methods and headers, and the Origin when allowed."""
    api = definition.add
    options = api(aws.apigateway.Method, f"{name}-options", resource_id=resource.id, http_method="OPTIONS",
                  authorization="NONE")
    mock = api(aws.apigateway.Integration, f"{name}-options-mock", resource_id=resource.id,
               http_method=options.http_method, type="MOCK",
               request_templates={"application/json": '{"statusCode": 200}'})
    allow = {"Access-Control-Allow-Methods": f"'{methods}'", "Access-Control-Allow-Headers": f"'{headers}'",
             "Access-Control-Max-Age": "'600'", "Vary": "'Origin'"}
    method_response = api(
        aws.apigateway.MethodResponse, f"{name}-options-200", resource_id=resource.id,
        http_method=options.http_method, status_code="200",
        response_parameters={f"method.response.header.{h}": False for h in [*allow, "Access-Control-Allow-Origin"]})
    api(aws.apigateway.IntegrationResponse, f"{name}-options-mock-200", depends_on=[mock, method_response],
        resource_id=resource.id, http_method=options.http_method, status_code="200",
        response_parameters={f"method.response.header.{h}": v for h, v in allow.items()},
        response_templates={"application/json": templates.cors_preflight_response(origins)})


def observable_stage(parent: pulumi.Resource, name: str, *, stack: StackBasics, key_arn: pulumi.Input[str],
                     api: aws.apigateway.RestApi, deployment: aws.apigateway.Deployment, throttle: Throttle,
                     access_log_name: str, depends_on: Sequence[pulumi.Resource] = ()) -> aws.apigateway.Stage:
    """The ``v1`` stage: JSON access logs and execution logs in encrypted log groups, X-Ray, detailed metrics,
    throttling. Execution logs never hold bodies (they carry reader data)."""
    access_logs = encrypted_log_group(parent, f"{name}-access-logs", stack, key_arn,
                                      f"/aws/vendedlogs/{stack.name_prefix}/apigateway/{access_log_name}")
    # API Gateway writes execution logs to this fixed name; creating it first makes it encrypted and retained.
    execution_logs = encrypted_log_group(parent, f"{name}-execution-logs", stack, key_arn, pulumi.Output.concat(
        "API-Gateway-Execution-Logs_", api.id, f"/{STAGE_NAME}"))
    stage = aws.apigateway.Stage(
        f"{name}-stage",
        rest_api=api.id,
        deployment=deployment.id,
        stage_name=STAGE_NAME,
        xray_tracing_enabled=True,
        access_log_settings=aws.apigateway.StageAccessLogSettingsArgs(
            destination_arn=access_logs.arn, format=json.dumps(ACCESS_LOG_FORMAT)),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[execution_logs, *depends_on]),
    )
    aws.apigateway.MethodSettings(
        f"{name}-method-settings",
        rest_api=api.id,
        stage_name=stage.stage_name,
        method_path="*/*",
        settings=aws.apigateway.MethodSettingsSettingsArgs(
            metrics_enabled=True,
            logging_level="INFO",
            data_trace_enabled=False,
            throttling_rate_limit=throttle.rate_limit,
            throttling_burst_limit=throttle.burst_limit,
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
    return stage


def api_key_with_usage_plan(parent: pulumi.Resource, name: str, *, physical_name: str, description: str,
                            api: aws.apigateway.RestApi, stage: aws.apigateway.Stage,
                            throttle: Throttle) -> aws.apigateway.ApiKey:
    key = aws.apigateway.ApiKey(f"{name}-api-key", name=physical_name, description=description,
                                opts=pulumi.ResourceOptions(parent=parent))
    plan = aws.apigateway.UsagePlan(
        f"{name}-usage-plan",
        name=physical_name,
        api_stages=[aws.apigateway.UsagePlanApiStageArgs(api_id=api.id, stage=stage.stage_name)],
        throttle_settings=aws.apigateway.UsagePlanThrottleSettingsArgs(rate_limit=throttle.rate_limit,
                                                                       burst_limit=throttle.burst_limit),
        quota_settings=(aws.apigateway.UsagePlanQuotaSettingsArgs(limit=throttle.quota_per_day, period="DAY")
                        if throttle.quota_per_day else None),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    aws.apigateway.UsagePlanKey(f"{name}-usage-plan-key", key_id=key.id, key_type="API_KEY", usage_plan_id=plan.id,
                                opts=pulumi.ResourceOptions(parent=parent))
    return key
