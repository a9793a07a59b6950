"""AWS WAF rules: every stage behind a web ACL that holds the required managed groups and a rate limit, logged."""

from __future__ import annotations

import json
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from ._helpers import attached, stack_policy

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
STAGE = "aws:apigateway/stage:Stage"
DEFAULT_REQUIRED_GROUPS = ["AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                           "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList"]


def _rules(props: Any) -> list[dict[str, Any]]:
    """The web ACL's rules in the WAF API's shape, from ``ruleJson`` (or the typed ``rules``)."""
    raw = props.get("ruleJson")
    if isinstance(raw, str) and raw:
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, list) else []
    typed = []
    for rule in props.get("rules") or []:
        statement = rule.get("statement") or {}
        managed = statement.get("managedRuleGroupStatement") or {}
        typed.append({"Statement": {
            **({"ManagedRuleGroupStatement": {"Name": managed.get("name")}} if managed else {}),
            **({"RateBasedStatement": {}} if statement.get("rateBasedStatement") else {})}})
    return typed


def _managed_rules(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != WEB_ACL:
        return
    rules = _rules(args.props)
    groups = {r.get("Statement", {}).get("ManagedRuleGroupStatement", {}).get("Name") for r in rules}
    missing = [g for g in args.get_config().get("requiredManagedRuleGroups", DEFAULT_REQUIRED_GROUPS)
               if g not in groups]
    if missing:
        report_violation(f"Web ACL {args.name} lacks the managed rule groups {', '.join(missing)}: add them as "
                         "ManagedRuleGroupStatement rules (WebFirewall does).", None)
    if not any("RateBasedStatement" in r.get("Statement", {}) for r in rules):
        report_violation(f"Web ACL {args.name} has no rate-based rule: add one that blocks a client IP above a "
                         "request rate (wafRateLimitPer5Minutes).", None)


def _stages_associated(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for stage in (r for r in args.resources if r.resource_type == STAGE):
        associations = attached(args.resources, stage, ASSOCIATION, "resourceArn")
        if not any(any(d.resource_type == WEB_ACL for d in a.property_dependencies.get("webAclArn", []))
                   for a in associations):
            report_violation(f"Stage {stage.name} is not behind AWS WAF: associate it with the stack's web ACL "
                             "(WebFirewall's stages).", stage.urn)


def _logged(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for acl in (r for r in args.resources if r.resource_type == WEB_ACL):
        if not attached(args.resources, acl, LOGGING, "resourceArn"):
            report_violation(f"Web ACL {acl.name} keeps no logs: add a WebAclLoggingConfiguration to an encrypted "
                             "aws-waf-logs-* log group, redacting the API key and authorization headers.", acl.urn)


wafv2_webacl_managed_rules = ResourceValidationPolicy(
    name="wafv2-webacl-managed-rules",
    description="Web ACLs hold the required AWS managed rule groups and a rate-based rule.",
    validate=_managed_rules,
    config_schema=PolicyConfigSchema(properties={"requiredManagedRuleGroups": {
        "type": "array", "items": {"type": "string"}, "default": DEFAULT_REQUIRED_GROUPS}}),
)
apigateway_stage_waf_associated = stack_policy(
    "apigateway-stage-waf-associated",
    "Every REST API stage is associated with a web ACL.",
    _stages_associated,
)
wafv2_webacl_logging = stack_policy(
    "wafv2-webacl-logging",
    "Web ACLs log their decisions.",
    _logged,
)

POLICIES = [wafv2_webacl_managed_rules, apigateway_stage_waf_associated, wafv2_webacl_logging]
