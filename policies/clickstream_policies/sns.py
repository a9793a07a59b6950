"""SNS rules."""

from __future__ import annotations

from ._helpers import customer_key_rule, no_public_grants, typed_policy

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"


_policy_not_public = no_public_grants(
    "Topic policy of {name}", "name the publishing service or account, or add a condition on aws:SourceAccount, "
    "aws:SourceArn or aws:PrincipalOrgID with fixed values.")


sns_topic_encrypted = customer_key_rule(
    "sns-topic-encrypted", "Topics are encrypted with a customer-managed KMS key.", TOPIC,
    "kmsMasterKeyId", "alias/aws/sns", "Topic", "kms_master_key_id")
sns_topic_policy_no_public_access = typed_policy(
    "sns-topic-policy-no-public-access",
    "Topic policies allow nothing to everyone without a condition naming accounts or sources.",
    (TOPIC, TOPIC_POLICY),
    _policy_not_public,
)

POLICIES = [sns_topic_encrypted, sns_topic_policy_no_public_access]
