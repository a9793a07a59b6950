"""Building blocks every component uses: encrypted log groups, failure queues and this stack's ARNs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import account_and_partition
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
