"""Step Functions rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import is_set, resource_policy

STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"


def _encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    encryption = args.props.get("encryptionConfiguration") or {}
    if encryption.get("type") != "CUSTOMER_MANAGED_KMS_KEY" or not is_set(encryption, "kmsKeyId"):
        report_violation(f"State machine {args.name} keeps execution data under an AWS-owned key: set "
                         "encryption_configuration type CUSTOMER_MANAGED_KMS_KEY with kms_key_id the stack's key.",
                         None)


def _logging(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    logging = args.props.get("loggingConfiguration") or {}
    if logging.get("level") not in ("ALL", "ERROR") or not is_set(logging, "logDestination"):
        report_violation(f"State machine {args.name} logs too little: set logging_configuration level ALL (or "
                         "ERROR) with log_destination an encrypted log group ARN ending in :*.", None)


def _tracing(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if (args.props.get("tracingConfiguration") or {}).get("enabled") is not True:
        report_violation(f"State machine {args.name} is not traced: set tracing_configuration enabled=True.", None)


sfn_statemachine_encrypted = resource_policy(
    "sfn-statemachine-encrypted", "State machines encrypt their data with a customer-managed KMS key.",
    STATE_MACHINE, _encrypted)
sfn_statemachine_logging = resource_policy(
    "sfn-statemachine-logging", "State machines log executions to a log group.", STATE_MACHINE, _logging)
sfn_statemachine_tracing = resource_policy(
    "sfn-statemachine-tracing", "State machines trace executions with X-Ray.", STATE_MACHINE, _tracing)

POLICIES = [sfn_statemachine_encrypted, sfn_statemachine_logging, sfn_statemachine_tracing]
