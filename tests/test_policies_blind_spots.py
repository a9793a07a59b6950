"""The rules added for issue 13 (key policies, data protection, alarms, WAF wiring, stream minimums): what they let
through, what their configuration changes, and how they read values that are unknown before deploy."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pulumi_policy import Policy
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from clickstream_policies import _documents, cloudwatch, kinesis, lambda_, s3, wafv2
from tests.conftest import assert_policy_pack_passes
from tests.test_policies import (
    ALARM,
    ESM,
    FUNCTION,
    LIFECYCLE,
    PERMISSION,
    STREAM,
    VERSIONING,
    WAF_LOGGING,
    WEB_ACL,
    Rewire,
    compliant,
    drop,
    lifecycle_rule,
    managed_group,
    mutated,
    names,
    put,
)
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis, stack_config, synthesize

__all__ = ["compliant"]

ACCOUNT = "123456789012"
NS = "clickstream-personalization"


def only(synthesis: Synthesis, policy: Policy, config: dict[str, Any] | None = None) -> list[str]:
    """The messages of one policy's mandatory findings."""
    return [f.message for f in evaluate(synthesis, [policy], config) if f.level == "mandatory"]


def with_resource(synthesis: Synthesis, type_: str, name: str, inputs: dict[str, Any],
                  property_dependencies: dict[str, list[str]] | None = None) -> Synthesis:
    resource = RegisteredResource(type=type_, name=name, urn=f"urn:pulumi:dev::{NS}::{type_}::{name}",
                                  inputs=copy.deepcopy(inputs), outputs=copy.deepcopy(inputs), parent=None,
                                  dependencies=[], property_dependencies=property_dependencies or {}, provider=None,
                                  custom=True)
    return Synthesis(synthesis.stack, [*copy.deepcopy(synthesis.resources), resource])


# --- the shipped program with edge settings --------------------------------------------------------------------------

def dev_with(**settings: str) -> dict[str, Any]:
    return {**stack_config("dev"), **{f"{NS}:{key}": value for key, value in settings.items()}}


EDGES = dev_with(rawDataExpirationDays="365", noncurrentVersionExpirationDays="7", streamMode="PROVISIONED",
                 streamShardCount="2", streamRetentionHours="8760", firehoseBufferSeconds="900",
                 firehoseBufferMiB="128", processorBatchSize="10000", processorBatchingWindowSeconds="300",
                 processorParallelizationFactor="10",
                 wafCountOnlyRules=json.dumps(["AWSManagedRulesCommonRuleSet:SizeRestrictions_BODY"]))


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_a_stack_at_the_edges_of_its_settings_passes(preview: bool) -> None:
    # GIVEN every new setting at the limit AWS and the pack allow WHEN the pack runs THEN nothing is mandatory
    assert_policy_pack_passes(evaluate(synthesize(EDGES, stack="dev", preview=preview)), preview)


def test_a_short_raw_retention_needs_the_policy_configured() -> None:
    # GIVEN raw events deleted after 10 days (legal for the settings when nothing moves to Standard-IA)
    short = synthesize(dev_with(rawDataTransitionDays="0", rawDataExpirationDays="10"), stack="dev", preview=False)

    # WHEN the pack runs with its defaults THEN the lifecycle rule is rejected ...
    assert only(short, s3.s3_bucket_lifecycle_keeps_history) == [
        "Bucket cp-dev-euw1-ingestion-raw loses history: rule events-storage on events/ deletes current objects after "
        "10 days (minimum 30): raise rawDataExpirationDays or, if that retention is intended, lower "
        "minimumExpirationDays in the policy configuration."]
    # ... and a stack that means it says so in its policy configuration
    assert evaluate(short, config={"s3-bucket-lifecycle-keeps-history": {"minimumExpirationDays": 10}}) == []


# --- policy documents ------------------------------------------------------------------------------------------------

