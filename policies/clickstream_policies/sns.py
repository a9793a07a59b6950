"""SNS rules."""

from __future__ import annotations

from ._helpers import customer_key_rule

sns_topic_encrypted = customer_key_rule(
    "sns-topic-encrypted", "Topics are encrypted with a customer-managed KMS key.", "aws:sns/topic:Topic",
    "kmsMasterKeyId", "alias/aws/sns", "Topic", "kms_master_key_id")

POLICIES = [sns_topic_encrypted]
