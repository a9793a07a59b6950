"""IAM rules: exact actions, exact resources (with a documented allow-list for APIs without resource-level
permissions)."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from ._helpers import is_set

POLICY_TYPES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy")
# Actions AWS authorizes only on "*" (no resource-level permissions), per the IAM service authorization reference.
DEFAULT_WILDCARD_RESOURCE_ACTIONS = [
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "personalize:PutEvents", "personalize:ListEventTrackers",
    # The log delivery Step Functions sets up for state machine logs.
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
]


def _allow_statements(args: ResourceValidationArgs) -> Iterator[dict[str, Any]]:
    document = args.props.get("policy")
    parsed = json.loads(document) if isinstance(document, str) else {}
    statements = parsed.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") == "Allow":
            yield statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _no_wildcard_actions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in POLICY_TYPES:
        return
    for statement in _allow_statements(args):
        wild = [a for a in _as_list(statement.get("Action", [])) if "*" in str(a)]
        if wild or "NotAction" in statement:
            report_violation(f"Policy {args.name} statement {statement.get('Sid', '?')} grants {wild or 'NotAction'}: "
                             "name the exact actions the code calls.", None)


def _no_wildcard_resources(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in POLICY_TYPES:
        return
    allowed = set(args.get_config().get("allowedWildcardResourceActions", DEFAULT_WILDCARD_RESOURCE_ACTIONS))
    for statement in _allow_statements(args):
        if "*" in _as_list(statement.get("Resource", [])) or "NotResource" in statement:
            extra = sorted(set(_as_list(statement.get("Action", []))) - allowed)
            if extra:
                report_violation(f"Policy {args.name} statement {statement.get('Sid', '?')} grants {extra} on every "
                                 "resource: name the resource ARNs (or, for an API without resource-level "
                                 "permissions, add it to allowedWildcardResourceActions).", None)


DECRYPT_ACTIONS = ("kms:decrypt", "kms:reencryptfrom")


def _grants_decrypt(actions: list[Any]) -> bool:
    """Any action (or action pattern) that covers kms:Decrypt or kms:ReEncryptFrom."""
    return any(fnmatch.fnmatchcase(d, str(a).lower()) for a in actions for d in DECRYPT_ACTIONS)


def _on_every_key(resources: list[Any]) -> bool:
    """``*``, or a KMS ARN whose key part is a wildcard (``arn:aws:kms:*:111122223333:key/*``)."""
    return any(str(r) == "*" or re.fullmatch(r"arn:aws[a-z-]*:kms:[^:]*:[^:]*:(key/)?\*", str(r)) is not None
               for r in resources)


def _no_decrypt_on_all_keys(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in POLICY_TYPES:
        return
    for statement in _allow_statements(args):
        if _grants_decrypt(_as_list(statement.get("Action", []))) and _on_every_key(
                _as_list(statement.get("Resource", []))):
            report_violation(f"Policy {args.name} statement {statement.get('Sid', '?')} lets its holder decrypt with "
                             "every KMS key: name the key ARNs it needs (the stack's key).", None)


USER_POLICY_TYPES = ("aws:iam/userPolicy:UserPolicy", "aws:iam/userPolicyAttachment:UserPolicyAttachment")


def _no_user_policies(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    attaches_users = args.resource_type == "aws:iam/policyAttachment:PolicyAttachment" and is_set(args.props, "users")
    if args.resource_type in USER_POLICY_TYPES or attaches_users:
        report_violation(f"{args.name} gives permissions to IAM users directly: grant them to a role the users (or "
                         "the CMS) assume, or to a group.", None)


iam_policy_no_wildcard_actions = ResourceValidationPolicy(
    name="iam-policy-no-wildcard-actions",
    description="IAM policies name exact actions (no *, no service:*, no NotAction).",
    validate=_no_wildcard_actions,
)
iam_policy_no_wildcard_resources = ResourceValidationPolicy(
    name="iam-policy-no-wildcard-resources",
    description="IAM policies name their resources; Resource \"*\" only for allow-listed actions.",
    validate=_no_wildcard_resources,
    config_schema=PolicyConfigSchema(properties={"allowedWildcardResourceActions": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_WILDCARD_RESOURCE_ACTIONS}}),
)

iam_policy_no_kms_decrypt_all_keys = ResourceValidationPolicy(
    name="iam-policy-no-kms-decrypt-all-keys",
    description="IAM policies do not allow kms:Decrypt or kms:ReEncryptFrom on every key.",
    validate=_no_decrypt_on_all_keys,
)
iam_user_no_policies = ResourceValidationPolicy(
    name="iam-user-no-policies",
    description="IAM users get no policies of their own (roles or groups carry permissions).",
    validate=_no_user_policies,
)

POLICIES = [iam_policy_no_wildcard_actions, iam_policy_no_wildcard_resources, iam_policy_no_kms_decrypt_all_keys,
            iam_user_no_policies]