def grant(principal: Any, condition: dict[str, Any] | None = None, effect: str = "Allow") -> str:
    statement: dict[str, Any] = {"Sid": "S", "Effect": effect, "Principal": principal, "Action": "kms:Decrypt",
                                 "Resource": "*"}
    if condition is not None:
        statement["Condition"] = condition
    return json.dumps({"Statement": [statement]})


@pytest.mark.parametrize(("document", "public"), [
    (grant("*", {"StringEquals": {"kms:CallerAccount": ACCOUNT, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}}),
     False),
    (grant({"AWS": "*"}, {"StringEquals": {"aws:PrincipalOrgID": "o-abc123"}}), False),
    (grant({"AWS": "*"}, {"ArnEquals": {"aws:SourceArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:t"}}), False),
    (grant({"Service": "logs.eu-west-1.amazonaws.com"}), False),
    (grant({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), False),
    (grant("*", effect="Deny"), False),
    (grant("*"), True),
    (grant({"AWS": ["*", f"arn:aws:iam::{ACCOUNT}:root"]}), True),
    (grant("*", {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}), True),
    (grant("*", {"StringLike": {"aws:SourceAccount": "*"}}), True),
    (grant("*", {"Bool": {"aws:SecureTransport": "true"}}), True),
    (json.dumps({"Statement": {"Effect": "Allow", "NotPrincipal": {"AWS": "x"}, "Action": "s3:*"}}), True),
], ids=["caller-account-via-service", "org", "source-arn", "service", "account", "deny", "star", "star-in-list",
        "if-exists", "wildcard-value", "unrelated-condition", "not-principal"])
def test_a_grant_to_everyone_is_public_unless_a_fixed_condition_narrows_it(document: str, public: bool) -> None:
    assert bool(_documents.public_grants(document)) is public


@pytest.mark.parametrize("document", ["", "not json", "[1, 2]", None, json.dumps({"Statement": ["x"]})])
def test_an_unreadable_document_grants_nothing(document: Any) -> None:
    assert _documents.public_grants(document) == []


# --- alarms ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", [
    f"arn:aws:sns:eu-west-1:{ACCOUNT}:alarms.fifo", f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:pager",
    "arn:aws:automate:eu-west-1:ec2:recover", f"arn:aws:ssm-incidents::{ACCOUNT}:response-plan/api"])
def test_alarm_actions_may_be_any_kind_cloudwatch_runs(compliant: Synthesis, action: str) -> None:
    alarm = mutated(compliant, ALARM, put("alarmActions", [action]))

    assert only(alarm, cloudwatch.cloudwatch_metricalarm_actions) == []


def test_an_alarm_action_known_only_after_deploy_counts_as_present(compliant: Synthesis) -> None:
    # GIVEN an alarm whose topic ARN is not known yet (a preview) WHEN checked THEN it is neither rejected nor advisory
    preview = mutated(compliant, ALARM, put("alarmActions", [UNKNOWN_STRING_VALUE]))

    assert evaluate(preview, [cloudwatch.cloudwatch_metricalarm_actions]) == []


def test_the_allowed_alarm_actions_are_configurable(compliant: Synthesis) -> None:
    config = {"cloudwatch-metricalarm-actions": {"allowedActionPatterns": [r"arn:aws:sns:.*:pager"]}}

    findings = only(compliant, cloudwatch.cloudwatch_metricalarm_actions, config)

    assert findings and all("is not an SNS topic or another alarm action ARN" in m for m in findings)


# --- data buckets ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [
    {"id": "off", "status": "Disabled", "filter": {"prefix": "events/"}, "expiration": {"days": 1.0}},
    {"id": "errors", "status": "Enabled", "filter": {"prefix": "errors/"}, "expiration": {"days": 1.0}},
    {"id": "markers", "status": "Enabled", "filter": {"prefix": ""}, "expiration": {"expiredObjectDeleteMarker": True}},
    {"id": "cold", "status": "Enabled", "filter": {"prefix": "events/"},
     "transitions": [{"days": 1.0, "storageClass": "GLACIER_IR"}]},
], ids=["disabled", "other-prefix", "delete-markers", "transition"])
def test_lifecycle_rules_that_keep_the_raw_history_pass(compliant: Synthesis, rule: dict[str, Any]) -> None:
    kept = mutated(compliant, LIFECYCLE, lambda props: props["rules"].append(rule))

    assert only(kept, s3.s3_bucket_lifecycle_keeps_history) == []


