"""CloudWatch Logs rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import is_set, resource_policy

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    # CloudWatch Logs only accepts customer-managed keys, so a key id is a customer key.
    if not is_set(args.props, "kmsKeyId"):
        report_violation(f"Log group {args.name} is not encrypted with a customer-managed key: set kms_key_id to "
                         "the stack's key (EncryptionKey.arn).", None)


def _retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    retention = args.props.get("retentionInDays")
    if not isinstance(retention, (int, float)) or retention <= 0:
        report_violation(f"Log group {args.name} keeps logs forever: set retention_in_days "
                         "(settings.log_retention_days).", None)


cloudwatch_loggroup_encrypted = resource_policy(
    "cloudwatch-loggroup-encrypted",
    "Log groups are encrypted with a customer-managed KMS key.",
    LOG_GROUP,
    _encrypted,
)
cloudwatch_loggroup_retention = resource_policy(
    "cloudwatch-loggroup-retention",
    "Log groups expire their events after a set retention.",
    LOG_GROUP,
    _retention,
)

POLICIES = [cloudwatch_loggroup_encrypted, cloudwatch_loggroup_retention]
