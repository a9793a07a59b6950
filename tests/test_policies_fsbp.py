"""The misconfiguration catalogue, continued: cases drawn from the AWS Foundational Security Best Practices (FSBP)
controls of Security Hub for the services the stack uses, each named by its control id.

Like tests/test_policies.py, every case starts from the compliant program and changes one thing (a property, a
wiring, or one added resource); the policies that must reject it are exactly the expected ones.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.test_policies import (
    ASSOCIATION,
    BUCKET_POLICY,
    FIREHOSE,
    FUNCTION,
    KEY,
    MACHINE,
    OWNERSHIP,
    PAB,
    PERMISSION,
    QUEUE,
    ROLE_POLICY,
    SETTINGS,
    SSE,
    STAGE,
    STREAM,
    TOPIC,
    WAF_LOGGING,
    WEB_ACL,
    Mutation,
    Rewire,
    add_statement,
    compliant,
    drop,
    first_statement,
    mutated,
    names,
    put,
    waf_rules,
)
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis

__all__ = ["compliant"]  # the module-scoped fixture, shared with the first part of the catalogue

ACCOUNT = "123456789012"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@dataclass(frozen=True)
class Added:
    """One resource added to the compliant program (inputs and outputs alike, no dependencies)."""
    type_: str
    inputs: dict[str, Any]
    name: str = "fsbp-added"


@dataclass(frozen=True)
class Case:
    control: str
    policies: tuple[str, ...]
    target: str | None
    change: Mutation | Added | None
    fix: str
    config: dict[str, Any] = field(default_factory=dict)


def changed(synthesis: Synthesis, case: Case) -> Synthesis:
    if isinstance(case.change, Added):
        added = case.change
        resource = RegisteredResource(
            type=added.type_, name=added.name, urn=f"urn:pulumi:dev::clickstream-personalization::{added.type_}::"
            f"{added.name}", inputs=copy.deepcopy(added.inputs), outputs=copy.deepcopy(added.inputs), parent=None,
            dependencies=[], property_dependencies={}, provider=None, custom=True)
        return Synthesis(synthesis.stack, [*copy.deepcopy(synthesis.resources), resource])
    assert case.target is not None
    return mutated(synthesis, case.target, case.change)


def unchanged(props: dict[str, Any]) -> None:
    """No change: the case is the configuration."""


def rules_json(rules: list[dict[str, Any]]) -> Mutation:
    return put("ruleJson", json.dumps(rules))


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def both(*mutations: Mutation) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        for m in mutations:
            m(props)

    return mutate


def first_rule_without_metrics(rules: list[dict[str, Any]]) -> None:
    rules[0]["VisibilityConfig"]["CloudWatchMetricsEnabled"] = False


CATALOGUE: list[Case] = [
    Case("APIGateway.1", ("apigateway-stage-execution-logging",), SETTINGS, drop("settings", "loggingLevel"),
         "logging_level INFO"),
    Case("APIGateway.3", ("apigateway-stage-xray",), STAGE, drop("xrayTracingEnabled"),
         "set xray_tracing_enabled=True"),
    # The collection stage's association moved onto the serving stage: both associations are the stack's, one stage
    # is left unprotected.
    Case("APIGateway.4", ("apigateway-stage-waf-associated",), ASSOCIATION,
         Rewire(put("resourceArn", "arn:aws:apigateway:eu-west-1::/restapis/api-id/stages/v1"),
                unwire=("resourceArn",)), "associate it with the stack's web ACL"),
    Case("APIGateway.5", ("apigateway-methodsettings-cache-encrypted",), SETTINGS,
         both(put("settings", "cachingEnabled", True), put("settings", "cacheDataEncrypted", False)),
         "cache_data_encrypted=True"),
    Case("CloudWatch.15", ("cloudwatch-metricalarm-actions",), ALARM, put("alarmActions", []), "notifies no one"),
    Case("CloudWatch.15", ("cloudwatch-metricalarm-actions",), ALARM,
         put("alarmActions", [f"arn:aws:sqs:eu-west-1:{ACCOUNT}:cp-dev-euw1-event-processor-dlq"]),
         "not an SNS topic"),
    # FSBP's CloudWatch.16 keeps a year; the dev stack keeps 14 days, which the default minimum (1 day) accepts.
    Case("CloudWatch.16", ("cloudwatch-loggroup-retention",), "aws:cloudwatch/logGroup:LogGroup", unchanged,
         "at least 365", {"cloudwatch-loggroup-retention": {"minimumRetentionDays": 365}}),
    Case("CloudWatch.17", ("cloudwatch-metricalarm-actions-enabled",), None, Added(
        "aws:cloudwatch/compositeAlarm:CompositeAlarm", {
            "alarmName": "cp-dev-euw1-alarm-pipeline", "alarmRule": "ALARM(cp-dev-euw1-alarm-collect-api-5xx)",
            "alarmActions": [f"arn:aws:sns:eu-west-1:{ACCOUNT}:cp-dev-euw1-alarms"], "actionsEnabled": False}),
         "actions_enabled"),
    Case("DataFirehose.1", ("firehose-deliverystream-encrypted",), FIREHOSE, both(
        drop("kinesisSourceConfiguration"), put("serverSideEncryption", {"enabled": True, "keyType": "AWS_OWNED_CMK"})),
         "key_type CUSTOMER_MANAGED_CMK"),
    # Full administrator rights include decrypting with every key.
    Case("IAM.1", ("iam-policy-no-wildcard-actions", "iam-policy-no-wildcard-resources",
                   "iam-policy-no-kms-decrypt-all-keys"), ROLE_POLICY,
         first_statement(Action="*", Resource="*"), "name the exact actions"),
    Case("IAM.2", ("iam-user-no-policies",), None, Added(
        "aws:iam/userPolicyAttachment:UserPolicyAttachment", {
            "user": "cms-editor", "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/cp-dev-euw1-cms-write"}),
         "IAM users"),
    Case("IAM.21", ("iam-policy-no-wildcard-actions",), ROLE_POLICY, first_statement(Action=["kinesis:*"]),
         "name the exact actions"),
    Case("KMS.1", ("iam-policy-no-kms-decrypt-all-keys",), None, Added("aws:iam/policy:Policy", {
        "name": "cp-dev-euw1-reader", "policy": document({
            "Sid": "ReadAnything", "Effect": "Allow", "Action": "kms:ReEncryptFrom",
            "Resource": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/*"})}), "every KMS key"),
    Case("KMS.2", ("iam-policy-no-kms-decrypt-all-keys",), ROLE_POLICY,
         first_statement(Action=["kms:Decrypt"], Resource=["arn:aws:kms:*:*:*"]), "every KMS key"),
    Case("KMS.4", ("kms-key-rotation-enabled",), None, Added(KEY, {
        "description": "A second key, forgotten", "enableKeyRotation": False}), "set enable_key_rotation=True"),
    Case("KMS.5", ("kms-key-policy-no-public-principal",), KEY, add_statement({
        "Sid": "IfExistsIsNoLimit", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "kms:Decrypt",
        "Resource": "*", "Condition": {"StringEqualsIfExists": {"aws:SourceAccount": ACCOUNT}}}),
         "name the principals"),
    Case("KMS.5", ("kms-key-policy-no-public-principal",), KEY, add_statement({
        "Sid": "AnyCallerAccount", "Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
        "Condition": {"StringLike": {"kms:CallerAccount": "*"}}}), "fixed values"),
    Case("Kinesis.1", ("kinesis-stream-encrypted",), STREAM, drop("encryptionType"), 'set encryption_type="KMS"'),
    # FSBP's default for Kinesis.3 is a week; the pack's default is AWS's own minimum, raised here by configuration.
    Case("Kinesis.3", ("kinesis-stream-retention",), STREAM, unchanged, "between 168 and 8760",
         {"kinesis-stream-retention": {"minimumRetentionHours": 168}}),
    Case("Lambda.1", ("lambda-permission-not-public", "lambda-permission-source-arn"), PERMISSION,
         both(put("principal", "*"), drop("sourceArn")), 'never "*"'),
    Case("Lambda.2", ("lambda-function-supported-runtime",), FUNCTION, put("runtime", "nodejs16.x"),
         "supported runtime"),
    Case("S3.2", ("s3-bucketpolicy-no-public-access",), BUCKET_POLICY, add_statement({
        "Sid": "ReadFromTheOffice", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::cp-dev-euw1-raw-123456789012/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}}), "name the principals"),
    Case("S3.3", ("s3-bucketpolicy-no-public-access",), BUCKET_POLICY, add_statement({
        "Sid": "AnyoneUploads", "Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::cp-dev-euw1-raw-123456789012/*"}),
         "name the principals"),
    Case("S3.5", ("s3-bucket-tls-only",), BUCKET_POLICY,
         first_statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:root"}), "aws:SecureTransport is false"),
    # The public-access block is attached to another bucket: this one has none.
    Case("S3.8", ("s3-bucket-public-access-blocked",), PAB, Rewire(put("bucket", "someone-elses-bucket"),
                                                                  unwire=("bucket",)), "add a BucketPublicAccessBlock"),
    Case("S3.12", ("s3-bucket-acls-disabled",), OWNERSHIP, None, "BucketOwnerEnforced"),
    Case("S3.17", ("s3-bucket-encrypted",), SSE, put("rules", [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms"}, "bucketKeyEnabled": True}]), "kms_master_key_id=<stack key>"),
    Case("SNS.1", ("sns-topic-encrypted",), TOPIC, put("kmsMasterKeyId", ""), "set kms_master_key_id"),
    Case("SNS.4", ("sns-topic-policy-no-public-access",), None, Added("aws:sns/topicPolicy:TopicPolicy", {
        "arn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:cp-dev-euw1-alarms", "policy": document({
            "Sid": "AnyTopicSource", "Effect": "Allow", "Principal": "*", "Action": "sns:Publish", "Resource": "*",
            "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*"}}})}), "name the publishing service"),
    Case("SQS.1", ("sqs-queue-encrypted",), QUEUE, both(drop("kmsMasterKeyId"), put("sqsManagedSseEnabled", True)),
         "set kms_master_key_id"),
    Case("SQS.3", ("sqs-queue-policy-no-public-access",), None, Added("aws:sqs/queuePolicy:QueuePolicy", {
        "queueUrl": f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/cp-dev-euw1-event-processor-dlq",
        "policy": document({"Sid": "AnyoneReads", "Effect": "Allow", "Principal": {"AWS": "*"},
                            "Action": "sqs:ReceiveMessage", "Resource": "*"})}), "name the sending service"),
    Case("StepFunctions.1", ("sfn-statemachine-logging",), MACHINE, drop("loggingConfiguration", "logDestination"),
         "log_destination"),
    Case("WAF.10", ("wafv2-webacl-managed-rules",), WEB_ACL, rules_json([]), "has no rate-based rule"),
    Case("WAF.11", ("wafv2-webaclloggingconfiguration-destination",), WAF_LOGGING, Rewire(put(
        "logDestinationConfigs", [f"arn:aws:firehose:eu-west-1:{ACCOUNT}:deliverystream/cp-dev-euw1-raw-delivery"]),
        unwire=("logDestinationConfigs",)), "aws-waf-logs-*"),
    Case("WAF.12", ("wafv2-webacl-metrics",), WEB_ACL, waf_rules(first_rule_without_metrics),
         "CloudWatchMetricsEnabled"),
]


def test_the_fsbp_catalogue_holds_at_least_25_cases_over_the_stacks_services() -> None:
    services = {case.control.split(".")[0] for case in CATALOGUE}

    assert len(CATALOGUE) >= 25
    assert services >= {"APIGateway", "CloudWatch", "IAM", "Kinesis", "DataFirehose", "KMS", "Lambda", "S3", "SNS",
                        "SQS", "StepFunctions", "WAF"}


@pytest.mark.parametrize("case", CATALOGUE, ids=[f"{c.control}-{i}" for i, c in enumerate(CATALOGUE)])
def test_an_fsbp_misconfiguration_is_rejected_by_its_policy(compliant: Synthesis, case: Case) -> None:
    findings = evaluate(changed(compliant, case), config=case.config)

    assert sorted(set(names(findings))) == sorted(case.policies)
    assert names(findings, "advisory") == []
    assert any(case.fix in f.message for f in findings if f.policy == case.policies[0]), [f.message for f in findings]
    assert all(f.resource_name for f in findings)


def test_the_readme_counts_the_catalogue() -> None:
    from tests.test_policies import CASCADES, CASES
    from tools.synth import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = len(CASES) + len(CASCADES)

    assert f"{first + len(CATALOGUE)} cases. {first} in the first part" in readme
    assert f"and {len(CATALOGUE)} drawn from the AWS Foundational Security Best Practices" in readme


def test_a_case_without_its_change_passes(compliant: Synthesis) -> None:
    # GIVEN the Kinesis.3 case's configuration WHEN the stream keeps a week THEN nothing is reported
    week = mutated(compliant, STREAM, put("retentionPeriod", 168.0))

    assert evaluate(week, config={"kinesis-stream-retention": {"minimumRetentionHours": 168}}) == []