@pytest.mark.parametrize(("rule", "fix"), [
    ({"id": "all", "status": "Enabled", "filter": {"prefix": ""}, "expiration": {"days": 7.0}}, "after 7 days"),
    ({"id": "and", "status": "Enabled", "filter": {"and": {"prefix": "events/year=2026/"}},
      "expiration": {"days": 29.0}}, "after 29 days"),
    ({"id": "legacy", "status": "Enabled", "prefix": "events/", "expiration": {"days": 1.0}}, "after 1 days"),
    ({"id": "date", "status": "Enabled", "filter": {"prefix": "events/"},
      "expiration": {"date": "2027-01-01T00:00:00Z"}}, "on a fixed date"),
    ({"id": "versions", "status": "Enabled", "filter": {"prefix": "events/"},
      "noncurrentVersionExpiration": {"noncurrentDays": 0.0}}, "after 0 days (minimum 7)"),
], ids=["whole-bucket", "and-filter", "legacy-prefix", "date", "noncurrent"])
def test_lifecycle_rules_that_delete_the_raw_history_are_rejected(compliant: Synthesis, rule: dict[str, Any],
                                                                   fix: str) -> None:
    lost = mutated(compliant, LIFECYCLE, lambda props: props["rules"].append(rule))

    [message] = only(lost, s3.s3_bucket_lifecycle_keeps_history)
    assert fix in message and f"rule {rule['id']}" in message


def test_more_prefixes_can_be_protected(compliant: Synthesis) -> None:
    errors_expire = mutated(compliant, LIFECYCLE, lifecycle_rule(1, expiration={"days": 3.0}))
    config = {"s3-bucket-lifecycle-keeps-history": {"protectedPrefixes": ["events/", "errors/"]}}

    assert only(errors_expire, s3.s3_bucket_lifecycle_keeps_history) == []
    assert len(only(errors_expire, s3.s3_bucket_lifecycle_keeps_history, config)) == 1


def test_versioning_is_required_of_data_buckets_only(compliant: Synthesis) -> None:
    # GIVEN a bucket nothing delivers to (a scratch bucket) WHEN it is not versioned THEN the rule leaves it alone
    scratch = with_resource(compliant, "aws:s3/bucket:Bucket", "scratch", {"bucket": "cp-dev-euw1-scratch"})
    assert only(scratch, s3.s3_bucket_versioning_enabled) == []

    # GIVEN it becomes a replica (a replication rule names its ARN) THEN it must be versioned
    replica = with_resource(scratch, "aws:s3/bucketReplicationConfig:BucketReplicationConfig", "replication", {
        "bucket": "raw-id", "role": "r", "rules": [{"status": "Enabled", "destination": {
            "bucket": "arn:aws:s3:::cp-dev-euw1-scratch"}}]})
    assert only(replica, s3.s3_bucket_versioning_enabled) == [
        "Bucket scratch holds readers' data without versioning (status missing): add a BucketVersioning with "
        "versioning_configuration status \"Enabled\" so an overwrite or delete can be undone."]


# --- WAF ------------------------------------------------------------------------------------------------------------

def test_a_rule_group_may_be_counted_wholesale_while_it_is_evaluated(compliant: Synthesis) -> None:
    counted = mutated(compliant, WEB_ACL, managed_group("AWSManagedRulesSQLiRuleSet", OverrideAction={"Count": {}}))
    config = {"wafv2-webacl-no-count-override": {"countedRuleGroups": ["AWSManagedRulesSQLiRuleSet"]}}

    assert len(only(counted, wafv2.wafv2_webacl_no_count_override)) == 1
    assert only(counted, wafv2.wafv2_webacl_no_count_override, config) == []


