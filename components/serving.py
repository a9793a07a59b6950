"""Serving: the REST API that answers recommendations and takes new items, each route backed by a Lambda."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from common.contract import MAX_RANK_CANDIDATES, SURFACES, Env, Key, Parameter, ReaderRoute, Surface
from components.apistage import (
    ApiDefinition,
    Throttle,
    api_key_with_usage_plan,
    cors_preflight,
    gateway_responses,
    observable_stage,
    regional_rest_api,
)
from components.function import FunctionArgs, LambdaFunction
from components.iam import policy_document
from components.readers import HEADER_IDENTITY, ReaderAuth
from components.settings import PublishedSettings, ServingSettings, SiteSettings, StackBasics
from components.shared import StackArns
from components.templates import items_schema


@dataclass(frozen=True)
class ServingArgs:
    stack: StackBasics
    serving: ServingSettings
    sites: SiteSettings
    published: PublishedSettings
    key_arn: pulumi.Input[str]
    data_bucket_name: pulumi.Input[str]
    data_bucket_arn: pulumi.Input[str]
    # Resources the stage must wait for (the region's API Gateway CloudWatch role, when this stack manages it).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)
    # Where readers sign in: a signed-in reader's recommendations need that reader's token.
    reader_auth: ReaderAuth | None = None


def rank_schema() -> dict[str, Any]:
    """POST /rank's body as the gateway checks it (the function checks it again, with messages)."""
    reader_id = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!#-\\[\\]-~]+$"}
    return {"$schema": "http://json-schema.org/draft-04/schema#", "title": "RankRequest", "type": "object",
            "additionalProperties": False, "required": ["itemIds"],
            "properties": {"userId": reader_id, "sessionId": reader_id,
                           "itemIds": {"type": "array", "minItems": 1, "maxItems": MAX_RANK_CANDIDATES,
                                       "items": reader_id},
                           "filter": {"type": "string", "minLength": 1, "maxLength": 31},
                           "context": {"type": "object", "additionalProperties": {"type": "string"}}}}


