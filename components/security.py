"""The stack's customer-managed KMS key: one per stack, rotated, aliased, granted only to the services it serves."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.settings import StackBasics

KEY_USER_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")


@dataclass(frozen=True)
class ServiceKeyGrant:
    """A key-policy statement letting one AWS service principal use the key, narrowed by ``conditions``."""

    sid: str
    service_principal: str
    actions: tuple[str, ...] = KEY_USER_ACTIONS
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def statement(self) -> dict[str, Any]:
        statement: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": "Allow",
            "Principal": {"Service": self.service_principal},
            "Action": list(self.actions),
            "Resource": "*",  # in a key policy, "*" means this key
        }
        if self.conditions:
            statement["Condition"] = {op: dict(values) for op, values in self.conditions.items()}
        return statement


def log_group_name_patterns(stack: StackBasics) -> tuple[str, ...]:
    """Every log group this stack creates is named under one of these patterns (the key only serves those)."""
    prefix = stack.name_prefix
    # API Gateway names execution log groups after the API id, which is not known before the API exists.
    return (f"/aws/lambda/{prefix}-*", f"/aws/vendedlogs/{prefix}/*", f"aws-waf-logs-{prefix}-*",
            "API-Gateway-Execution-Logs_*")


def logs_grant(stack: StackBasics, account_id: str, partition: str, dns_suffix: str) -> ServiceKeyGrant:
    arns = [f"arn:{partition}:logs:{stack.region}:{account_id}:log-group:{pattern}"
            for pattern in log_group_name_patterns(stack)]
    return ServiceKeyGrant(
        sid="AllowCloudWatchLogsForThisStacksLogGroups",
        service_principal=f"logs.{stack.region}.{dns_suffix}",
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": arns}},
    )


def alarms_grant(account_id: str) -> ServiceKeyGrant:
    """CloudWatch alarms publish to the stack's encrypted topics as the CloudWatch service, not through a role."""
    return ServiceKeyGrant(
        sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
        service_principal="cloudwatch.amazonaws.com",
        actions=("kms:Decrypt", "kms:GenerateDataKey*"),
        conditions={"StringEquals": {"aws:SourceAccount": account_id}},
    )


def audit_trail_name(stack: StackBasics) -> str:
    """The trail that records access to readers' data (components.audit); the key serves only that trail."""
    return stack.physical_name("data-access")


def cloudtrail_grants(stack: StackBasics, account_id: str, partition: str) -> list[ServiceKeyGrant]:
    """CloudTrail encrypts the audit trail's records with the key, as that trail only."""
    trail_arn = f"arn:{partition}:cloudtrail:{stack.region}:{account_id}:trail/{audit_trail_name(stack)}"
    from_trail = {"aws:SourceArn": trail_arn}
    trails = f"arn:{partition}:cloudtrail:*:{account_id}:trail/*"
    return [
        ServiceKeyGrant(sid="AllowTheAuditTrailToEncryptItsRecords", service_principal="cloudtrail.amazonaws.com",
                        actions=("kms:GenerateDataKey*",),
                        conditions={"StringEquals": from_trail,
                                    "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": trails}}),
        ServiceKeyGrant(sid="AllowTheAuditTrailToDescribeTheKey", service_principal="cloudtrail.amazonaws.com",
                        actions=("kms:DescribeKey",), conditions={"StringEquals": from_trail}),
    ]


def key_policy_document(account_id: str, partition: str, grants: Sequence[ServiceKeyGrant]) -> dict[str, Any]:
    """The key policy: the account root (so IAM policies can delegate) plus exactly the given service grants."""
    root = {
        "Sid": "EnableIamPoliciesOfThisAccount",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    sids = [grant.sid for grant in grants]
    if len(set(sids)) != len(sids):
        raise ValueError(f"key grants must have unique Sids, got {sids}")
    return {"Version": "2012-10-17", "Statement": [root, *(grant.statement() for grant in grants)]}


@dataclass(frozen=True)
class EncryptionKeyArgs:
    stack: StackBasics
    # Grants for services other than CloudWatch Logs, contributed by the components that use the key.
    extra_grants: Sequence[ServiceKeyGrant] = ()


class EncryptionKey(pulumi.ComponentResource):
    """The stack's single customer-managed key. Every component receives it; none creates its own."""

    key: aws.kms.Key
    alias: aws.kms.Alias
    arn: pulumi.Output[str]

    def __init__(self, name: str, args: EncryptionKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:security:EncryptionKey", name, None, opts)
        stack = args.stack
        invoke_opts = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke_opts).account_id
        partition = aws.get_partition_output(opts=invoke_opts)

        def policy(values: list[Any]) -> str:
            account, part, dns_suffix = values
            grants = [logs_grant(stack, account, part, dns_suffix), alarms_grant(account),
                      *cloudtrail_grants(stack, account, part), *args.extra_grants]
            return json.dumps(key_policy_document(account, part, grants))

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"Encrypts the data at rest of stack {stack.project}/{stack.stack}",
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            deletion_window_in_days=stack.kms_key_deletion_window_days,
            policy=pulumi.Output.all(account_id, partition.partition, partition.dns_suffix).apply(policy),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{stack.name_prefix}",
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.key.arn, "alias": self.alias.name})
