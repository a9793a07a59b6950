"""IAM rules: exact actions, exact resources (with a documented allow-list for APIs without resource-level
permissions)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

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

POLICIES = [iam_policy_no_wildcard_actions, iam_policy_no_wildcard_resources]