class ServingApi(pulumi.ComponentResource):
    recommendations: LambdaFunction
    items: LambdaFunction
    api: aws.apigateway.RestApi
    stage: aws.apigateway.Stage
    api_key: aws.apigateway.ApiKey
    cms_role: aws.iam.Role
    url: pulumi.Output[str]

    def __init__(self, name: str, args: ServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:serving:ServingApi", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        arns = StackArns.of(self, stack)
        prefix, region = stack.name_prefix, stack.region

        def parameter_arn(key: str) -> pulumi.Output[str]:
            return arns.parameter(stack.parameter_name(key))

        bucket_objects = pulumi.Output.concat(args.data_bucket_arn, "/")
        s3_key_use = {"Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}}
        # for-you is always routed (the tracker's widget calls it); the others only when the stack trains them.
        served = [s for s in SURFACES if s == Surface.FOR_YOU or s in args.published.surfaces]
        common_env = {Env.DATA_BUCKET: args.data_bucket_name,
                      Env.PARAMETER_CACHE_SECONDS: str(args.published.parameter_cache_seconds)}

        self.recommendations = LambdaFunction(f"{name}-recommendations", FunctionArgs(
            stack=stack, key_arn=args.key_arn, handler_module="recommendations",
            description="Answers the recommendation surfaces from Personalize within a deadline, or a fallback list",
            timeout_seconds=5, memory_mb=512,
            environment={**common_env,
                         Env.CAMPAIGN_ARN_PARAMETER: stack.parameter_name(Parameter.CAMPAIGN_ARN),
                         Env.CAMPAIGN_ARNS_PARAMETER: stack.parameter_name(Parameter.CAMPAIGN_ARNS),
                         Env.SERVED_SURFACES: json.dumps(list(served)),
                         Env.METADATA_SURFACES: json.dumps(sorted(set(args.published.metadata_surfaces) & set(served))),
                         Env.DEADLINE_MS: str(args.serving.deadline_ms),
                         Env.READERS_VERIFIED: json.dumps(args.reader_auth is not None),
                         Env.FRESH_POSTS_PERCENT: str(args.serving.fresh_posts_percent),
                         Env.FRESH_POSTS_HOURS: str(args.serving.fresh_posts_hours),
                         Env.FILTER_ARNS_PARAMETER: stack.parameter_name(Parameter.FILTER_ARNS),
                         Env.FILTER_NAMES: json.dumps(sorted(args.published.filters)),
                         Env.CORS_ALLOWED_ORIGINS: json.dumps(list(args.sites.cors_allowed_origins))},
            statements=[
                {"Sid": "RecommendFromThisStacksCampaigns", "Effect": "Allow",
                 "Action": ["personalize:GetRecommendations",
                            *(["personalize:GetPersonalizedRanking"] if Surface.RANKING in served else [])],
                 "Resource": arns.arn("personalize", f"campaign/{prefix}-*")},
                {"Sid": "ReadPublishedArns", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                 "Resource": [parameter_arn(Parameter.CAMPAIGN_ARN), parameter_arn(Parameter.CAMPAIGN_ARNS),
                              parameter_arn(Parameter.FILTER_ARNS)]},
                {"Sid": "ReadPopularItemsAndItemsStore", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": [pulumi.Output.concat(bucket_objects, Key.POPULAR_ITEMS),
                              pulumi.Output.concat(bucket_objects, f"{Key.ITEMS_BY_ID}*")]},
                {"Sid": "ListNewestItems", "Effect": "Allow", "Action": ["s3:ListBucket"],
                 "Resource": args.data_bucket_arn,
                 "Condition": {"StringLike": {"s3:prefix": f"{Key.ITEMS_BY_TIME}*"}}},
                {"Sid": "DecryptStoreObjects", "Effect": "Allow", "Action": ["kms:Decrypt"],
                 "Resource": args.key_arn, **s3_key_use},
            ],
        ), opts=child)

        self.items = LambdaFunction(f"{name}-items", FunctionArgs(
            stack=stack, key_arn=args.key_arn, handler_module="items",
            description="Takes POST /items into the items store and the Personalize items dataset",
            timeout_seconds=20, memory_mb=256,
            environment={**common_env, Env.ITEMS_DATASET_PARAMETER: stack.parameter_name(Parameter.ITEMS_DATASET_ARN)},
            statements=[
                {"Sid": "WriteItemsStore", "Effect": "Allow", "Action": ["s3:PutObject"],
                 "Resource": pulumi.Output.concat(bucket_objects, f"{Key.ITEMS}*")},
                {"Sid": "EncryptStoreObjects", "Effect": "Allow", "Action": ["kms:GenerateDataKey"],
                 "Resource": args.key_arn, **s3_key_use},
                {"Sid": "ReadItemsDatasetArn", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                 "Resource": parameter_arn(Parameter.ITEMS_DATASET_ARN)},
                {"Sid": "PutItemsToThisStacksDataset", "Effect": "Allow", "Action": ["personalize:PutItems"],
                 "Resource": arns.arn("personalize", f"dataset/{prefix}/ITEMS")},
            ],
        ), opts=child)

        self.api = regional_rest_api(self, f"{name}-api", stack.physical_name("serve"),
                                     "Recommendations and new items")
        definition = ApiDefinition(self, self.api)
        add = definition.add
        recommendations = add(aws.apigateway.Resource, f"{name}-recommendations",
                              parent_id=self.api.root_resource_id, path_part="recommendations")
        user = add(aws.apigateway.Resource, f"{name}-recommendations-user", parent_id=recommendations.id,
                   path_part="{userId}")
        reader_auth = args.reader_auth
        signed_in: dict[str, Any] = {} if reader_auth is None else {
            "authorization": "CUSTOM", "authorizer_id": reader_auth.attach(definition, name, HEADER_IDENTITY).id}
        self._proxy_route(definition, f"{name}-get-recommendations", user, "GET", self.recommendations,
                          "recommendations/*", request_parameters={"method.request.path.userId": True}, **signed_in)
        anonymous = None
        if reader_auth is not None:
            # Anonymous readers (no token) have their own route: GET /recommendations/anonymous/{userId}.
            segment = add(aws.apigateway.Resource, f"{name}-recommendations-anonymous", parent_id=recommendations.id,
                          path_part=ReaderRoute.ANONYMOUS_RECOMMENDATIONS)
            anonymous = add(aws.apigateway.Resource, f"{name}-recommendations-anonymous-user", parent_id=segment.id,
                            path_part="{userId}")
            self._proxy_route(definition, f"{name}-get-anonymous-recommendations", anonymous, "GET",
                              self.recommendations, f"recommendations/{ReaderRoute.ANONYMOUS_RECOMMENDATIONS}/*",
                              request_parameters={"method.request.path.userId": True})
        items = add(aws.apigateway.Resource, f"{name}-items", parent_id=self.api.root_resource_id, path_part="items")
        model = add(aws.apigateway.Model, f"{name}-items-model", name="NewItemsBatch", content_type="application/json",
                    schema=json.dumps(items_schema()))
        validator = add(aws.apigateway.RequestValidator, f"{name}-validator", name="body-and-parameters",
                        validate_request_body=True, validate_request_parameters=True)
        # The CMS writes with SigV4 (its role below), never with the key every page carries; no CORS: not a browser.
        self._proxy_route(definition, f"{name}-post-items", items, "POST", self.items, "items",
                          authorization="AWS_IAM", api_key_required=False,
                          request_validator_id=validator.id, request_models={"application/json": model.name})
        origins = args.sites.cors_allowed_origins
        # The other surfaces, only those the stack trains; the same function answers them (see its module).
        surface_routes: list[tuple[aws.apigateway.Resource, str, str]] = []
        if Surface.RELATED in served:
            item = add(aws.apigateway.Resource, f"{name}-items-item", parent_id=items.id, path_part="{itemId}")
            related = add(aws.apigateway.Resource, f"{name}-items-related", parent_id=item.id, path_part="related")
            self._proxy_route(definition, f"{name}-get-related", related, "GET", self.recommendations,
                              "items/*/related", request_parameters={"method.request.path.itemId": True})
            surface_routes.append((related, "related", "GET,OPTIONS"))
        if Surface.TRENDING in served:
            trending = add(aws.apigateway.Resource, f"{name}-trending", parent_id=self.api.root_resource_id,
                           path_part="trending")
            self._proxy_route(definition, f"{name}-get-trending", trending, "GET", self.recommendations, "trending")
            surface_routes.append((trending, "trending", "GET,OPTIONS"))
        if Surface.RANKING in served:
            rank = add(aws.apigateway.Resource, f"{name}-rank", parent_id=self.api.root_resource_id, path_part="rank")
            rank_model = add(aws.apigateway.Model, f"{name}-rank-model", name="RankRequest",
                             content_type="application/json", schema=json.dumps(rank_schema()))
            self._proxy_route(definition, f"{name}-post-rank", rank, "POST", self.recommendations, "rank",
                              request_validator_id=validator.id,
                              request_models={"application/json": rank_model.name})
            surface_routes.append((rank, "rank", "POST,OPTIONS"))
        if origins:
            for resource, route, methods in surface_routes:
                cors_preflight(definition, f"{name}-{route}", resource, origins, methods)
            cors_preflight(definition, f"{name}-recommendations", user, origins, "GET,OPTIONS",
                           **({"headers": "Authorization,Content-Type,X-Api-Key"} if reader_auth else {}))
            if anonymous is not None:
                cors_preflight(definition, f"{name}-anonymous-recommendations", anonymous, origins, "GET,OPTIONS")
        gateway_responses(definition, name, origins)

        deployment = definition.deployment(f"{name}-deployment", "Serving API")
        throttle = Throttle(args.serving.throttle_rate_limit, args.serving.throttle_burst_limit)
        self.stage = observable_stage(self, f"{name}-api", stack=stack, key_arn=args.key_arn, api=self.api,
                                      deployment=deployment, throttle=throttle, access_log_name="serve-access",
                                      depends_on=args.depends_on)
        self.api_key = api_key_with_usage_plan(self, name, physical_name=stack.physical_name("serve"),
                                               description="Key of the sites' pages that read recommendations",
                                               api=self.api, stage=self.stage, throttle=throttle)
        self.cms_role = self._cms_role(name, stack, arns, args.serving.cms_principal_arns)
        self.url = self.stage.invoke_url
        self.register_outputs({"url": self.url, "apiKeyId": self.api_key.id, "cmsRoleArn": self.cms_role.arn})

    def _cms_role(self, name: str, stack: StackBasics, arns: StackArns,
                  principals: Sequence[str]) -> aws.iam.Role:
        """The role the CMS assumes to sign POST /items: it may invoke that one route of this stage, nothing else."""
        trusted: pulumi.Input[Any] = list(principals) or pulumi.Output.concat(
            "arn:", arns.partition, ":iam::", arns.account, ":root")
        role = aws.iam.Role(
            f"{name}-cms-role", name=stack.physical_name("cms-items"),
            description="Assumed by the CMS to call POST /items of the serving API (SigV4)",
            assume_role_policy=policy_document([{"Effect": "Allow", "Principal": {"AWS": trusted},
                                                 "Action": "sts:AssumeRole"}]),
            opts=pulumi.ResourceOptions(parent=self))
        aws.iam.RolePolicy(f"{name}-cms-policy", role=role.id, policy=policy_document([{
            "Sid": "PostItemsToThisStage", "Effect": "Allow", "Action": "execute-api:Invoke",
            "Resource": pulumi.Output.concat(self.api.execution_arn, "/", self.stage.stage_name, "/POST/items")}]),
            opts=pulumi.ResourceOptions(parent=self))
        return role

    def _proxy_route(self, definition: ApiDefinition, name: str, resource: aws.apigateway.Resource,
                     http_method: str, function: LambdaFunction, path: str, **method_args: Any) -> None:
        """A Lambda proxy route; the function may be invoked by this API, for this method and path only."""
        method = definition.add(aws.apigateway.Method, f"{name}-method", resource_id=resource.id,
                                http_method=http_method, **{"authorization": "NONE", "api_key_required": True,
                                                            **method_args})
        definition.add(aws.apigateway.Integration, f"{name}-integration", resource_id=resource.id,
                       http_method=method.http_method, type="AWS_PROXY", integration_http_method="POST",
                       uri=function.function.invoke_arn)
        aws.lambda_.Permission(
            f"{name}-permission",
            action="lambda:InvokeFunction",
            function=function.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(self.api.execution_arn, f"/*/{http_method}/{path}"),
            opts=pulumi.ResourceOptions(parent=self),
        )
