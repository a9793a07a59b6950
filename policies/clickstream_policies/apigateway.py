"""API Gateway rules."""

from __future__ import annotations

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from ._helpers import attached, is_set, resource_policy, stack_policy

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _access_logging(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    settings = args.props.get("accessLogSettings") or {}
    if not is_set(settings, "destinationArn") or not is_set(settings, "format"):
        report_violation(f"Stage {args.name} keeps no access log: set access_log_settings with a destination_arn "
                         "(an encrypted log group) and a JSON format.", None)


def _xray(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("xrayTracingEnabled") is not True:
        report_violation(f"Stage {args.name} does not trace requests: set xray_tracing_enabled=True.", None)


def _validated(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("httpMethod") not in WRITE_METHODS:
        return
    if not is_set(args.props, "requestValidatorId") or not is_set(args.props, "requestModels"):
        report_violation(f"Method {args.name} accepts bodies without validation: set request_validator_id (a "
                         "validator with validate_request_body=True) and request_models for each content type.", None)


def _write_authorized(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != "aws:apigateway/method:Method" or args.props.get("httpMethod") not in WRITE_METHODS:
        return
    if args.props.get("apiKeyRequired") is True or args.props.get("authorization") not in (None, "NONE"):
        return
    if args.name in args.get_config().get("publicWriteMethods", []):
        return
    report_violation(f"Method {args.name} lets anyone write: set api_key_required=True or an authorizer, or list "
                     "it in publicWriteMethods in the stack's policy configuration.", None)


def _cache_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    settings = args.props.get("settings") or {}
    if settings.get("cachingEnabled") is True and settings.get("cacheDataEncrypted") is not True:
        report_violation(f"Method settings {args.name} cache responses unencrypted: set cache_data_encrypted=True "
                         "with caching_enabled (or turn caching off).", None)


def _execution_logging(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for stage in (r for r in args.resources if r.resource_type == "aws:apigateway/stage:Stage"):
        settings = [m.props.get("settings") or {} for m in attached(
            args.resources, stage, "aws:apigateway/methodSettings:MethodSettings", "stageName")]
        if not any(s.get("loggingLevel") in ("INFO", "ERROR") and s.get("metricsEnabled") is True for s in settings):
            report_violation(f"Stage {stage.name} has no execution logs or detailed metrics: add MethodSettings for "
                             "*/* with logging_level INFO (or ERROR) and metrics_enabled=True.", stage.urn)


apigateway_stage_access_logging = resource_policy(
    "apigateway-stage-access-logging",
    "API stages write JSON access logs to a log group.",
    "aws:apigateway/stage:Stage",
    _access_logging,
)
apigateway_stage_xray = resource_policy(
    "apigateway-stage-xray",
    "API stages trace requests with X-Ray.",
    "aws:apigateway/stage:Stage",
    _xray,
)
apigateway_method_validated = resource_policy(
    "apigateway-method-validated",
    "Write methods validate their request body against a model before any integration runs.",
    "aws:apigateway/method:Method",
    _validated,
)

apigateway_method_write_authorized = ResourceValidationPolicy(
    name="apigateway-method-write-authorized",
    description="Write methods require an API key or an authorizer.",
    validate=_write_authorized,
    config_schema=PolicyConfigSchema(properties={"publicWriteMethods": {
        "type": "array", "items": {"type": "string"}, "default": []}}),
)
apigateway_stage_execution_logging = stack_policy(
    "apigateway-stage-execution-logging",
    "Stages have execution logging and detailed metrics through method settings.",
    _execution_logging,
)

apigateway_methodsettings_cache_encrypted = resource_policy(
    "apigateway-methodsettings-cache-encrypted",
    "Stages that cache responses encrypt the cache.",
    "aws:apigateway/methodSettings:MethodSettings",
    _cache_encrypted,
)

POLICIES = [apigateway_methodsettings_cache_encrypted, apigateway_stage_access_logging, apigateway_stage_xray,
            apigateway_method_validated,
            apigateway_method_write_authorized, apigateway_stage_execution_logging]
