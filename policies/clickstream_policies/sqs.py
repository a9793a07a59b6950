"""SQS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from . import _documents
from ._helpers import customer_key_rule, typed_policy

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"


def _policy_not_public(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for statement in _documents.public_grants(args.props.get("policy")):
        report_violation(f"Queue policy of {args.name} lets anyone {statement.get('Action')} (statement "
                         f"{_documents.sid(statement)}): name the sending service or account, or add a condition "
                         "on aws:SourceAccount, aws:SourceArn or aws:PrincipalOrgID with fixed values.", None)


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
