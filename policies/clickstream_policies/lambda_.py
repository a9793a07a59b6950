"""Lambda rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import is_set, resource_policy

FUNCTION = "aws:lambda/function:Function"


def _tracing(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    mode = (args.props.get("tracingConfig") or {}).get("mode")
    if mode != "Active":
        report_violation(f"Function {args.name} does not trace actively: set tracing_config mode=\"Active\" "
                         "(the LambdaFunction component does).", None)


def _environment_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_set(args.props.get("environment") or {}, "variables"):
        return  # nothing to encrypt
    if not is_set(args.props, "kmsKeyArn"):
        report_violation(f"Function {args.name} keeps its environment under the AWS-managed key: set kms_key_arn "
                         "to the stack's key.", None)


lambda_function_tracing_active = resource_policy(
    "lambda-function-tracing-active",
    "Lambda functions send X-Ray traces (active tracing).",
    FUNCTION,
    _tracing,
)
lambda_function_environment_encrypted = resource_policy(
    "lambda-function-environment-encrypted",
    "Lambda environment variables are encrypted with the stack's customer-managed key.",
    FUNCTION,
    _environment_encrypted,
)

POLICIES = [lambda_function_tracing_active, lambda_function_environment_encrypted]
