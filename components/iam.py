"""IAM documents and roles, one way for every component."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws


def policy_document(statements: Sequence[Mapping[str, Any]]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": list(statements)})


def service_role(parent: pulumi.Resource, logical_name: str, physical_name: str, service: str,
                 statements: Sequence[Mapping[str, Any]], *, conditions: Mapping[str, Any] | None = None,
                 description: str | None = None) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role ``service`` may assume (under ``conditions``), with exactly ``statements`` as its inline policy."""
    trust: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if conditions:
        trust["Condition"] = dict(conditions)
    role = aws.iam.Role(f"{logical_name}-role", name=physical_name, description=description,
                        assume_role_policy=policy_document([trust]), opts=pulumi.ResourceOptions(parent=parent))
    policy = aws.iam.RolePolicy(f"{logical_name}-policy", role=role.id, policy=policy_document(statements),
                                opts=pulumi.ResourceOptions(parent=parent))
    return role, policy


def source_account(account: pulumi.Input[str]) -> dict[str, Any]:
    """The confused-deputy guard for service roles: only on behalf of this account."""
    return {"StringEquals": {"aws:SourceAccount": account}}


def account_and_partition(parent: pulumi.Resource) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """The deploying account and the ARN partition, as the provider of ``parent`` sees them (never hard-coded)."""
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    return (aws.get_caller_identity_output(opts=invoke).account_id,
            aws.get_partition_output(opts=invoke).partition)
