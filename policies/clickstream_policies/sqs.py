"""SQS rules."""

from __future__ import annotations

from ._helpers import customer_key_rule

sqs_queue_encrypted = customer_key_rule(
    "sqs-queue-encrypted", "Queues are encrypted with a customer-managed KMS key.", "aws:sqs/queue:Queue",
    "kmsMasterKeyId", "alias/aws/sqs", "Queue", "kms_master_key_id")

POLICIES = [sqs_queue_encrypted]
