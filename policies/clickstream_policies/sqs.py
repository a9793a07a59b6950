"""SQS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import resource_policy, uses_customer_key

AWS_MANAGED_SQS_KEY = "alias/aws/sqs"


def _encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if not uses_customer_key(args.props, "kmsMasterKeyId", AWS_MANAGED_SQS_KEY):
        report_violation(f"Queue {args.name} is not encrypted with the stack's key: set kms_master_key_id to the "
                         "stack's key (EncryptionKey.arn).", None)


sqs_queue_encrypted = resource_policy(
    "sqs-queue-encrypted",
    "Queues are encrypted with a customer-managed KMS key.",
    "aws:sqs/queue:Queue",
    _encrypted,
)

POLICIES = [sqs_queue_encrypted]
