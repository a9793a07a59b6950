"""Each rule passes the compliant resource the program makes and fails it after one mutated property.

The evaluator is checked against the analyzer's semantics too: unknown values make a policy advisory, and stack
policies see parents, dependencies and property dependencies as resources.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pytest
from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from clickstream_policies import PACK_NAME, POLICIES
from components.function import FunctionArgs, LambdaFunction
from components.program import build
from components.security import EncryptionKey, EncryptionKeyArgs
from components.settings import StackSettings, parse_settings
from tests.conftest import REGION, Synthesize, assert_policy_pack_passes, make_handlers_root
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis, synthesize

POLICY_BY_NAME = {p.name: p for p in POLICIES}
Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def compliant(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """The whole program plus an asynchronous function, as the components make them, with AWS values known.
    Synthesized once per module: tests read it or mutate deep copies."""
    settings = parse_settings({"environment": "dev"}, region=REGION, stack="dev")
    handlers_root = make_handlers_root(tmp_path_factory.mktemp("compliant"))

    def program() -> None:
        outputs = build(settings)
        key_arn = cast(pulumi.Output[str], outputs["kmsKeyArn"])
        demo = LambdaFunction("demo", FunctionArgs(stack=settings, key_arn=key_arn,
                                                   handler_module="demo", description="Demo",
                                                   environment={"TABLE": "t"}, handlers_root=handlers_root,
                                                   asynchronous=True))
        aws.lambda_.Permission("demo-schedule", action="lambda:InvokeFunction", function=demo.function.name,
                               principal="events.amazonaws.com",
                               source_arn=f"arn:aws:events:{REGION}:123456789012:rule/cp-dev-euw1-nightly")
        # Until the training orchestration brings its own, a topic and a state machine as the pack wants them.
        aws.sns.Topic("demo-topic", kms_master_key_id=key_arn)
        aws.sfn.StateMachine(
            "demo-machine", role_arn=demo.role.arn, type="STANDARD",
            definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
            encryption_configuration=aws.sfn.StateMachineEncryptionConfigurationArgs(
                type="CUSTOMER_MANAGED_KMS_KEY", kms_key_id=key_arn),
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                level="ALL", include_execution_data=True,
                log_destination=demo.log_group.arn.apply(lambda arn: f"{arn}:*")),
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=True))

    return synthesize({"aws:region": REGION}, stack="dev", preview=False, program=program)


@dataclass(frozen=True)
class Rewire:
    """A mutation that also cuts property dependencies (a value no longer wired to the stack's resource) or turns the
    resource into another type (the same inputs on, say, a user instead of a role)."""
    mutate: Mutation
    unwire: tuple[str, ...] = ()
    retype: str | None = None

    def __call__(self, props: dict[str, Any]) -> None:
        self.mutate(props)


def mutated(synthesis: Synthesis, type_: str | tuple[str, str], mutate: Mutation | None) -> Synthesis:
    """A copy of ``synthesis`` with one property of a resource of ``type_`` changed (in its inputs and its outputs, as
    resource and stack policies read them), or with that resource removed (``mutate=None``). Without a name, the first
    by name: the order in which the mocks register resources is not fixed."""
    resources = copy.deepcopy(synthesis.resources)
    type_, name = type_ if isinstance(type_, tuple) else (type_, None)
    target = min((r for r in resources if r.type == type_ and name in (None, r.name)), key=lambda r: r.name)
    if mutate is None:
        resources.remove(target)
        return Synthesis(synthesis.stack, resources)
    mutate(target.inputs)
    mutate(target.outputs)
    if isinstance(mutate, Rewire):
        for prop in mutate.unwire:
            target.property_dependencies[prop] = []
        if mutate.retype:
            target.urn = target.urn.replace(f"::{target.type}::", f"::{mutate.retype}::")
            target.type = mutate.retype
    return Synthesis(synthesis.stack, resources)


def names(findings: list[Any], level: str = "mandatory") -> list[str]:
    return [f.policy for f in findings if f.level == level]


def drop(*path: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        for key in path[:-1]:
            props = props[key]
        props.pop(path[-1])

    return mutate


def put(*path_and_value: Any) -> Mutation:
    *path, value = path_and_value

    def mutate(props: dict[str, Any]) -> None:
        for key in path[:-1]:
            props = props[key]
        props[path[-1]] = value

    return mutate


def waf_rules(mutate_rules: Callable[[list[dict[str, Any]]], None]) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        rules = json.loads(props["ruleJson"])
        mutate_rules(rules)
        props["ruleJson"] = json.dumps(rules)

    return mutate


def without_rule(name: str) -> Mutation:
    return waf_rules(lambda rules: rules.__setitem__(slice(None), [r for r in rules if r["Name"] != name]))


def first_statement(**changes: Any) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        document["Statement"][0].update(changes)
        props["policy"] = json.dumps(document)

    return mutate


def add_statement(statement: dict[str, Any]) -> Mutation:
    """Append ``statement`` to the resource's policy document (starting one when there is none)."""
    def mutate(props: dict[str, Any]) -> None:
        document: dict[str, Any] = json.loads(props["policy"]) if isinstance(props.get("policy"), str) else {
            "Version": "2012-10-17", "Statement": []}
        document["Statement"].append(statement)
        props["policy"] = json.dumps(document)

    return mutate


def lifecycle_rule(index: int, **changes: Any) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        props["rules"][index].update(changes)

    return mutate


def managed_group(name: str, **changes: Any) -> Mutation:
    def mutate_rules(rules: list[dict[str, Any]]) -> None:
        for rule in rules:
            if rule["Name"] == name:
                rule.update(changes)

    return waf_rules(mutate_rules)


def tls_policy(effect: str, secure_transport: str) -> Mutation:
    def mutate(props: dict[str, Any]) -> None:
        document = json.loads(props["policy"])
        document["Statement"][0]["Effect"] = effect
        document["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"] = secure_transport
        props["policy"] = json.dumps(document)

    return mutate


LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
FUNCTION = "aws:lambda/function:Function"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
STAGE = "aws:apigateway/stage:Stage"
# The collection API's POST /events, by name: the order in which the mocks register resources is not fixed.
POST = ("aws:apigateway/method:Method", "cp-dev-euw1-ingestion-post")
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
QUEUE = "aws:sqs/queue:Queue"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
FUNCTION_DEMO = ("aws:lambda/function:Function", "demo-function")
MACHINE = "aws:sfn/stateMachine:StateMachine"
KEY = "aws:kms/key:Key"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# The raw clickstream bucket's (the audit bucket has its own, with other rules).
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "cp-dev-euw1-ingestion-raw-versioning")
LIFECYCLE = ("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "cp-dev-euw1-ingestion-raw-lifecycle")
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
STREAM = "aws:kinesis/stream:Stream"
PERMISSION = "aws:lambda/permission:Permission"
TOPIC = "aws:sns/topic:Topic"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
FOREIGN_STAGE = "arn:aws:apigateway:eu-west-1::/restapis/someoneelse/stages/prod"
FOREIGN_ACL = "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/other/11111111-2222-3333-4444-555555555555"
PUBLIC_READ = {"Sid": "PublicRead", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
               "Resource": "arn:aws:s3:::cp-dev-euw1-raw-123456789012/*"}

CASES: list[tuple[str, str | tuple[str, str], Mutation | None, str]] = [
    ("kms-key-rotation-enabled", "aws:kms/key:Key", put("enableKeyRotation", False), "set enable_key_rotation=True"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key", drop("enableKeyRotation"), "set enable_key_rotation=True"),
    ("cloudwatch-loggroup-encrypted", LOG_GROUP, drop("kmsKeyId"), "set kms_key_id"),
    ("cloudwatch-loggroup-encrypted", LOG_GROUP, put("kmsKeyId", ""), "set kms_key_id"),
    ("cloudwatch-loggroup-retention", LOG_GROUP, drop("retentionInDays"), "set retention_in_days"),
    ("cloudwatch-loggroup-retention", LOG_GROUP, put("retentionInDays", 0.0), "set retention_in_days"),
    ("lambda-function-tracing-active", FUNCTION, put("tracingConfig", {"mode": "PassThrough"}),
     'set tracing_config mode="Active"'),
    ("lambda-function-tracing-active", FUNCTION, drop("tracingConfig"), 'set tracing_config mode="Active"'),
    ("lambda-function-environment-encrypted", FUNCTION, drop("kmsKeyArn"), "set kms_key_arn"),
    ("kinesis-stream-encrypted", "aws:kinesis/stream:Stream", put("encryptionType", "NONE"),
     'set encryption_type="KMS"'),
    ("kinesis-stream-encrypted", "aws:kinesis/stream:Stream", drop("kmsKeyId"), "kms_key_id to the stack's key"),
    ("kinesis-stream-encrypted", "aws:kinesis/stream:Stream", put("kmsKeyId", "alias/aws/kinesis"),
     "customer-managed"),
    ("firehose-deliverystream-encrypted", FIREHOSE, drop("extendedS3Configuration", "kmsKeyArn"),
     "set extended_s3_configuration.kms_key_arn"),
    ("firehose-deliverystream-encrypted", FIREHOSE, drop("kinesisSourceConfiguration"),
     "key_type CUSTOMER_MANAGED_CMK"),
    ("s3-bucket-encrypted", SSE, None, "add a BucketServerSideEncryptionConfiguration"),
    ("s3-bucket-encrypted", SSE, put("rules", [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"},
                                                "bucketKeyEnabled": True}]), 'sse_algorithm="aws:kms"'),
    ("s3-bucket-encrypted", SSE, put("rules", [{"applyServerSideEncryptionByDefault": {
        "sseAlgorithm": "aws:kms", "kmsMasterKeyId": "k"}, "bucketKeyEnabled": False}]), "bucket_key_enabled=True"),
    ("s3-bucket-public-access-blocked", PAB, None, "add a BucketPublicAccessBlock"),
    *[("s3-bucket-public-access-blocked", PAB, put(flag, False), "set to True") for flag in
      ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")],
    ("s3-bucket-tls-only", BUCKET_POLICY, None, "aws:SecureTransport is false"),
    ("s3-bucket-tls-only", BUCKET_POLICY, tls_policy("Deny", "true"), "aws:SecureTransport is false"),
    ("apigateway-stage-access-logging", STAGE, drop("accessLogSettings"), "set access_log_settings"),
    ("apigateway-stage-access-logging", STAGE, drop("accessLogSettings", "format"), "a JSON format"),
    ("apigateway-stage-xray", STAGE, put("xrayTracingEnabled", False), "set xray_tracing_enabled=True"),
    ("apigateway-method-validated", POST, drop("requestValidatorId"), "set request_validator_id"),
    ("apigateway-method-validated", POST, put("requestModels", {}), "request_models"),
    ("lambda-eventsourcemapping-on-failure-destination", ESM, drop("destinationConfig"),
     "set destination_config.on_failure.destination_arn"),
    ("lambda-eventsourcemapping-bisect", ESM, put("bisectBatchOnFunctionError", False),
     "set bisect_batch_on_function_error=True"),
    ("lambda-eventsourcemapping-partial-batch", ESM, drop("functionResponseTypes"),
     'set function_response_types=["ReportBatchItemFailures"]'),
    ("lambda-eventsourcemapping-bounded-retries", ESM, put("maximumRecordAgeInSeconds", -1.0),
     "set maximum_record_age_in_seconds"),
    ("lambda-eventsourcemapping-bounded-retries", ESM, drop("maximumRetryAttempts"), "set maximum_retry_attempts"),
    ("lambda-permission-source-arn", "aws:lambda/permission:Permission", drop("sourceArn"), "set source_arn"),
    ("sqs-queue-encrypted", QUEUE, drop("kmsMasterKeyId"), "set kms_master_key_id"),
    ("sqs-queue-encrypted", QUEUE, put("kmsMasterKeyId", "alias/aws/sqs"), "set kms_master_key_id"),
    ("wafv2-webacl-managed-rules", WEB_ACL, without_rule("AWSManagedRulesSQLiRuleSet"),
     "lacks the managed rule groups AWSManagedRulesSQLiRuleSet"),
    ("wafv2-webacl-managed-rules", WEB_ACL, without_rule("AWSManagedRulesCommonRuleSet"),
     "lacks the managed rule groups AWSManagedRulesCommonRuleSet"),
    ("wafv2-webacl-managed-rules", WEB_ACL, without_rule("rate-per-ip"), "has no rate-based rule"),
    ("apigateway-stage-waf-associated", "aws:wafv2/webAclAssociation:WebAclAssociation", None,
     "associate it with the stack's web ACL"),
    ("wafv2-webacl-logging", "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", None,
     "add a WebAclLoggingConfiguration"),
    ("apigateway-stage-execution-logging", SETTINGS, None, "add MethodSettings"),
    ("apigateway-stage-execution-logging", SETTINGS, put("settings", "loggingLevel", "OFF"), "logging_level INFO"),
    ("apigateway-stage-execution-logging", SETTINGS, put("settings", "metricsEnabled", False), "metrics_enabled=True"),
    ("apigateway-method-write-authorized", POST, put("apiKeyRequired", False), "set api_key_required=True"),
    ("iam-policy-no-wildcard-actions", ROLE_POLICY, first_statement(Action=["s3:*"]), "name the exact actions"),
    ("iam-policy-no-wildcard-actions", ROLE_POLICY, first_statement(Action="*"), "name the exact actions"),
    ("iam-policy-no-wildcard-actions", ROLE_POLICY, first_statement(Action=["kinesis:Get*"]),
     "name the exact actions"),
    ("iam-policy-no-wildcard-resources", ROLE_POLICY, first_statement(Resource="*"), "name the resource ARNs"),
    ("lambda-function-async-dead-letter", FUNCTION_DEMO, drop("deadLetterConfig"), "set dead_letter_config"),
    ("sns-topic-encrypted", "aws:sns/topic:Topic", drop("kmsMasterKeyId"), "set kms_master_key_id"),
    ("sns-topic-encrypted", "aws:sns/topic:Topic", put("kmsMasterKeyId", "alias/aws/sns"), "set kms_master_key_id"),
    ("sfn-statemachine-encrypted", MACHINE, drop("encryptionConfiguration"), "CUSTOMER_MANAGED_KMS_KEY"),
    ("sfn-statemachine-encrypted", MACHINE, put("encryptionConfiguration", {"type": "AWS_OWNED_KEY"}),
     "CUSTOMER_MANAGED_KMS_KEY"),
    ("sfn-statemachine-logging", MACHINE, put("loggingConfiguration", "level", "OFF"), "level ALL"),
    ("sfn-statemachine-logging", MACHINE, drop("loggingConfiguration"), "level ALL"),
    ("sfn-statemachine-tracing", MACHINE, drop("tracingConfiguration"), "enabled=True"),
    # Issue 13: the blind spots.
    ("kms-key-policy-no-public-principal", KEY, add_statement({
        "Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}),
     "name the principals"),
    ("kms-key-policy-no-public-principal", KEY, add_statement({
        "Sid": "EveryoneOverTls", "Effect": "Allow", "Principal": "*", "Action": ["kms:Decrypt"], "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}), "kms:CallerAccount"),
    ("s3-bucket-versioning-enabled", VERSIONING, put("versioningConfiguration", {"status": "Suspended"}),
     'status "Enabled"'),
    ("s3-bucket-versioning-enabled", VERSIONING, None, "add a BucketVersioning"),
    ("s3-bucket-lifecycle-keeps-history", LIFECYCLE, lifecycle_rule(0, expiration={"days": 7.0}),
     "raise rawDataExpirationDays"),
    ("s3-bucket-lifecycle-keeps-history", LIFECYCLE, lifecycle_rule(2, noncurrentVersionExpiration={
        "noncurrentDays": 1.0}), "raise noncurrentVersionExpirationDays"),
    ("s3-bucket-acls-disabled", OWNERSHIP, put("rule", {"objectOwnership": "ObjectWriter"}), "BucketOwnerEnforced"),
    ("s3-bucketpolicy-no-public-access", BUCKET_POLICY, add_statement(PUBLIC_READ), "name the principals"),
    ("cloudwatch-metricalarm-actions", ALARM, drop("alarmActions"), "set alarm_actions"),
    ("cloudwatch-metricalarm-actions", ALARM, put("alarmActions", ["arn:aws:s3:::cp-dev-euw1-raw-123456789012"]),
     "not an SNS topic"),
    ("cloudwatch-metricalarm-actions-enabled", ALARM, put("actionsEnabled", False), "actions_enabled"),
    ("wafv2-webacl-no-count-override", WEB_ACL, managed_group("AWSManagedRulesCommonRuleSet",
                                                              OverrideAction={"Count": {}}), "rule_action_overrides"),
    ("wafv2-webacl-metrics", WEB_ACL, put("visibilityConfig", "cloudwatchMetricsEnabled", False),
     "cloudwatch_metrics_enabled=True"),
    ("wafv2-webaclloggingconfiguration-destination", WAF_LOGGING, Rewire(put(
        "logDestinationConfigs", ["arn:aws:logs:eu-west-1:123456789012:log-group:cp-dev-euw1-api"]),
        unwire=("logDestinationConfigs",)), "aws-waf-logs-*"),
    ("kinesis-stream-retention", STREAM, put("retentionPeriod", 12.0), "between 24 and 8760"),
    ("kinesis-stream-shard-count", STREAM, put("streamModeDetails", {"streamMode": "PROVISIONED"}),
     "at least 1"),
    ("firehose-deliverystream-buffering", FIREHOSE, put("extendedS3Configuration", "bufferingSize", 0.0),
     "between 1 and 128 MiB"),
    ("firehose-deliverystream-buffering", FIREHOSE, put("extendedS3Configuration", "bufferingInterval", 901.0),
     "between 60 and 900 s"),
    ("lambda-eventsourcemapping-batching", ESM, put("batchSize", 0.0), "set batch_size"),
    ("lambda-permission-not-public", PERMISSION, put("principal", "*"), 'never "*"'),
    ("lambda-function-supported-runtime", FUNCTION, put("runtime", "python3.8"), "supported runtime"),
    ("apigateway-methodsettings-cache-encrypted", SETTINGS, put("settings", "cachingEnabled", True),
     "cache_data_encrypted=True"),
    ("iam-policy-no-kms-decrypt-all-keys", ROLE_POLICY, first_statement(
        Action=["kms:Decrypt"], Resource="arn:aws:kms:*:123456789012:key/*"), "every KMS key"),
    ("iam-user-no-policies", ROLE_POLICY, Rewire(put("user", "cms"), retype="aws:iam/userPolicy:UserPolicy"),
     "IAM users"),
    ("sns-topic-policy-no-public-access", TOPIC, add_statement({
        "Sid": "AnyonePublishes", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Publish",
        "Resource": "*"}), "name the publishing service"),
    ("sqs-queue-policy-no-public-access", QUEUE, add_statement({
        "Sid": "AnyoneSends", "Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}),
     "name the sending service"),
]


# One misconfiguration that two policies report: wiring a side resource elsewhere also leaves the stack's resource
# without it.
CASCADES: list[tuple[tuple[str, ...], str | tuple[str, str], Mutation, str]] = [
    # The TLS statement turned into an allow: plain HTTP is accepted, and from anyone.
    (("s3-bucketpolicy-no-public-access", "s3-bucket-tls-only"), BUCKET_POLICY, tls_policy("Allow", "false"),
     "aws:SecureTransport is false"),
    (("apigateway-stage-waf-associated", "wafv2-webaclassociation-stack-stage"), ASSOCIATION,
     Rewire(put("resourceArn", FOREIGN_STAGE), unwire=("resourceArn",)), "not a stage of this stack"),
    (("apigateway-stage-waf-associated", "wafv2-webaclassociation-stack-acl"), ASSOCIATION,
     Rewire(put("webAclArn", FOREIGN_ACL), unwire=("webAclArn",)), "not this stack's web ACL"),
    (("wafv2-webacl-logging", "wafv2-webaclloggingconfiguration-stack-acl"), WAF_LOGGING,
     Rewire(put("resourceArn", FOREIGN_ACL), unwire=("resourceArn",)), "not this stack's web ACL"),
]


def test_the_compliant_resources_pass_every_policy(compliant: Synthesis) -> None:
    assert evaluate(compliant) == []


# Stack policies about a resource's side resources report against that resource.
REPORTED_ON = {"s3-bucket-encrypted": "aws:s3/bucket:Bucket",
               "s3-bucket-public-access-blocked": "aws:s3/bucket:Bucket",
               "s3-bucket-tls-only": "aws:s3/bucket:Bucket", "apigateway-stage-waf-associated": STAGE,
               "apigateway-stage-execution-logging": STAGE, "wafv2-webacl-logging": WEB_ACL,
               "s3-bucket-versioning-enabled": "aws:s3/bucket:Bucket",
               "s3-bucket-lifecycle-keeps-history": "aws:s3/bucket:Bucket",
               "s3-bucket-acls-disabled": "aws:s3/bucket:Bucket",
               "iam-user-no-policies": "aws:iam/userPolicy:UserPolicy"}


def test_the_catalogue_covers_at_least_thirty_misconfigurations() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize(("policy", "type_", "mutate", "fix"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_one_mutation_is_caught_by_its_policy(compliant: Synthesis, policy: str, type_: str | tuple[str, str],
                                              mutate: Mutation, fix: str) -> None:
    findings = evaluate(mutated(compliant, type_, mutate))

    assert names(findings) == [policy]
    assert fix in findings[0].message
    assert findings[0].resource_type == REPORTED_ON.get(policy, type_ if isinstance(type_, str) else type_[0])


@pytest.mark.parametrize(("policies", "type_", "mutate", "fix"), CASCADES, ids=[c[0][-1] for c in CASCADES])
def test_a_misconfiguration_caught_twice_names_both_policies(compliant: Synthesis, policies: tuple[str, ...],
                                                             type_: str, mutate: Mutation, fix: str) -> None:
    findings = evaluate(mutated(compliant, type_, mutate))

    assert sorted(names(findings)) == sorted(policies)
    assert any(fix in f.message for f in findings if f.policy == policies[-1])


def test_every_policy_has_a_mutation_case() -> None:
    assert {case[0] for case in CASES} | {p for case in CASCADES for p in case[0]} == set(POLICY_BY_NAME)


def test_function_without_environment_needs_no_key(compliant: Synthesis) -> None:
    def no_environment(props: dict[str, Any]) -> None:
        props.pop("environment")
        props.pop("kmsKeyArn")

    assert evaluate(mutated(compliant, FUNCTION, no_environment)) == []


def test_queue_consumers_are_not_held_to_stream_rules(compliant: Synthesis) -> None:
    def sqs_mapping(props: dict[str, Any]) -> None:
        for key in ("startingPosition", "destinationConfig", "bisectBatchOnFunctionError", "functionResponseTypes",
                    "maximumRecordAgeInSeconds", "maximumRetryAttempts", "parallelizationFactor"):
            props.pop(key, None)

    assert evaluate(mutated(compliant, ESM, sqs_mapping)) == []


def test_a_stack_may_declare_a_public_write_route_explicitly(compliant: Synthesis) -> None:
    public = mutated(compliant, POST, put("apiKeyRequired", False))

    assert evaluate(public, config={"apigateway-method-write-authorized": {
        "publicWriteMethods": [POST[1]]}}) == []


def test_required_waf_groups_are_configurable(compliant: Synthesis) -> None:
    config = {"wafv2-webacl-managed-rules": {"requiredManagedRuleGroups": ["AWSManagedRulesBotControlRuleSet"]}}

    findings = evaluate(compliant, config=config)

    assert names(findings) == ["wafv2-webacl-managed-rules"]
    assert "AWSManagedRulesBotControlRuleSet" in findings[0].message


def test_a_rule_can_be_relaxed_to_advisory_per_stack(compliant: Synthesis) -> None:
    findings = evaluate(mutated(compliant, "aws:kms/key:Key", put("enableKeyRotation", False)),
                        config={"kms-key-rotation-enabled": "advisory"})

    assert names(findings) == [] and names(findings, "advisory") == ["kms-key-rotation-enabled"]


def test_read_only_methods_need_no_validator(compliant: Synthesis) -> None:
    def get_without_validator(props: dict[str, Any]) -> None:
        props["httpMethod"] = "GET"
        props.pop("requestValidatorId")

    assert evaluate(mutated(compliant, POST, get_without_validator)) == []


def test_presence_checks_stay_decisive_when_the_value_is_unknown(settings: StackSettings, handlers_root: Path,
                                                                 synth: Synthesize) -> None:
    def program() -> None:
        key = EncryptionKey("key", EncryptionKeyArgs(stack=settings))
        LambdaFunction("demo", FunctionArgs(stack=settings, key_arn=key.arn, handler_module="demo",
                                            description="Demo", environment={"TABLE": "t"},
                                            handlers_root=handlers_root))

    synthesis = synth(program, preview=True)

    [log_group] = synthesis.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["kmsKeyId"] == UNKNOWN_STRING_VALUE
    assert_policy_pack_passes(evaluate(synthesis), preview=True)


def test_a_policy_reading_an_unknown_value_becomes_advisory(compliant: Synthesis) -> None:
    findings = evaluate(mutated(compliant, "aws:cloudwatch/logGroup:LogGroup",
                                put("retentionInDays", UNKNOWN_NUMBER_VALUE)))

    assert names(findings) == []
    assert names(findings, "advisory") == ["cloudwatch-loggroup-retention"]
    assert "can't be known during preview" in findings[0].message


def test_stack_policies_see_property_dependencies_as_resources(compliant: Synthesis) -> None:
    seen: dict[str, list[str]] = {}

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for r in args.resources:
            if r.resource_type == LOG_GROUP and r.name == "demo-logs":
                seen["kmsKeyId"] = [d.resource_type for d in r.property_dependencies["kmsKeyId"]]
                assert r.parent is not None
                seen["parent"] = [r.parent.resource_type]
                report_violation("reported against the log group", r.urn)

    probe = StackValidationPolicy(name="probe-stack-links", description="probe", validate=validate)

    findings = evaluate(compliant, [probe])

    assert seen == {"kmsKeyId": ["aws:kms/key:Key"], "parent": ["clickstream:compute:LambdaFunction"]}
    assert [(f.policy, f.resource_type) for f in findings] == [("probe-stack-links",
                                                                "aws:cloudwatch/logGroup:LogGroup")]


def test_policy_names_follow_service_resource_rule_and_are_unique() -> None:
    assert len(POLICY_BY_NAME) == len(POLICIES)
    for policy in POLICIES:
        assert re.fullmatch(r"[a-z0-9]+-[a-z0-9]+-[a-z0-9-]+", policy.name), policy.name
        assert policy.description.endswith(".")
    assert re.fullmatch(r"[a-zA-Z0-9-_.]{1,100}", PACK_NAME)


def test_findings_name_the_resource_they_were_reported_for(compliant: Synthesis) -> None:
    resources: list[RegisteredResource] = compliant.resources
    [key] = [r for r in resources if r.type == "aws:kms/key:Key"]

    findings = evaluate(mutated(compliant, "aws:kms/key:Key", put("enableKeyRotation", False)))

    assert findings[0].resource_name == key.name


def test_the_readme_documents_every_policy() -> None:
    from tools.synth import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert [p.name for p in POLICIES if f"| `{p.name}`" not in readme] == []
