"""Ingestion: collection API (API Gateway → Kinesis, no Lambda) → Kinesis Data Stream → Firehose → raw S3 store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from common.contract import Key, ReaderRoute
from components import templates
from components.apistage import (
    ApiDefinition,
    Throttle,
    api_key_with_usage_plan,
    cors_preflight,
    gateway_responses,
    observable_stage,
    regional_rest_api,
)
from components.iam import service_role, source_account
from components.readers import QUERY_IDENTITY, ReaderAuth
from components.settings import IngestionSettings, SiteSettings, StackBasics
from components.shared import StackArns, encrypted_log_group, private_bucket

MODEL_NAME = "ClickstreamEventBatch"
# Firehose partitions by arrival time (UTC hour). Client timestamps could scatter a batch over arbitrary dates.
EVENTS_PREFIX = Key.EVENTS + "year=!{timestamp:yyyy}/month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"
ERRORS_PREFIX = (Key.ERRORS + "!{firehose:error-output-type}/year=!{timestamp:yyyy}/month=!{timestamp:MM}/"
                 "day=!{timestamp:dd}/")


def lifecycle_rules(ingestion: IngestionSettings) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """The raw bucket's lifecycle: history kept (training reads it), cheaper storage after a while, no debris."""
    s3 = aws.s3
    rules = []
    if ingestion.raw_transition_days or ingestion.raw_expiration_days:
        for prefix in (Key.EVENTS, Key.ERRORS):
            rules.append(s3.BucketLifecycleConfigurationRuleArgs(
                id=f"{prefix.rstrip('/')}-storage",
                status="Enabled",
                filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
                transitions=[s3.BucketLifecycleConfigurationRuleTransitionArgs(
                    days=ingestion.raw_transition_days, storage_class="STANDARD_IA")]
                if ingestion.raw_transition_days else None,
                expiration=s3.BucketLifecycleConfigurationRuleExpirationArgs(days=ingestion.raw_expiration_days)
                if ingestion.raw_expiration_days else None,
            ))
    rules.append(s3.BucketLifecycleConfigurationRuleArgs(
        id="versions-and-uploads",
        status="Enabled",
        filter=s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        noncurrent_version_expiration=s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
            noncurrent_days=ingestion.noncurrent_version_expiration_days),
        abort_incomplete_multipart_upload=s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=7),
    ))
    return rules


@dataclass(frozen=True)
class _RouteBasics:
    model: aws.apigateway.Model
    validator: aws.apigateway.RequestValidator
    role: aws.iam.Role
    role_policy: aws.iam.RolePolicy
    request_template: str


@dataclass(frozen=True)
class IngestionArgs:
    stack: StackBasics
    ingestion: IngestionSettings
    sites: SiteSettings
    key_arn: pulumi.Input[str]
    # Where readers sign in: POST /events/reader?token=<jwt> takes the reader id from the verified token.
    reader_auth: ReaderAuth | None = None


