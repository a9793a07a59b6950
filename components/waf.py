"""AWS WAF in front of every API stage of the stack: AWS managed rules, a per-IP rate limit, a body-size cap."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.settings import StackBasics, WafSettings
from components.shared import encrypted_log_group

# Rule groups every web ACL must hold (the policy pack requires them too).
REQUIRED_MANAGED_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                           "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList")
ANONYMOUS_IP_GROUP = "AWSManagedRulesAnonymousIpList"
# Optional (wafBotControl), last: Bot Control is billed per request it inspects, so the cheaper rules block first.
BOT_CONTROL_GROUP = "AWSManagedRulesBotControlRuleSet"
# The core rule set blocks bodies over 8 KB; a batch of events is larger. Our own body-size rule replaces it.
ALWAYS_COUNTED = (("AWSManagedRulesCommonRuleSet", "SizeRestrictions_BODY"),)
# Largest body either API accepts: a compact batch of 500 events at every schema maximum is about 2.4 MB (tested);
# the margin allows pretty-printed JSON. Above it, PutRecords' 5 MiB limit would refuse the batch anyway.
MAX_BODY_BYTES = 4 * 1024 * 1024
REDACTED_HEADERS = ("x-api-key", "authorization")
_WHOLE_QUERY_STRING = aws.wafv2.WebAclLoggingConfigurationRedactedFieldQueryStringArgs()  # type: ignore[no-untyped-call]


def max_number_regex(limit: int) -> str:
    """A regex matching exactly the decimal integers 0..limit (no sign, no leading zeros)."""
    digits = str(limit)
    alternatives = ["0"]
    if len(digits) > 1:
        alternatives.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            rest = len(digits) - i - 1
            alternatives.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    if limit > 0:
        alternatives.append(digits)
    return "^(" + "|".join(alternatives) + ")$"


def _visibility(name: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": name}


def web_acl_rules(waf: WafSettings) -> list[dict[str, Any]]:
    """The web ACL's rules, in the WAFv2 API's JSON form (what ``CreateWebACL`` takes as ``Rules``)."""
    groups = [*REQUIRED_MANAGED_GROUPS, *([ANONYMOUS_IP_GROUP] if waf.block_anonymous_ips else []),
              *([BOT_CONTROL_GROUP] if waf.bot_control else [])]
    counted = [*ALWAYS_COUNTED, *waf.count_only_rules]
    rules: list[dict[str, Any]] = [{
        "Name": "rate-per-ip",
        "Priority": 0,
        "Action": {"Block": {}},
        "Statement": {"RateBasedStatement": {"Limit": waf.rate_limit_per_5_minutes,
                                             "EvaluationWindowSec": 300, "AggregateKeyType": "IP"}},
        "VisibilityConfig": _visibility("rate-per-ip"),
    }, {
        "Name": "body-size",
        "Priority": 1,
        "Action": {"Block": {}},
        # Block a declared body larger than MAX_BODY_BYTES (WAF inspects only the first KBs of a body itself).
        "Statement": {"AndStatement": {"Statements": [
            {"SizeConstraintStatement": {"FieldToMatch": {"SingleHeader": {"Name": "content-length"}},
                                         "ComparisonOperator": "GT", "Size": 0,
                                         "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
            {"NotStatement": {"Statement": {"RegexMatchStatement": {
                "RegexString": max_number_regex(MAX_BODY_BYTES),
                "FieldToMatch": {"SingleHeader": {"Name": "content-length"}},
                "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}}},
        ]}},
        "VisibilityConfig": _visibility("body-size"),
    }]
    for priority, group in enumerate(groups, start=2):
        statement: dict[str, Any] = {"VendorName": "AWS", "Name": group}
        overrides = [{"Name": rule, "ActionToUse": {"Count": {}}} for g, rule in counted if g == group]
        if overrides:
            statement["RuleActionOverrides"] = overrides
        if group == BOT_CONTROL_GROUP:
            statement["ManagedRuleGroupConfigs"] = [{"AWSManagedRulesBotControlRuleSet": {"InspectionLevel": "COMMON"}}]
        rules.append({"Name": group, "Priority": priority, "OverrideAction": {"None": {}},
                      "Statement": {"ManagedRuleGroupStatement": statement}, "VisibilityConfig": _visibility(group)})
    return rules


@dataclass(frozen=True)
class WebFirewallArgs:
    stack: StackBasics
    waf: WafSettings
    key_arn: pulumi.Input[str]
    # The stages to protect, by a stable key (the API's role: "collect", "serve").
    stages: Mapping[str, aws.apigateway.Stage]


class WebFirewall(pulumi.ComponentResource):
    web_acl: aws.wafv2.WebAcl

    def __init__(self, name: str, args: WebFirewallArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:security:WebFirewall", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        acl_name = stack.physical_name("api-firewall", 128)
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            name=acl_name,
            description="Protects the stack's REST API stages",
            scope="REGIONAL",
            default_action=aws.wafv2.WebAclDefaultActionArgs(allow=aws.wafv2.WebAclDefaultActionAllowArgs()),
            rule_json=json.dumps(web_acl_rules(args.waf)),
            visibility_config=aws.wafv2.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=acl_name, sampled_requests_enabled=True),
            opts=child,
        )
        # WAF only delivers to log groups named aws-waf-logs-*.
        logs = encrypted_log_group(self, f"{name}-logs", stack, args.key_arn,
                                   f"aws-waf-logs-{stack.name_prefix}-api")
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[logs.arn],
            redacted_fields=[*(aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(
                single_header=aws.wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=header))
                for header in REDACTED_HEADERS),
                # Reader tokens travel in the query string (POST /events/reader?token=: beacons send no headers);
                # WAF redacts a whole query string or none.
                aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(query_string=_WHOLE_QUERY_STRING)],
            opts=child,
        )
        # Keyed by the stage, so adding or removing an API never re-associates the others; the alias adopts the
        # association that earlier versions named by position.
        for index, (key, stage) in enumerate(args.stages.items()):
            aws.wafv2.WebAclAssociation(f"{name}-association-{key}", resource_arn=stage.arn,
                                        web_acl_arn=self.web_acl.arn, opts=pulumi.ResourceOptions(
                                            parent=self, aliases=[pulumi.Alias(name=f"{name}-association-{index}")]))
        self.register_outputs({"webAclArn": self.web_acl.arn})