def test_typed_rules_are_checked_like_rule_json(compliant: Synthesis) -> None:
    typed = [{"name": "common", "priority": 1.0, "overrideAction": {"count": {}},
              "statement": {"managedRuleGroupStatement": {"name": "AWSManagedRulesCommonRuleSet", "vendorName": "AWS"}},
              "visibilityConfig": {"cloudwatchMetricsEnabled": False, "metricName": "common"}}]

    def to_typed(props: dict[str, Any]) -> None:
        props.pop("ruleJson")
        props["rules"] = typed

    acl = mutated(compliant, WEB_ACL, to_typed)

    assert len(only(acl, wafv2.wafv2_webacl_no_count_override)) == 1
    assert only(acl, wafv2.wafv2_webacl_metrics) == [
        "Rule common of web ACL cp-dev-euw1-firewall-acl publishes no metrics: set its VisibilityConfig "
        "CloudWatchMetricsEnabled to true."]


def test_a_waf_log_destination_known_only_after_deploy_is_judged_by_the_wired_resource(compliant: Synthesis) -> None:
    # GIVEN a preview: the destination ARN is unknown, the log group it is wired to is named
    unknown = mutated(compliant, WAF_LOGGING, put("logDestinationConfigs", [UNKNOWN_STRING_VALUE]))
    assert evaluate(unknown, [wafv2.wafv2_webaclloggingconfiguration_destination]) == []

    # WHEN that log group is not named aws-waf-logs-* THEN the logging configuration is rejected
    misnamed = mutated(unknown, (LOG_GROUP_TYPE, "cp-dev-euw1-firewall-logs"), put("name", "cp-dev-euw1-waf"))
    assert only(misnamed, wafv2.wafv2_webaclloggingconfiguration_destination) == [
        "WAF logging configuration cp-dev-euw1-firewall-logging delivers to 'cp-dev-euw1-waf': AWS WAF only "
        "delivers to destinations named aws-waf-logs-*; use such a log group (WebFirewall's)."]


LOG_GROUP_TYPE = "aws:cloudwatch/logGroup:LogGroup"


@pytest.mark.parametrize("destination", [
    f"arn:aws:s3:::aws-waf-logs-{ACCOUNT}", f"arn:aws:firehose:eu-west-1:{ACCOUNT}:deliverystream/aws-waf-logs-x"])
def test_waf_may_log_to_buckets_and_delivery_streams_named_for_it(compliant: Synthesis, destination: str) -> None:
    other = mutated(compliant, WAF_LOGGING, Rewire(put("logDestinationConfigs", [destination]),
                                                   unwire=("logDestinationConfigs",)))

    assert only(other, wafv2.wafv2_webaclloggingconfiguration_destination) == []


def test_an_association_given_the_stages_arn_as_text_belongs_to_the_stack(compliant: Synthesis) -> None:
    # GIVEN the association's ARNs are literal strings equal to the stack's stage and web ACL ARNs
    stage_arn = compliant.of_type("aws:apigateway/stage:Stage")[0].outputs["arn"]
    acl_arn = compliant.of_type(WEB_ACL)[0].outputs["arn"]
    literal = mutated(compliant, "aws:wafv2/webAclAssociation:WebAclAssociation", Rewire(
        lambda props: props.update(resourceArn=stage_arn, webAclArn=acl_arn), unwire=("resourceArn", "webAclArn")))

    assert only(literal, wafv2.wafv2_webaclassociation_stack_stage) == []
    assert only(literal, wafv2.wafv2_webaclassociation_stack_acl) == []


