"""SNS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import resource_policy, uses_customer_key

AWS_MANAGED_SNS_KEY = "alias/aws/sns"


def _encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not uses_customer_key(args.props, "kmsMasterKeyId", AWS_MANAGED_SNS_KEY):
        report_violation(f"Topic {args.name} is not encrypted with the stack's key: set kms_master_key_id to the "
                         "stack's key (EncryptionKey.arn).", None)


sns_topic_encrypted = resource_policy(
    "sns-topic-encrypted",
    "Topics are encrypted with a customer-managed KMS key.",
    "aws:sns/topic:Topic",
    _encrypted,
)

POLICIES = [sns_topic_encrypted]
