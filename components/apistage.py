"""What every REST API of the stack gets around its routes: an observable, throttled stage, JSON gateway errors, and
an API key with a usage plan. Helpers create the resources as children of the calling component."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import templates
from components.settings import StackSettings

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


def encrypted_log_group(parent: pulumi.Resource, name: str, settings: StackSettings, key_arn: pulumi.Input[str],
                        log_group_name: pulumi.Input[str]) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(name, name=log_group_name, retention_in_days=settings.log_retention_days,
                                   kms_key_id=key_arn, opts=pulumi.ResourceOptions(parent=parent))


def gateway_responses(parent: pulumi.Resource, name: str, api: aws.apigateway.RestApi,
                      origins: Sequence[str]) -> list[pulumi.Resource]:
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
    return [aws.apigateway.Response(
        f"{name}-{kind.lower().replace('_', '-')}",
        rest_api_id=api.id,
        response_type=kind,
        response_templates={"application/json": body},
        response_parameters=headers or None,
        opts=pulumi.ResourceOptions(parent=parent),
    ) for kind, body in bodies.items()]


def cors_preflight(parent: pulumi.Resource, name: str, api: aws.apigateway.RestApi,
                   resource: aws.apigateway.Resource, origins: Sequence[str], methods: str,
                   headers: str = "Content-Type,X-Api-Key") -> list[pulumi.Resource]:
    """OPTIONS answered by API Gateway itself (MOCK): allowed methods and headers, and the Origin when allowed."""
    child = pulumi.ResourceOptions(parent=parent)
    options = aws.apigateway.Method(f"{name}-options", rest_api=api.id, resource_id=resource.id,
                                    http_method="OPTIONS", authorization="NONE", opts=child)
    mock = aws.apigateway.Integration(f"{name}-options-mock", rest_api=api.id, resource_id=resource.id,
                                      http_method=options.http_method, type="MOCK",
                                      request_templates={"application/json": '{"statusCode": 200}'}, opts=child)
    allow = {"Access-Control-Allow-Methods": f"'{methods}'", "Access-Control-Allow-Headers": f"'{headers}'",
             "Access-Control-Max-Age": "'600'", "Vary": "'Origin'"}
    method_response = aws.apigateway.MethodResponse(
        f"{name}-options-200", rest_api=api.id, resource_id=resource.id, http_method=options.http_method,
        status_code="200",
        response_parameters={f"method.response.header.{h}": False for h in [*allow, "Access-Control-Allow-Origin"]},
        opts=child,
    )
    response = aws.apigateway.IntegrationResponse(
        f"{name}-options-mock-200", rest_api=api.id, resource_id=resource.id, http_method=options.http_method,
        status_code="200",
        response_parameters={f"method.response.header.{h}": v for h, v in allow.items()},
        response_templates={"application/json": templates.cors_preflight_response(origins)},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[mock, method_response]),
    )
    return [options, mock, response]


def observable_stage(parent: pulumi.Resource, name: str, *, settings: StackSettings, key_arn: pulumi.Input[str],
                     api: aws.apigateway.RestApi, deployment: aws.apigateway.Deployment, throttle: Throttle,
                     access_log_name: str, depends_on: Sequence[pulumi.Resource] = ()) -> aws.apigateway.Stage:
    """The ``v1`` stage: JSON access logs and execution logs in encrypted log groups, X-Ray, detailed metrics,
    throttling. Execution logs never hold bodies (they carry reader data)."""
    access_logs = encrypted_log_group(parent, f"{name}-access-logs", settings, key_arn,
                                      f"/aws/vendedlogs/{settings.name_prefix}/apigateway/{access_log_name}")
    # API Gateway writes execution logs to this fixed name; creating it first makes it encrypted and retained.
    execution_logs = encrypted_log_group(parent, f"{name}-execution-logs", settings, key_arn, pulumi.Output.concat(
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
