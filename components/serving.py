"""Serving: the REST API that answers recommendations and takes new items, each route backed by a Lambda."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.apistage import (
    Throttle,
    api_key_with_usage_plan,
    cors_preflight,
    gateway_responses,
    observable_stage,
    regional_rest_api,
)
from components.function import FunctionArgs, LambdaFunction
from components.iam import account_and_partition
from components.settings import StackSettings
from components.templates import items_schema


@dataclass(frozen=True)
class ServingArgs:
    settings: StackSettings
    key_arn: pulumi.Input[str]
    data_bucket_name: pulumi.Input[str]
    data_bucket_arn: pulumi.Input[str]
    # Resources the stage must wait for (the region's API Gateway CloudWatch role, when this stack manages it).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


class ServingApi(pulumi.ComponentResource):
    recommendations: LambdaFunction
    items: LambdaFunction
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    api_key: aws.apigateway.ApiKey
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:serving:ServingApi", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        account, partition = account_and_partition(self)
        region, prefix = settings.region, settings.name_prefix

        def arn(service: str, resource: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":", service, ":", region, ":", account, ":", resource)

        def parameter_arn(key: str) -> pulumi.Output[str]:
            return arn("ssm", f"parameter{settings.parameter_name(key)}")

        bucket_objects = pulumi.Output.concat(args.data_bucket_arn, "/")
        s3_key_use = {"Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}}
        common_env = {"DATA_BUCKET": args.data_bucket_name,
                      "PARAMETER_CACHE_SECONDS": str(settings.realtime.parameter_cache_seconds)}

        self.recommendations = LambdaFunction(f"{name}-recommendations", FunctionArgs(
            settings=settings, key_arn=args.key_arn, handler_module="recommendations",
            description="Answers GET /recommendations/{userId} from Personalize, or a fallback list",
            timeout_seconds=5, memory_mb=512,
            environment={**common_env,
                         "CAMPAIGN_ARN_PARAMETER": settings.parameter_name("campaign-arn"),
                         "FILTER_ARNS_PARAMETER": settings.parameter_name("filter-arns"),
                         "FILTER_NAMES": json.dumps(sorted(settings.serving.filters)),
                         "CORS_ALLOWED_ORIGINS": json.dumps(list(settings.ingestion.cors_allowed_origins))},
            statements=[
                {"Sid": "RecommendFromThisStacksCampaigns", "Effect": "Allow",
                 "Action": ["personalize:GetRecommendations"], "Resource": arn("personalize", f"campaign/{prefix}-*")},
                {"Sid": "ReadPublishedArns", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                 "Resource": [parameter_arn("campaign-arn"), parameter_arn("filter-arns")]},
                {"Sid": "ReadPopularItems", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": pulumi.Output.concat(bucket_objects, "published/popular-items.json")},
                {"Sid": "ListNewestItems", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": args.data_bucket_arn,
                 "Condition": {"StringLike": {"s3:prefix": "items/by-time/*"}}},
                {"Sid": "DecryptStoreObjects", "Effect": "Allow", "Action": ["kms:Decrypt"],
                 "Resource": args.key_arn, **s3_key_use},
            ],
        ), opts=child)

        self.items = LambdaFunction(f"{name}-items", FunctionArgs(
            settings=settings, key_arn=args.key_arn, handler_module="items",
            description="Takes POST /items into the items store and the Personalize items dataset",
            timeout_seconds=20, memory_mb=256,
            environment={**common_env, "ITEMS_DATASET_PARAMETER": settings.parameter_name("items-dataset-arn")},
            statements=[
                {"Sid": "WriteItemsStore", "Effect": "Allow", "Action": ["s3:PutObject"],
                 "Resource": pulumi.Output.concat(bucket_objects, "items/*")},
                {"Sid": "EncryptStoreObjects", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
                 "Resource": args.key_arn, **s3_key_use},
                {"Sid": "ReadItemsDatasetArn", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                 "Resource": parameter_arn("items-dataset-arn")},
                {"Sid": "PutItemsToThisStacksDataset", "Effect": "Allow", "Action": ["personalize:PutItems"],
                 "Resource": arn("personalize", f"dataset/{prefix}/ITEMS")},
            ],
        ), opts=child)

        api = self.api = regional_rest_api(self, f"{name}-api", settings.physical_name("serve"),
                                           "Recommendations and new items")
        routes: list[pulumi.Resource] = []
        recommendations = aws.apigateway.Resource(f"{name}-recommendations", rest_api=api.id,
                                                  parent_id=api.root_resource_id, path_part="recommendations",
                                                  opts=child)
        user = aws.apigateway.Resource(f"{name}-recommendations-user", rest_api=api.id,
                                       parent_id=recommendations.id, path_part="{userId}", opts=child)
        routes += self._proxy_route(f"{name}-get-recommendations", api, user, "GET", self.recommendations,
                                    "recommendations/*", request_parameters={"method.request.path.userId": True})
        items = aws.apigateway.Resource(f"{name}-items", rest_api=api.id, parent_id=api.root_resource_id,
                                        path_part="items", opts=child)
        model = aws.apigateway.Model(f"{name}-items-model", rest_api=api.id, name="NewItemsBatch",
                                     content_type="application/json", schema=json.dumps(items_schema()), opts=child)
        validator = aws.apigateway.RequestValidator(f"{name}-validator", rest_api=api.id, name="body-and-parameters",
                                                    validate_request_body=True, validate_request_parameters=True,
                                                    opts=child)
        routes += self._proxy_route(f"{name}-post-items", api, items, "POST", self.items, "items",
                                    request_validator_id=validator.id, request_models={"application/json": model.name})
        origins = settings.ingestion.cors_allowed_origins
        if origins:
            routes += cors_preflight(self, f"{name}-recommendations", api, user, origins, "GET,OPTIONS")
        routes += gateway_responses(self, name, api, origins)

        fingerprint = json.dumps({"items": items_schema(), "origins": list(origins),
                                  "routes": ["GET /recommendations/{userId}", "POST /items"]}, sort_keys=True)
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment", rest_api=api.id, description="Serving API",
            triggers={"configuration": hashlib.sha256(fingerprint.encode()).hexdigest()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=routes),
        )
        throttle = Throttle(settings.serving.throttle_rate_limit, settings.serving.throttle_burst_limit)
        self.stage = observable_stage(self, f"{name}-api", settings=settings, key_arn=args.key_arn, api=api,
                                      deployment=deployment, throttle=throttle, access_log_name="serve-access",
                                      depends_on=args.depends_on)
        self.api_key = api_key_with_usage_plan(self, name, physical_name=settings.physical_name("serve"),
                                               description="Key of the sites and the CMS that call the serving API",
                                               api=api, stage=self.stage, throttle=throttle)
        self.url = self.stage.invoke_url
        self.register_outputs({"url": self.url, "apiKeyId": self.api_key.id})

    def _proxy_route(self, name: str, api: aws.apigateway.RestApi, resource: aws.apigateway.Resource,
                     http_method: str, function: LambdaFunction, path: str,
                     **method_args: Any) -> list[pulumi.Resource]:
        """A Lambda proxy route; the function may be invoked by this API, for this method and path only."""
        child = pulumi.ResourceOptions(parent=self)
        method = aws.apigateway.Method(f"{name}-method", rest_api=api.id, resource_id=resource.id,
                                       http_method=http_method, authorization="NONE", api_key_required=True,
                                       opts=child, **method_args)
        integration = aws.apigateway.Integration(
            f"{name}-integration", rest_api=api.id, resource_id=resource.id, http_method=method.http_method,
            type="AWS_PROXY", integration_http_method="POST", uri=function.function.invoke_arn, opts=child,
        )
        aws.lambda_.Permission(
            f"{name}-permission",
            action="lambda:InvokeFunction",
            function=function.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(api.execution_arn, f"/*/{http_method}/{path}"),
            opts=child,
        )
        return [method, integration]

