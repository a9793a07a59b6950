"""SQS rules."""

from __future__ import annotations

from ._helpers import customer_key_rule, no_public_grants, typed_policy

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"


_policy_not_public = no_public_grants(
    "Queue policy of {name}", "name the sending service or account, or add a condition on aws:SourceAccount, "
    "aws:SourceArn or aws:PrincipalOrgID with fixed values.")


sqs_queue_encrypted = customer_key_rule(
    "sqs-queue-encrypted", "Queues are encrypted with a customer-managed KMS key.", QUEUE,
    "kmsMasterKeyId", "alias/aws/sqs", "Queue", "kms_master_key_id")
sqs_queue_policy_no_public_access = typed_policy(
    "sqs-queue-policy-no-public-access",
    "Queue policies allow nothing to everyone without a condition naming accounts or sources.",
    (QUEUE, QUEUE_POLICY),
    _policy_not_public,
)

POLICIES = [sqs_queue_encrypted, sqs_queue_policy_no_public_access]