# --- streams and functions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mutate", "rejected"), [
    (drop("retentionPeriod"), False),
    (put("retentionPeriod", 8761.0), True),
    (put("streamModeDetails", {"streamMode": "PROVISIONED"}), True),
    (lambda p: p.update(streamModeDetails={"streamMode": "PROVISIONED"}, shardCount=0.0), True),
    (lambda p: p.update(streamModeDetails={"streamMode": "PROVISIONED"}, shardCount=1.5), True),
    (lambda p: p.update(streamModeDetails={"streamMode": "PROVISIONED"}, shardCount=UNKNOWN_STRING_VALUE), False),
    (lambda p: p.update(streamModeDetails={"streamMode": "PROVISIONED"}, shardCount=1.0), False),
], ids=["default-retention", "retention-over-a-year", "no-shards", "zero-shards", "half-shard", "unknown-shards",
        "one-shard"])
def test_stream_minimums(compliant: Synthesis, mutate: Any, rejected: bool) -> None:
    stream = mutated(compliant, STREAM, mutate)
    findings = only(stream, kinesis.kinesis_stream_retention) + only(stream, kinesis.kinesis_stream_shard_count)

    assert bool(findings) is rejected


@pytest.mark.parametrize(("key", "value", "rejected"), [
    ("batchSize", 10001.0, True), ("maximumBatchingWindowInSeconds", 301.0, True),
    ("parallelizationFactor", 11.0, True), ("parallelizationFactor", 0.0, True), ("batchSize", 1.0, False),
    ("maximumBatchingWindowInSeconds", 0.0, False),
])
def test_event_source_mapping_limits(compliant: Synthesis, key: str, value: float, rejected: bool) -> None:
    assert bool(only(mutated(compliant, ESM, put(key, value)), lambda_.lambda_eventsourcemapping_batching)) is rejected


def test_queue_mappings_have_no_parallelization_factor_to_check(compliant: Synthesis) -> None:
    def queue_mapping(props: dict[str, Any]) -> None:
        props.pop("startingPosition")
        props["parallelizationFactor"] = 0.0

    assert only(mutated(compliant, ESM, queue_mapping), lambda_.lambda_eventsourcemapping_batching) == []


def test_an_organization_wide_permission_is_not_public(compliant: Synthesis) -> None:
    org = mutated(compliant, PERMISSION, lambda p: p.update(principal="*", principalOrgId="o-abc123"))

    assert only(org, lambda_.lambda_permission_not_public) == []


def test_container_functions_and_configured_runtimes_pass(compliant: Synthesis) -> None:
    def to_image(props: dict[str, Any]) -> None:
        props.pop("runtime")
        props["packageType"] = "Image"

    image = mutated(compliant, FUNCTION, to_image)
    assert only(image, lambda_.lambda_function_supported_runtime) == []

    config = {"lambda-function-supported-runtime": {"supportedRuntimes": ["python3.12"]}}
    assert only(compliant, lambda_.lambda_function_supported_runtime, config)
    assert names(evaluate(compliant, [lambda_.lambda_function_supported_runtime])) == []


# --- previews ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dev_preview() -> Synthesis:
    return synthesize(stack_config("dev"), stack="dev", preview=True)


def test_data_protection_is_decided_during_a_preview(dev_preview: Synthesis) -> None:
    # GIVEN a preview (bucket ids unknown) WHEN the raw bucket's versioning is missing THEN the finding is mandatory
    unversioned = mutated(dev_preview, VERSIONING, None)

    findings = evaluate(unversioned)

    assert names(findings) == ["s3-bucket-versioning-enabled"]
    assert "holds readers' data without versioning" in findings[0].message


def test_an_association_rewired_away_is_rejected_during_a_preview(dev_preview: Synthesis) -> None:
    # GIVEN a preview: the association's ARN is unknown either way; only its wiring tells whose stage it protects
    foreign = mutated(dev_preview, "aws:wafv2/webAclAssociation:WebAclAssociation",
                      Rewire(lambda props: None, unwire=("resourceArn",)))

    assert sorted(names(evaluate(foreign))) == ["apigateway-stage-waf-associated",
                                                "wafv2-webaclassociation-stack-stage"]