class IngestionPipeline(pulumi.ComponentResource):
    """Everything between a reader's click and the raw clickstream store."""

    stream: aws.kinesis.Stream
    bucket: aws.s3.Bucket
    delivery_stream: aws.kinesis.FirehoseDeliveryStream
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    api_key: aws.apigateway.ApiKey | None
    account: aws.apigateway.Account | None
    versioning: aws.s3.BucketVersioning
    collect_url: pulumi.Output[str]

    def __init__(self, name: str, args: IngestionArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:ingestion:IngestionPipeline", name, None, opts)
        self._stack, self._ingestion = args.stack, args.ingestion
        self._key_arn = args.key_arn
        self._name = name
        self._reader_auth = args.reader_auth
        self._child = pulumi.ResourceOptions(parent=self)
        self._arns = StackArns.of(self, args.stack)
        self._account, self._partition = self._arns.account, self._arns.partition

        self._stream()
        self._raw_bucket()
        self._firehose()
        self._api(args.sites.cors_allowed_origins)
        self.register_outputs({
            "collectUrl": self.collect_url,
            "streamName": self.stream.name,
            "rawBucket": self.bucket.bucket,
            "deliveryStream": self.delivery_stream.name,
        })

    def _role(self, suffix: str, service: str, statements: Sequence[Mapping[str, Any]],
              conditions: Mapping[str, Any]) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        return service_role(self, f"{self._name}-{suffix}", self._stack.physical_name(suffix), service,
                            statements, conditions=conditions)

    def _stream(self) -> None:
        ingestion = self._ingestion
        provisioned = ingestion.stream_mode == "PROVISIONED"
        self.stream = aws.kinesis.Stream(
            f"{self._name}-stream",
            name=self.stream_name,
            encryption_type="KMS",
            kms_key_id=self._key_arn,
            retention_period=ingestion.stream_retention_hours,
            stream_mode_details=aws.kinesis.StreamStreamModeDetailsArgs(stream_mode=ingestion.stream_mode),
            shard_count=ingestion.stream_shard_count if provisioned else None,
            opts=self._child,
        )

    def _raw_bucket(self) -> None:
        bucket_name = self._account.apply(lambda account: self._stack.physical_name(f"raw-{account}", 63))
        # Derived from the name, not the bucket's output, so the TLS policy is known at preview time.
        self._bucket_arn = pulumi.Output.concat("arn:", self._partition, ":s3:::", bucket_name)
        raw = private_bucket(f"{self._name}-raw", bucket_name, self._bucket_arn, self._key_arn, self._child,
                             bucket_logical_name=f"{self._name}-raw", policy_logical_name=f"{self._name}-raw-policy",
                             statements=[{
                                 # Dataset import jobs read the training flow's prepared CSV files as Personalize.
                                 "Sid": "PersonalizeReadsPreparedData",
                                 "Effect": "Allow",
                                 "Principal": {"Service": "personalize.amazonaws.com"},
                                 "Action": ["s3:GetObject", "s3:ListBucket"],
                                 "Resource": [self._bucket_arn,
                                              pulumi.Output.concat(self._bucket_arn, f"/{Key.PREPARED}*")],
                                 "Condition": {"StringEquals": {"aws:SourceAccount": self._account}},
                             }])
        self.bucket, self.versioning = raw.bucket, raw.versioning
        aws.s3.BucketLifecycleConfiguration(
            f"{self._name}-raw-lifecycle",
            bucket=self.bucket.id,
            rules=lifecycle_rules(self._ingestion),
            opts=self._child,
        )

    def _firehose(self) -> None:
        stack, ingestion = self._stack, self._ingestion
        log_group_name = f"/aws/vendedlogs/{stack.name_prefix}/firehose"
        log_group = encrypted_log_group(self, f"{self._name}-firehose-logs", stack, self._key_arn, log_group_name)
        log_stream = aws.cloudwatch.LogStream(f"{self._name}-firehose-delivery", name="S3Delivery",
                                              log_group_name=log_group.name, opts=self._child)
        region = stack.region
        role, policy = self._role("firehose", "firehose.amazonaws.com", [
            {"Sid": "ReadClickStream", "Effect": "Allow",
             "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetShardIterator",
                        "kinesis:GetRecords", "kinesis:ListShards"],
             "Resource": self.stream.arn},
            {"Sid": "WriteRawObjects", "Effect": "Allow",
             "Action": ["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
                        "s3:ListBucketMultipartUploads", "s3:PutObject"],
             "Resource": [self._bucket_arn, pulumi.Output.concat(self._bucket_arn, "/*")]},
            {"Sid": "UseStackKeyThroughKinesisAndS3", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": self._key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": [f"kinesis.{region}.amazonaws.com",
                                                               f"s3.{region}.amazonaws.com"]}}},
            {"Sid": "WriteDeliveryErrors", "Effect": "Allow", "Action": ["logs:PutLogEvents"],
             "Resource": log_group.arn.apply(lambda arn: f"{arn}:*")},
        ], conditions={"StringEquals": {"sts:ExternalId": self._account}})
        self.delivery_stream = aws.kinesis.FirehoseDeliveryStream(
            f"{self._name}-delivery",
            name=stack.physical_name("raw-delivery"),
            destination="extended_s3",
            kinesis_source_configuration=aws.kinesis.FirehoseDeliveryStreamKinesisSourceConfigurationArgs(
                kinesis_stream_arn=self.stream.arn, role_arn=role.arn),
            extended_s3_configuration=aws.kinesis.FirehoseDeliveryStreamExtendedS3ConfigurationArgs(
                bucket_arn=self.bucket.arn,
                role_arn=role.arn,
                kms_key_arn=self._key_arn,
                compression_format="GZIP",
                prefix=EVENTS_PREFIX,
                error_output_prefix=ERRORS_PREFIX,
                file_extension=".jsonl.gz",
                buffering_interval=ingestion.firehose_buffer_seconds,
                buffering_size=ingestion.firehose_buffer_mib,
                cloudwatch_logging_options=aws.kinesis
                .FirehoseDeliveryStreamExtendedS3ConfigurationCloudwatchLoggingOptionsArgs(
                    enabled=True, log_group_name=log_group.name, log_stream_name=log_stream.name),
                # One JSON object per line in the delivered objects.
                processing_configuration=aws.kinesis
                .FirehoseDeliveryStreamExtendedS3ConfigurationProcessingConfigurationArgs(
                    enabled=True,
                    processors=[aws.kinesis
                                .FirehoseDeliveryStreamExtendedS3ConfigurationProcessingConfigurationProcessorArgs(
                                    type="AppendDelimiterToRecord")],
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _api(self, origins: tuple[str, ...]) -> None:
        stack = self._stack
        self.api = regional_rest_api(self, f"{self._name}-api", stack.physical_name("collect"),
                                     "Collects reader events into the clickstream (no Lambda on this path)")
        definition = ApiDefinition(self, self.api)
        events = definition.add(aws.apigateway.Resource, f"{self._name}-events", parent_id=self.api.root_resource_id,
                                path_part="events")
        route = self._route_basics(definition)
        post, integration = self._put_records_route(definition, events, route, self._name)
        self._put_records_responses(definition, events, post, integration, origins, self._name)
        if origins:
            cors_preflight(definition, self._name, events, origins, "POST,OPTIONS")
        if self._reader_auth is not None:
            # Signed-in readers: the token in the query string (beacons cannot send headers), the reader id from it.
            name = f"{self._name}-reader"
            reader = definition.add(aws.apigateway.Resource, f"{name}-events", parent_id=events.id,
                                    path_part=ReaderRoute.SIGNED_IN_EVENTS)
            authorizer = self._reader_auth.attach(definition, self._name, QUERY_IDENTITY)
            post, integration = self._put_records_route(definition, reader, route, name, authorizer)
            self._put_records_responses(definition, reader, post, integration, origins, name)
            if origins:
                cors_preflight(definition, name, reader, origins, "POST,OPTIONS")
        gateway_responses(definition, self._name, origins)
        deployment = definition.deployment(f"{self._name}-deployment", "Collection API")
        self._stage_and_key(deployment)

    def _route_basics(self, definition: ApiDefinition) -> _RouteBasics:
        """What every PutRecords route shares: the events model, the validator, the role and the template."""
        ingestion, add = self._ingestion, definition.add
        model = add(aws.apigateway.Model, f"{self._name}-model", name=MODEL_NAME, content_type="application/json",
                    schema=json.dumps(templates.events_schema(ingestion.event_types)))
        validator = add(aws.apigateway.RequestValidator, f"{self._name}-validator", name="body-and-parameters",
                        validate_request_body=True, validate_request_parameters=True)
        role, role_policy = self._role("collect-api", "apigateway.amazonaws.com", [
            {"Sid": "PutClicks", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": self.stream.arn},
            {"Sid": "EncryptClicks", "Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": self._key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": f"kinesis.{self._stack.region}.amazonaws.com"}}},
        ], conditions=source_account(self._account))
        request_template = templates.put_records_request(self.stream_name, ingestion.collect_client_details,
                                                         verify_readers=self._reader_auth is not None)
        return _RouteBasics(model, validator, role, role_policy, request_template)

    def _put_records_route(self, definition: ApiDefinition, events: aws.apigateway.Resource, route: _RouteBasics,
                           name: str, authorizer: aws.apigateway.Authorizer | None = None) -> tuple[
            aws.apigateway.Method, aws.apigateway.Integration]:
        """POST on ``events``, validated against the event schema and mapped to Kinesis PutRecords by a template."""
        ingestion, add = self._ingestion, definition.add
        model, validator, role, role_policy = route.model, route.validator, route.role, route.role_policy
        request_template = route.request_template
        authorization: dict[str, Any] = {"authorization": "NONE"} if authorizer is None else {
            "authorization": "CUSTOM", "authorizer_id": authorizer.id,
            "request_parameters": {f"method.request.querystring.{ReaderRoute.QUERY_PARAMETER}": True}}
        post = add(aws.apigateway.Method, f"{name}-post", resource_id=events.id, http_method="POST",
                   api_key_required=ingestion.api_key_required, request_validator_id=validator.id,
                   request_models={"application/json": model.name, "text/plain": model.name}, **authorization)
        integration = add(
            aws.apigateway.Integration, f"{name}-put-records", depends_on=[role_policy],
            resource_id=events.id, http_method=post.http_method, type="AWS", integration_http_method="POST",
            uri=pulumi.Output.concat("arn:", self._partition, ":apigateway:", self._stack.region,
                                     ":kinesis:action/PutRecords"),
            credentials=role.arn, passthrough_behavior="NEVER",
            request_parameters={"integration.request.header.Content-Type": "'application/x-amz-json-1.1'"},
            # navigator.sendBeacon posts text/plain: the same template and validation apply.
            request_templates={"application/json": request_template, "text/plain": request_template})
        return post, integration

    def _put_records_responses(self, definition: ApiDefinition, events: aws.apigateway.Resource,
                               post: aws.apigateway.Method, integration: aws.apigateway.Integration,
                               origins: tuple[str, ...], name: str) -> None:
        header_names = ["Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Retry-After", "Vary"]
        for status, pattern, template in (
            ("200", None, templates.put_records_response(origins)),
            ("500", "4\\d{2}", templates.kinesis_error_response(origins)),
            ("503", "5\\d{2}", templates.kinesis_error_response(origins)),
        ):
            method_response = definition.add(
                aws.apigateway.MethodResponse, f"{name}-post-{status}", resource_id=events.id,
                http_method=post.http_method, status_code=status, response_models={"application/json": "Empty"},
                response_parameters={f"method.response.header.{h}": False for h in header_names})
            definition.add(
                aws.apigateway.IntegrationResponse, f"{name}-put-records-{status}",
                depends_on=[integration, method_response], resource_id=events.id, http_method=post.http_method,
                status_code=status, selection_pattern=pattern, response_templates={"application/json": template},
                response_parameters={"method.response.header.Vary": "'Origin'"})

    def _stage_and_key(self, deployment: aws.apigateway.Deployment) -> None:
        stack, ingestion = self._stack, self._ingestion
        throttle = Throttle(ingestion.throttle_rate_limit, ingestion.throttle_burst_limit, ingestion.quota_per_day)
        self.account = self._api_gateway_account() if ingestion.manage_api_gateway_account else None
        self.stage = observable_stage(self, f"{self._name}-api", stack=stack, key_arn=self._key_arn, api=self.api,
                                      deployment=deployment, throttle=throttle, access_log_name="collect-access",
                                      depends_on=[self.account] if self.account else [])
        self.api_key = api_key_with_usage_plan(
            self, self._name, physical_name=stack.physical_name("collect"),
            description="Key of the sites that send reader events", api=self.api, stage=self.stage,
            throttle=throttle,
        ) if ingestion.api_key_required else None
        self.collect_url = pulumi.Output.concat(self.stage.invoke_url, "/events")

    @property
    def stream_name(self) -> str:
        return self._stack.physical_name("clicks")

    @property
    def bucket_arn(self) -> pulumi.Output[str]:
        return self._bucket_arn

    def _api_gateway_account(self) -> aws.apigateway.Account:
        logs_arn = self._arns.arn("logs", "log-group:API-Gateway-Execution-Logs_*")
        role, policy = self._role("apigw-cloudwatch", "apigateway.amazonaws.com", [
            {"Sid": "WriteExecutionLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
             "Resource": [logs_arn, pulumi.Output.concat(logs_arn, ":*")]},
        ], conditions=source_account(self._account))
        return aws.apigateway.Account(f"{self._name}-apigw-account", cloudwatch_role_arn=role.arn,
                                      opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
