"""Building blocks every component uses: encrypted log groups, failure queues and this stack's ARNs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import account_and_partition, policy_document
from components.settings import StackBasics

DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS maximum: the longest time to notice and redrive a failure


def encrypted_log_group(parent: pulumi.Resource, name: str, stack: StackBasics, key_arn: pulumi.Input[str],
                        log_group_name: pulumi.Input[str]) -> aws.cloudwatch.LogGroup:
    return aws.cloudwatch.LogGroup(name, name=log_group_name, retention_in_days=stack.log_retention_days,
                                   kms_key_id=key_arn, opts=pulumi.ResourceOptions(parent=parent))


def failure_queue(parent: pulumi.Resource, name: str, physical_name: str,
                  key_arn: pulumi.Input[str]) -> aws.sqs.Queue:
    """An SQS queue that keeps what could not be processed: encrypted with the stack key, kept as long as SQS can."""
    return aws.sqs.Queue(name, name=physical_name, kms_master_key_id=key_arn, kms_data_key_reuse_period_seconds=300,
                         message_retention_seconds=DLQ_RETENTION_SECONDS, opts=pulumi.ResourceOptions(parent=parent))


@dataclass(frozen=True)
class StackArns:
    """ARNs in this stack's account, partition and region, as the provider sees them (never hard-coded)."""

    account: pulumi.Output[str]
    partition: pulumi.Output[str]
    region: str

    @staticmethod
    def of(parent: pulumi.Resource, stack: StackBasics) -> StackArns:
        account, partition = account_and_partition(parent)
        return StackArns(account, partition, stack.region)

    def arn(self, service: str, resource: str, *, regional: bool = True) -> pulumi.Output[str]:
        return pulumi.Output.concat("arn:", self.partition, ":", service, ":", self.region if regional else "", ":",
                                    self.account, ":", resource)

    def parameter(self, name: str) -> pulumi.Output[str]:
        """An SSM parameter's ARN; ``name`` starts with a slash."""
        return self.arn("ssm", f"parameter{name}")


def email_subscriptions(parent: pulumi.Resource, name: str, topic: aws.sns.Topic, emails: Sequence[str]) -> None:
    """One e-mail subscription per address, named after the address: removing one never re-creates the others (people
    would have to confirm again). The alias adopts the subscription that earlier versions named by position."""
    for index, email in enumerate(emails):
        aws.sns.TopicSubscription(f"{name}-{email}", topic=topic.arn, protocol="email", endpoint=email,
                                  opts=pulumi.ResourceOptions(parent=parent,
                                                              aliases=[pulumi.Alias(name=f"{name}-{index}")]))


@dataclass(frozen=True)
class PrivateBucket:
    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning
    policy: aws.s3.BucketPolicy


def private_bucket(name: str, bucket_name: pulumi.Input[str], bucket_arn: pulumi.Input[str],
                   key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions, *, bucket_logical_name: str,
                   policy_logical_name: str, statements: Sequence[Mapping[str, Any]] = ()) -> PrivateBucket:
    """A bucket for readers' data: SSE-KMS with ``key_arn`` and a bucket key, versioned, every public access blocked,
    ACLs disabled, and a policy that denies requests without TLS, plus ``statements``. Children are named
    ``<name>-encryption``, ``-versioning``, ``-public-access``, ``-ownership``; ``bucket_arn`` is derived from the
    name by the caller, so the policy is known at preview time."""
    s3 = aws.s3
    bucket = s3.Bucket(bucket_logical_name, bucket=bucket_name, force_destroy=False, opts=opts)
    s3.BucketServerSideEncryptionConfiguration(f"{name}-encryption", bucket=bucket.id, rules=[
        s3.BucketServerSideEncryptionConfigurationRuleArgs(
            apply_server_side_encryption_by_default=s3
            .BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                sse_algorithm="aws:kms", kms_master_key_id=key_arn),
            bucket_key_enabled=True)], opts=opts)
    versioning = s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id,
        versioning_configuration=s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"), opts=opts)
    public_access = s3.BucketPublicAccessBlock(
        f"{name}-public-access", bucket=bucket.id, block_public_acls=True, block_public_policy=True,
        ignore_public_acls=True, restrict_public_buckets=True, opts=opts)
    s3.BucketOwnershipControls(f"{name}-ownership", bucket=bucket.id,
                               rule=s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
                               opts=opts)
    policy = s3.BucketPolicy(policy_logical_name, bucket=bucket.id, policy=policy_document([{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }, *statements]), opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[public_access])))
    return PrivateBucket(bucket, versioning, policy)
