"""The ingestion pipeline: API Gateway → Kinesis (native) → Firehose → S3, as the component declares it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from components import templates
from components.apistage import ACCESS_LOG_FORMAT
from components.ingestion import IngestionArgs, IngestionPipeline
from components.settings import StackSettings, parse_settings
from components.waf import WebFirewall, WebFirewallArgs
from tests.conftest import REGION, Synthesize, assert_policy_pack_passes
from tools.policy_eval import evaluate
from tools.synth import ACCOUNT_ID, RegisteredResource, Synthesis

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0000"
STREAM = "cp-dev-euw1-clicks"


def settings_with(**values: Any) -> StackSettings:
    raw = {"environment": "dev", **{k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}}
    return parse_settings(raw, region=REGION, stack="dev")


@pytest.fixture
def pipeline(synth: Synthesize) -> Callable[..., Synthesis]:
    def run(preview: bool = False, **values: Any) -> Synthesis:
        settings = settings_with(**values)
        return synth(lambda: IngestionPipeline("ing", IngestionArgs(
            stack=settings, ingestion=settings.ingestion, sites=settings.sites, key_arn=KEY_ARN)),
                     preview=preview)

    return run


def one(synthesis: Synthesis, type_: str, name: str | None = None) -> RegisteredResource:
    matches = [r for r in synthesis.of_type(type_) if name is None or r.name == name]
    assert len(matches) == 1, [r.name for r in matches]
    return matches[0]


def statements(synthesis: Synthesis, role_policy_name: str) -> list[dict[str, Any]]:
    policy = one(synthesis, "aws:iam/rolePolicy:RolePolicy", role_policy_name).inputs["policy"]
    return list(json.loads(policy)["Statement"])


def test_no_lambda_runs_on_the_collection_path(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline()

    assert not synthesis.of_type("aws:lambda/function:Function")
    integration = one(synthesis, "aws:apigateway/integration:Integration").inputs
    assert integration["type"] == "AWS"
    assert integration["uri"] == f"arn:aws:apigateway:{REGION}:kinesis:action/PutRecords"


def test_the_integration_deploys_the_tested_templates(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline(collectClientDetails=True, corsAllowedOrigins=["https://www.example.com"])

    integration = one(synthesis, "aws:apigateway/integration:Integration", "ing-put-records").inputs
    expected = templates.put_records_request(STREAM, include_client_details=True)
    assert integration["requestTemplates"] == {"application/json": expected, "text/plain": expected}
    assert integration["passthroughBehavior"] == "NEVER"
    assert integration["requestParameters"] == {
        "integration.request.header.Content-Type": "'application/x-amz-json-1.1'"}
    responses = {r.inputs["statusCode"]: r.inputs for r in synthesis.of_type(
        "aws:apigateway/integrationResponse:IntegrationResponse") if r.name.startswith("ing-put-records")}
    origins = ["https://www.example.com"]
    assert responses["200"]["responseTemplates"]["application/json"] == templates.put_records_response(origins)
    assert "selectionPattern" not in responses["200"]
    assert responses["500"]["selectionPattern"] == "4\\d{2}"
    assert responses["503"]["selectionPattern"] == "5\\d{2}"
    assert responses["500"]["responseTemplates"]["application/json"] == templates.kinesis_error_response(origins)


def test_the_post_route_validates_every_body_against_the_schema(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline(eventTypes=["view", "play"])

    post = one(synthesis, "aws:apigateway/method:Method").inputs
    model = one(synthesis, "aws:apigateway/model:Model")
    validator = one(synthesis, "aws:apigateway/requestValidator:RequestValidator")
    assert post["httpMethod"] == "POST"
    assert post["requestValidatorId"] == f"{validator.name}-id"
    assert post["requestModels"] == {"application/json": model.outputs["name"], "text/plain": model.outputs["name"]}
    assert validator.inputs["validateRequestBody"] is True
    assert json.loads(model.inputs["schema"]) == templates.events_schema(["view", "play"])


@pytest.mark.parametrize("required", [True, False])
def test_api_key_and_usage_plan_follow_the_setting(pipeline: Callable[..., Synthesis], required: bool) -> None:
    synthesis = pipeline(collectionApiKeyRequired=required, apiThrottleRateLimit=50, apiThrottleBurstLimit=100,
                         apiQuotaPerDay=1000000)

    assert one(synthesis, "aws:apigateway/method:Method").inputs["apiKeyRequired"] is required
    plans = synthesis.of_type("aws:apigateway/usagePlan:UsagePlan")
    assert len(plans) == (1 if required else 0)
    if required:
        assert plans[0].inputs["throttleSettings"] == {"rateLimit": 50.0, "burstLimit": 100.0}
        assert plans[0].inputs["quotaSettings"] == {"limit": 1000000.0, "period": "DAY"}
        assert len(synthesis.of_type("aws:apigateway/usagePlanKey:UsagePlanKey")) == 1


def test_the_integration_role_may_only_put_records_on_this_stream(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline()

    stream_arn = one(synthesis, "aws:kinesis/stream:Stream").outputs["arn"]
    assert statements(synthesis, "ing-collect-api-policy") == [
        {"Sid": "PutClicks", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": stream_arn},
        {"Sid": "EncryptClicks", "Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": KEY_ARN,
         "Condition": {"StringEquals": {"kms:ViaService": f"kinesis.{REGION}.amazonaws.com"}}},
    ]
    trust = json.loads(one(synthesis, "aws:iam/role:Role", "ing-collect-api-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


@pytest.mark.parametrize(("mode", "shards"), [("ON_DEMAND", None), ("PROVISIONED", 4.0)])
def test_the_stream_is_encrypted_and_sized_from_settings(pipeline: Callable[..., Synthesis], mode: str,
                                                         shards: float | None) -> None:
    synthesis = pipeline(streamMode=mode, streamShardCount="4", streamRetentionHours="48")

    stream = one(synthesis, "aws:kinesis/stream:Stream").inputs
    assert (stream["encryptionType"], stream["kmsKeyId"]) == ("KMS", KEY_ARN)
    assert stream["name"] == STREAM
    assert stream["retentionPeriod"] == 48
    assert stream["streamModeDetails"] == {"streamMode": mode}
    assert stream.get("shardCount") == shards


def test_firehose_delivers_gzip_json_lines_encrypted_and_partitioned(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline(firehoseBufferSeconds="120", firehoseBufferMiB="32")

    delivery = one(synthesis, "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream").inputs
    stream_arn = one(synthesis, "aws:kinesis/stream:Stream").outputs["arn"]
    s3 = delivery["extendedS3Configuration"]
    assert delivery["kinesisSourceConfiguration"]["kinesisStreamArn"] == stream_arn
    assert s3["bucketArn"] == one(synthesis, "aws:s3/bucket:Bucket").outputs["arn"]
    assert (s3["kmsKeyArn"], s3["compressionFormat"], s3["fileExtension"]) == (KEY_ARN, "GZIP", ".jsonl.gz")
    assert s3["prefix"].startswith("events/year=!{timestamp:yyyy}/")
    assert s3["errorOutputPrefix"].startswith("errors/!{firehose:error-output-type}/")
    assert (s3["bufferingInterval"], s3["bufferingSize"]) == (120, 32)
    assert s3["cloudwatchLoggingOptions"]["enabled"] is True
    assert s3["processingConfiguration"]["processors"] == [{"type": "AppendDelimiterToRecord"}]


def test_the_firehose_role_reads_this_stream_and_writes_this_bucket_only(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline()

    bucket = f"arn:aws:s3:::cp-dev-euw1-raw-{ACCOUNT_ID}"
    by_sid = {s["Sid"]: s for s in statements(synthesis, "ing-firehose-policy")}
    assert set(by_sid) == {"ReadClickStream", "WriteRawObjects", "UseStackKeyThroughKinesisAndS3",
                           "WriteDeliveryErrors"}
    assert by_sid["ReadClickStream"]["Resource"] == one(synthesis, "aws:kinesis/stream:Stream").outputs["arn"]
    assert by_sid["WriteRawObjects"]["Resource"] == [bucket, f"{bucket}/*"]
    assert by_sid["UseStackKeyThroughKinesisAndS3"]["Resource"] == KEY_ARN
    trust = json.loads(one(synthesis, "aws:iam/role:Role", "ing-firehose-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": ACCOUNT_ID}}


def test_the_raw_bucket_is_private_versioned_encrypted_and_tls_only(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline()

    assert one(synthesis, "aws:s3/bucket:Bucket").inputs["bucket"] == f"cp-dev-euw1-raw-{ACCOUNT_ID}"
    [rule] = one(synthesis, "aws:s3/bucketServerSideEncryptionConfiguration:"
                            "BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": KEY_ARN},
                    "bucketKeyEnabled": True}
    versioning = one(synthesis, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"] == {"status": "Enabled"}
    block = one(synthesis, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    ownership = one(synthesis, "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    deny, personalize = json.loads(one(synthesis, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert personalize["Principal"] == {"Service": "personalize.amazonaws.com"}
    assert personalize["Resource"] == [f"arn:aws:s3:::cp-dev-euw1-raw-{ACCOUNT_ID}",
                                       f"arn:aws:s3:::cp-dev-euw1-raw-{ACCOUNT_ID}/prepared/*"]
    assert personalize["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}


@pytest.mark.parametrize(("transition", "expiration", "expected_storage_rules"), [
    ("30", "0", [{"transitions": [{"days": 30.0, "storageClass": "STANDARD_IA"}]}] * 2),
    ("0", "400", [{"expiration": {"days": 400.0}}] * 2),
    ("0", "0", []),
])
def test_lifecycle_follows_the_settings(pipeline: Callable[..., Synthesis], transition: str, expiration: str,
                                        expected_storage_rules: list[dict[str, Any]]) -> None:
    synthesis = pipeline(rawDataTransitionDays=transition, rawDataExpirationDays=expiration,
                         noncurrentVersionExpirationDays="10")

    rules = one(synthesis, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    *storage, housekeeping = rules
    assert [{k: v for k, v in r.items() if k in ("transitions", "expiration")} for r in storage] == \
        expected_storage_rules
    assert [r["filter"] for r in storage] == [{"prefix": "events/"}, {"prefix": "errors/"}][:len(storage)]
    assert housekeeping["noncurrentVersionExpiration"] == {"noncurrentDays": 10.0}
    assert housekeeping["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7.0}


def test_the_stage_traces_logs_and_throttles(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline(apiThrottleRateLimit="20", apiThrottleBurstLimit="40")

    stage = one(synthesis, "aws:apigateway/stage:Stage")
    access_logs = one(synthesis, "aws:cloudwatch/logGroup:LogGroup", "ing-api-access-logs")
    assert stage.inputs["xrayTracingEnabled"] is True
    assert stage.inputs["accessLogSettings"]["destinationArn"] == access_logs.outputs["arn"]
    assert json.loads(stage.inputs["accessLogSettings"]["format"]) == ACCESS_LOG_FORMAT
    execution_logs = one(synthesis, "aws:cloudwatch/logGroup:LogGroup", "ing-api-execution-logs")
    assert execution_logs.inputs["name"] == "API-Gateway-Execution-Logs_ing-api-id/v1"
    assert execution_logs.urn in stage.dependencies
    for log_group in synthesis.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert log_group.inputs["kmsKeyId"] == KEY_ARN
    method = one(synthesis, "aws:apigateway/methodSettings:MethodSettings").inputs
    assert method["methodPath"] == "*/*"
    assert method["settings"] == {"metricsEnabled": True, "loggingLevel": "INFO", "dataTraceEnabled": False,
                                  "throttlingRateLimit": 20.0, "throttlingBurstLimit": 40.0}


def test_access_logs_hold_no_personal_data() -> None:
    assert not {"$context.identity.sourceIp", "$context.identity.userAgent"} & set(ACCESS_LOG_FORMAT.values())


@pytest.mark.parametrize("manage", [True, False])
def test_the_account_cloudwatch_role_is_managed_only_when_asked(pipeline: Callable[..., Synthesis],
                                                                manage: bool) -> None:
    synthesis = pipeline(manageApiGatewayAccount=manage)

    assert len(synthesis.of_type("aws:apigateway/account:Account")) == (1 if manage else 0)


def test_cors_adds_a_preflight_only_for_configured_origins(pipeline: Callable[..., Synthesis]) -> None:
    without = pipeline()
    single = pipeline(corsAllowedOrigins=["https://www.example.com"])
    several = pipeline(corsAllowedOrigins=["https://www.example.com", "https://blog.example.com"])

    assert [m.inputs["httpMethod"] for m in without.of_type("aws:apigateway/method:Method")] == ["POST"]
    assert sorted(m.inputs["httpMethod"] for m in single.of_type("aws:apigateway/method:Method")) == [
        "OPTIONS", "POST"]
    preflight = one(single, "aws:apigateway/integrationResponse:IntegrationResponse", "ing-options-mock-200")
    assert preflight.inputs["responseTemplates"]["application/json"] == templates.cors_preflight_response(
        ["https://www.example.com"])

    def gateway_origin(synthesis: Synthesis) -> set[Any]:
        return {(r.inputs.get("responseParameters") or {}).get("gatewayresponse.header.Access-Control-Allow-Origin")
                for r in synthesis.of_type("aws:apigateway/response:Response")}

    assert gateway_origin(without) == {None}
    assert gateway_origin(single) == {"'https://www.example.com'"}
    assert gateway_origin(several) == {"method.request.header.Origin"}


def test_gateway_errors_answer_json(pipeline: Callable[..., Synthesis]) -> None:
    synthesis = pipeline()

    responses = {r.inputs["responseType"]: r.inputs for r in synthesis.of_type("aws:apigateway/response:Response")}
    assert set(responses) == {"BAD_REQUEST_BODY", "DEFAULT_4XX", "DEFAULT_5XX"}
    assert responses["BAD_REQUEST_BODY"]["responseTemplates"]["application/json"] == \
        templates.gateway_bad_request_body_response()


def test_a_template_change_redeploys_the_api(pipeline: Callable[..., Synthesis]) -> None:
    def trigger(synthesis: Synthesis) -> Any:
        return one(synthesis, "aws:apigateway/deployment:Deployment").inputs["triggers"]

    assert trigger(pipeline()) == trigger(pipeline())
    assert trigger(pipeline()) != trigger(pipeline(collectClientDetails=True))
    assert trigger(pipeline()) != trigger(pipeline(eventTypes=["view"]))


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_the_pipeline_behind_the_firewall_passes_the_policy_pack(synth: Synthesize, preview: bool) -> None:
    settings = settings_with(corsAllowedOrigins=["https://www.example.com"])

    def program() -> None:
        pipeline = IngestionPipeline("ing", IngestionArgs(stack=settings, ingestion=settings.ingestion,
                                                          sites=settings.sites, key_arn=KEY_ARN))
        WebFirewall("waf", WebFirewallArgs(stack=settings, waf=settings.waf, key_arn=KEY_ARN,
                                           stages={"collect": pipeline.stage}))

    assert_policy_pack_passes(evaluate(synth(program, preview=preview)), preview)


def test_without_the_firewall_the_stage_is_rejected(pipeline: Callable[..., Synthesis]) -> None:
    findings = evaluate(pipeline())

    assert [f.policy for f in findings] == ["apigateway-stage-waf-associated"]
