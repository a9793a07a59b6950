"""API Gateway rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import is_set, resource_policy

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

POLICIES = [apigateway_stage_access_logging, apigateway_stage_xray, apigateway_method_validated]
