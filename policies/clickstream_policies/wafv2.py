"""AWS WAF rules: every stage behind a web ACL that holds the required managed groups and a rate limit, logged."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from ._helpers import UNKNOWN, attached, configured_policy, items, peek, stack_policy

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
STAGE = "aws:apigateway/stage:Stage"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
BUCKET = "aws:s3/bucket:Bucket"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
# The name of a log destination (log group, bucket, delivery stream) inside its ARN.
DESTINATION_NAME = re.compile(r"arn:aws[a-z-]*:(?:logs:[^:]*:[^:]*:log-group:([^:]+)(?::\*)?|s3:::([^/]+)/?.*"
                              r"|firehose:[^:]*:[^:]*:deliverystream/(.+))")
WAF_LOG_PREFIX = "aws-waf-logs-"
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
        override = rule.get("overrideAction") or {}
        visibility = rule.get("visibilityConfig") or {}
        typed.append({
            "Name": rule.get("name"),
            "Statement": {
                **({"ManagedRuleGroupStatement": {"Name": managed.get("name")}} if managed else {}),
                **({"RateBasedStatement": {}} if statement.get("rateBasedStatement") else {})},
            **({"OverrideAction": {"Count": {}} if override.get("count") is not None else {"None": {}}}
               if override else {}),
            "VisibilityConfig": {"CloudWatchMetricsEnabled": visibility.get("cloudwatchMetricsEnabled")}})
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


def _no_count_override(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = set(args.get_config().get("countedRuleGroups", []))
    for rule in _rules(args.props):
        group = rule.get("Statement", {}).get("ManagedRuleGroupStatement", {}).get("Name")
        if group and "Count" in (rule.get("OverrideAction") or {}) and group not in allowed:
            report_violation(f"Web ACL {args.name} counts every rule of {group} instead of applying it: set its "
                             "override_action to none and count single rules with rule_action_overrides "
                             "(wafCountOnlyRules), or list the group in countedRuleGroups while you evaluate it.",
                             None)


def _metrics(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    visibility = args.props.get("visibilityConfig") or {}
    if visibility.get("cloudwatchMetricsEnabled") is not True:
        report_violation(f"Web ACL {args.name} publishes no metrics: set visibility_config "
                         "cloudwatch_metrics_enabled=True.", None)
    for rule in _rules(args.props):
        if (rule.get("VisibilityConfig") or {}).get("CloudWatchMetricsEnabled") is not True:
            report_violation(f"Rule {rule.get('Name')} of web ACL {args.name} publishes no metrics: set its "
                             "VisibilityConfig CloudWatchMetricsEnabled to true.", None)


def _wired_to(resource: PolicyResource, prop: str, type_: str, resources: Sequence[PolicyResource]) -> bool:
    """``prop`` is wired to a resource of ``type_`` of this stack, through a property dependency or, for a literal
    ARN, by equal value."""
    if any(d.resource_type == type_ for d in resource.property_dependencies.get(prop, [])):
        return True
    value = peek(resource.props, prop)
    return value is not UNKNOWN and value is not None and any(
        r.resource_type == type_ and peek(r.props, "arn") == value for r in resources)


def _association_stage(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for association in (r for r in args.resources if r.resource_type == ASSOCIATION):
        if not _wired_to(association, "resourceArn", STAGE, args.resources):
            target = peek(association.props, "resourceArn")
            report_violation(f"Web ACL association {association.name} protects {target!r}, "
                             "which is not a stage of this stack: set resource_arn to one of the stack's stages "
                             "(Stage.arn), or remove the association.", association.urn)


def _association_acl(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for association in (r for r in args.resources if r.resource_type == ASSOCIATION):
        if not _wired_to(association, "webAclArn", WEB_ACL, args.resources):
            acl = peek(association.props, "webAclArn")
            report_violation(f"Web ACL association {association.name} uses {acl!r}, which is "
                             "not this stack's web ACL: set web_acl_arn to the stack's web ACL "
                             "(WebFirewall.web_acl.arn).", association.urn)


def _logging_acl(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for logging in (r for r in args.resources if r.resource_type == LOGGING):
        if not _wired_to(logging, "resourceArn", WEB_ACL, args.resources):
            acl = peek(logging.props, "resourceArn")
            report_violation(f"WAF logging configuration {logging.name} logs {acl!r}, which is "
                             "not this stack's web ACL: set resource_arn to the stack's web ACL.", logging.urn)


def _destination_names(logging: PolicyResource) -> list[str]:
    """The names of the log destinations: from their ARNs when known, else from the wired resources' names."""
    names = []
    for value in items(peek(logging.props, "logDestinationConfigs")):
        match = DESTINATION_NAME.fullmatch(value) if isinstance(value, str) else None
        if match:
            names.append(next(g for g in match.groups() if g))
        elif value is not UNKNOWN:
            names.append(str(value))
    if names:
        return names
    by_type = {LOG_GROUP: "name", BUCKET: "bucket", FIREHOSE: "name"}
    wired = [peek(d.props, by_type[d.resource_type])
             for d in logging.property_dependencies.get("logDestinationConfigs", []) if d.resource_type in by_type]
    return [name for name in wired if isinstance(name, str)]  # an auto-generated name is not known before deploy


def _logging_destination(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for logging in (r for r in args.resources if r.resource_type == LOGGING):
        for name in _destination_names(logging):
            if not name.startswith(WAF_LOG_PREFIX):
                report_violation(f"WAF logging configuration {logging.name} delivers to {name!r}: AWS WAF only "
                                 f"delivers to destinations named {WAF_LOG_PREFIX}*; use such a log group "
                                 "(WebFirewall's).", logging.urn)


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

wafv2_webacl_no_count_override = configured_policy(
    "wafv2-webacl-no-count-override",
    "Managed rule groups are applied, not counted wholesale (count single rules with rule action overrides).",
    WEB_ACL,
    _no_count_override,
    {"countedRuleGroups": {"type": "array", "items": {"type": "string"}, "default": []}},
)
wafv2_webacl_metrics = configured_policy(
    "wafv2-webacl-metrics",
    "Web ACLs and each of their rules publish CloudWatch metrics.",
    WEB_ACL,
    _metrics,
    {},
)
wafv2_webaclassociation_stack_stage = stack_policy(
    "wafv2-webaclassociation-stack-stage",
    "Web ACL associations protect a stage of this stack.",
    _association_stage,
)
wafv2_webaclassociation_stack_acl = stack_policy(
    "wafv2-webaclassociation-stack-acl",
    "Web ACL associations use this stack's web ACL.",
    _association_acl,
)
wafv2_webaclloggingconfiguration_stack_acl = stack_policy(
    "wafv2-webaclloggingconfiguration-stack-acl",
    "WAF logging configurations log this stack's web ACL.",
    _logging_acl,
)
wafv2_webaclloggingconfiguration_destination = stack_policy(
    "wafv2-webaclloggingconfiguration-destination",
    "WAF logging configurations deliver to destinations named aws-waf-logs-*.",
    _logging_destination,
)

POLICIES = [wafv2_webacl_managed_rules, apigateway_stage_waf_associated, wafv2_webacl_logging,
            wafv2_webacl_no_count_override, wafv2_webacl_metrics, wafv2_webaclassociation_stack_stage,
            wafv2_webaclassociation_stack_acl, wafv2_webaclloggingconfiguration_stack_acl,
            wafv2_webaclloggingconfiguration_destination]
