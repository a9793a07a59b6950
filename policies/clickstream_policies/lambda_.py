"""Lambda rules."""

from __future__ import annotations

from collections.abc import Sequence

from pulumi_policy import PolicyResource, ReportViolation, ResourceValidationArgs, StackValidationArgs

from ._helpers import ResourceCheck, attached, configured_policy, is_set, number, peek, resource_policy, stack_policy

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


# Runtimes Lambda still supports in 2026-12 (nodejs20.x left standard support in 2026-04); FSBP Lambda.2 checks the
# same. Review against the Lambda runtimes page when a runtime nears its deprecation date.
DEFAULT_SUPPORTED_RUNTIMES = ["python3.11", "python3.12", "python3.13", "python3.14", "nodejs22.x", "nodejs24.x",
                              "java17", "java21", "java25", "dotnet8", "dotnet10", "ruby3.3", "ruby3.4",
                              "provided.al2023"]


def _supported_runtime(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    runtime = peek(args.props, "runtime")
    if args.props.get("packageType") == "Image" or not isinstance(runtime, str):
        return  # container images bring their own runtime; an unknown runtime is checked at update
    supported = args.get_config().get("supportedRuntimes", DEFAULT_SUPPORTED_RUNTIMES)
    if runtime not in supported:
        report_violation(f"Function {args.name} runs on {runtime}, which is not a supported runtime: use one of "
                         f"{', '.join(supported)} (settings.LAMBDA_RUNTIME).", None)


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


# --- event source mappings on streams (Kinesis, DynamoDB): only those take a starting position ----------------------

ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"


def _stream_mapping_check(check: ResourceCheck) -> ResourceCheck:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if is_set(args.props, "startingPosition"):
            check(args, report_violation)

    return validate


def _on_failure(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    on_failure = (args.props.get("destinationConfig") or {}).get("onFailure") or {}
    if not is_set(on_failure, "destinationArn"):
        report_violation(f"Stream mapping {args.name} drops batches it gives up on: set destination_config."
                         "on_failure.destination_arn to an encrypted SQS queue.", None)


def _bisect(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("bisectBatchOnFunctionError") is not True:
        report_violation(f"Stream mapping {args.name} retries whole batches: set bisect_batch_on_function_error=True "
                         "so a poison record is isolated.", None)


def _partial_batch(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if "ReportBatchItemFailures" not in list(args.props.get("functionResponseTypes") or []):
        report_violation(f"Stream mapping {args.name} cannot retry single records: set "
                         "function_response_types=[\"ReportBatchItemFailures\"].", None)


def _bounded(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for key, arg in (("maximumRecordAgeInSeconds", "maximum_record_age_in_seconds"),
                     ("maximumRetryAttempts", "maximum_retry_attempts")):
        value = args.props.get(key)
        if not isinstance(value, (int, float)) or value < 0:
            report_violation(f"Stream mapping {args.name} can retry a failing record until it expires, blocking "
                             f"its shard: set {arg} to a bound.", None)


def _batching(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    stream = is_set(args.props, "startingPosition")
    limits = [("batchSize", "batch_size", 1, 10000), ("maximumBatchingWindowInSeconds",
                                                      "maximum_batching_window_in_seconds", 0, 300)]
    if stream:
        limits.append(("parallelizationFactor", "parallelization_factor", 1, 10))
    for key, argument, low, high in limits:
        value = number(args.props, key)
        if value is not None and not low <= value <= high:
            report_violation(f"Event source mapping {args.name} has {key} {value:g}, outside Lambda's {low}-{high}: "
                             f"set {argument} within it (processorBatchSize, processorBatchingWindowSeconds, "
                             "processorParallelizationFactor).", None)


lambda_eventsourcemapping_batching = resource_policy(
    "lambda-eventsourcemapping-batching",
    "Event source mappings batch within Lambda's limits (batch size 1-10000, window 0-300 s, parallelization 1-10).",
    ESM, _batching)
lambda_eventsourcemapping_on_failure_destination = resource_policy(
    "lambda-eventsourcemapping-on-failure-destination",
    "Stream consumers send what they give up on to an on-failure destination.",
    ESM, _stream_mapping_check(_on_failure))
lambda_eventsourcemapping_bisect = resource_policy(
    "lambda-eventsourcemapping-bisect",
    "Stream consumers bisect a failing batch.",
    ESM, _stream_mapping_check(_bisect))
lambda_eventsourcemapping_partial_batch = resource_policy(
    "lambda-eventsourcemapping-partial-batch",
    "Stream consumers report partial batch failures.",
    ESM, _stream_mapping_check(_partial_batch))
lambda_eventsourcemapping_bounded_retries = resource_policy(
    "lambda-eventsourcemapping-bounded-retries",
    "Stream consumers bound retries by attempts and record age.",
    ESM, _stream_mapping_check(_bounded))


def _permission_source_arn(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not is_set(args.props, "sourceArn"):
        report_violation(f"Permission {args.name} lets any {args.props.get('principal')} resource invoke the function: "
                         "set source_arn to the calling resource (e.g. the API's execution ARN, method and path).",
                         None)


def _permission_not_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if peek(args.props, "principal") == "*" and not is_set(args.props, "principalOrgId"):
        report_violation(f"Permission {args.name} lets every AWS account invoke the function: set principal to the "
                         "calling service (e.g. apigateway.amazonaws.com) or account, never \"*\".", None)


lambda_permission_not_public = resource_policy(
    "lambda-permission-not-public",
    "Lambda permissions name a service, an account or an organization, not everyone.",
    "aws:lambda/permission:Permission",
    _permission_not_public,
)
lambda_permission_source_arn = resource_policy(
    "lambda-permission-source-arn",
    "Lambda permissions name the resource allowed to invoke (source ARN).",
    "aws:lambda/permission:Permission",
    _permission_source_arn,
)

# Services that invoke a function asynchronously: a failed event is retried twice, then dropped unless kept.
ASYNC_PRINCIPALS = ("events.amazonaws.com", "sns.amazonaws.com", "s3.amazonaws.com", "logs.amazonaws.com",
                    "ses.amazonaws.com", "iot.amazonaws.com", "cloudwatch.amazonaws.com")


def _keeps_failed_events(function: PolicyResource, resources: Sequence[PolicyResource]) -> bool:
    if is_set(function.props.get("deadLetterConfig") or {}, "targetArn"):
        return True
    return any(is_set((c.props.get("destinationConfig") or {}).get("onFailure") or {}, "destination")
               for c in attached(resources, function, INVOKE_CONFIG, "functionName"))


def _async_dead_letter(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for permission in (r for r in args.resources if r.resource_type == "aws:lambda/permission:Permission"):
        principal = permission.props.get("principal")
        if principal not in ASYNC_PRINCIPALS:
            continue
        for function in (d for d in permission.property_dependencies.get("function", [])
                         if d.resource_type == FUNCTION):
            if not _keeps_failed_events(function, args.resources):
                report_violation(f"Function {function.name} is invoked asynchronously by {principal} but keeps no "
                                 "failed events: set dead_letter_config (LambdaFunction(asynchronous=True) does) or "
                                 "an on-failure destination.", function.urn)


lambda_function_async_dead_letter = stack_policy(
    "lambda-function-async-dead-letter",
    "Functions invoked asynchronously keep failed events (dead-letter queue or on-failure destination).",
    _async_dead_letter,
)

lambda_function_supported_runtime = configured_policy(
    "lambda-function-supported-runtime",
    "Functions run on a runtime Lambda still supports.",
    FUNCTION,
    _supported_runtime,
    {"supportedRuntimes": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_SUPPORTED_RUNTIMES}},
)

POLICIES = [lambda_function_tracing_active, lambda_function_environment_encrypted, lambda_function_supported_runtime,
            lambda_eventsourcemapping_batching, lambda_permission_not_public,
            lambda_eventsourcemapping_on_failure_destination, lambda_eventsourcemapping_bisect,
            lambda_eventsourcemapping_partial_batch, lambda_eventsourcemapping_bounded_retries,
            lambda_permission_source_arn, lambda_function_async_dead_letter]
