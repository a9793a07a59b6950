"""The web firewall: rules AWS accepts (botocore's model of CreateWebACL), the body-size rule's arithmetic, logging
with redaction, and an association for every API stage."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given
from hypothesis import strategies as st

from components.settings import WafSettings, parse_settings
from components.waf import MAX_BODY_BYTES, REQUIRED_MANAGED_GROUPS, max_number_regex, web_acl_rules
from tests.test_collect_templates import make_event
from tools.synth import stack_names, synthesize_stack

CREATE_WEB_ACL = botocore.session.get_session().get_service_model("wafv2").operation_model("CreateWebACL")


def settings(**values: str) -> WafSettings:
    return parse_settings({"environment": "dev", **values}, region="eu-west-1", stack="dev").waf


@pytest.mark.parametrize("values", [{}, {"wafBlockAnonymousIps": "true", "wafRateLimitPer5Minutes": "500",
                                         "wafCountOnlyRules": '["AWSManagedRulesSQLiRuleSet:SQLi_BODY"]'}])
def test_the_rules_are_a_valid_create_web_acl_request(values: dict[str, str]) -> None:
    rules = web_acl_rules(settings(**values))
    request = {"Name": "acl", "Scope": "REGIONAL", "DefaultAction": {"Allow": {}}, "Rules": rules,
               "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True,
                                    "MetricName": "acl"}}

    report = ParamValidator().validate(request, CREATE_WEB_ACL.input_shape)

    assert not report.has_errors(), report.generate_report()
    assert len({r["Priority"] for r in rules}) == len(rules)
    assert all(r["VisibilityConfig"]["CloudWatchMetricsEnabled"] for r in rules)


def test_managed_groups_rate_limit_and_overrides_follow_the_settings() -> None:
    rules = {r["Name"]: r for r in web_acl_rules(settings(
        wafBlockAnonymousIps="true", wafRateLimitPer5Minutes="500",
        wafCountOnlyRules='["AWSManagedRulesSQLiRuleSet:SQLi_BODY"]'))}

    assert set(REQUIRED_MANAGED_GROUPS) | {"AWSManagedRulesAnonymousIpList"} <= set(rules)
    assert rules["rate-per-ip"]["Statement"]["RateBasedStatement"]["Limit"] == 500
    assert rules["AWSManagedRulesSQLiRuleSet"]["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"] == [
        {"Name": "SQLi_BODY", "ActionToUse": {"Count": {}}}]
    # The core rule set's 8 KB body limit would block every real batch: our own body-size rule replaces it.
    overrides = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert overrides == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]


def test_anonymous_ips_are_not_blocked_by_default() -> None:
    names = [r["Name"] for r in web_acl_rules(settings())]

    assert "AWSManagedRulesAnonymousIpList" not in names


@given(limit=st.integers(0, 10**9), value=st.integers(0, 10**10))
def test_the_content_length_regex_accepts_exactly_zero_to_the_limit(limit: int, value: int) -> None:
    assert (re.fullmatch(max_number_regex(limit)[1:-1], str(value)) is not None) == (value <= limit)


@pytest.mark.parametrize("text", ["", "-1", "007", "1e6", "4194304 ", "+5"])
def test_the_content_length_regex_refuses_what_is_not_a_plain_number(text: str) -> None:
    assert re.fullmatch(max_number_regex(MAX_BODY_BYTES)[1:-1], text) is None


def test_the_regex_fits_waf_and_the_largest_valid_batch_fits_the_limit() -> None:
    longest = "x" * 128
    event = make_event(eventId="e" * 64, sessionId="s" * 128, userId="u" * 128, itemId=longest,
                       recommendationId="r" * 40, impression=[longest] * 25, eventType="share",
                       properties={f"k{i}" + "p" * 30: "v" * 64 for i in range(5)})
    body = json.dumps({"events": [event] * 500}, separators=(",", ":"))

    assert len(max_number_regex(MAX_BODY_BYTES)) <= 512  # WAF's regex length limit
    assert len(body.encode()) < MAX_BODY_BYTES


@pytest.mark.parametrize("stack", stack_names())
def test_every_stage_is_associated_and_the_firewall_logs_redacted(stack: str) -> None:
    synthesis = synthesize_stack(stack, preview=False)

    [acl] = synthesis.of_type("aws:wafv2/webAcl:WebAcl")
    stages = synthesis.of_type("aws:apigateway/stage:Stage")
    associations = synthesis.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")
    assert len(stages) == 2
    assert sorted(a.inputs["resourceArn"] for a in associations) == sorted(s.outputs["arn"] for s in stages)
    assert {a.inputs["webAclArn"] for a in associations} == {acl.outputs["arn"]}
    [logging] = synthesis.of_type("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration")
    assert logging.inputs["redactedFields"] == [{"singleHeader": {"name": "x-api-key"}},
                                                {"singleHeader": {"name": "authorization"}},
                                                {"queryString": {}}]  # reader tokens travel in the query
    [destination] = logging.inputs["logDestinationConfigs"]
    log_group = next(g for g in synthesis.of_type("aws:cloudwatch/logGroup:LogGroup")
                     if g.outputs["arn"] == destination)
    assert log_group.inputs["name"].startswith("aws-waf-logs-")
    assert log_group.inputs["kmsKeyId"]


def test_associations_are_named_by_stage_and_adopt_the_positional_names() -> None:
    associations = synthesize_stack("dev", preview=False).of_type("aws:wafv2/webAclAssociation:WebAclAssociation")

    assert {(a.name, tuple(a.aliases)) for a in associations} == {
        ("cp-dev-euw1-firewall-association-collect", ("cp-dev-euw1-firewall-association-0",)),
        ("cp-dev-euw1-firewall-association-serve", ("cp-dev-euw1-firewall-association-1",))}
