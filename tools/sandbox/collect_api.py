"""The collection API in LocalStack, created from exactly what the Pulumi program declares.

The program is synthesized under mocks with a sandbox config (CORS for the local site, no API key: beacons cannot
send headers); the recorded API Gateway resources of the REST API that integrates with Kinesis ``PutRecords`` are then
created in LocalStack with boto3, input for input. Resources are found by type and by the REST API they belong to,
never by logical name. Cross-references are recorded as the mock's ids (``<logical-name>-id``, the root resource as
the API's ``rootResourceId`` output) and mapped to the ids LocalStack hands out.

Not reproduced, because LocalStack does not implement them (or they do not change what a request gets): gateway
responses (LocalStack 2026.3 applies neither their headers nor their templates: a 400 from the validator is its own
``{"message": "Invalid request body"}`` without ``Access-Control-Allow-Origin``, so a page cannot read it), stage
method settings (throttling, logging), access logs, X-Ray, WAF, the stream's KMS encryption.

Other differences from API Gateway seen here: request templates are chosen by the exact ``Content-Type`` (so
``text/plain;charset=UTF-8`` answers 415 ``Unsupported Media Type``); the body is validated against the
``application/json`` model whatever the content type; the integration's role must be in LocalStack's account (the
mocks' account in ARNs is replaced); the API is invoked path-style, ``<endpoint>/_aws/execute-api/<id>/<stage>/...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.synth import ACCOUNT_ID, RegisteredResource, Synthesis, synthesize

PROJECT = "clickstream-personalization"
STACK = "sandbox"
REGION = "eu-west-1"
PUT_RECORDS_URI = re.compile(r":kinesis:action/PutRecords$")
STREAM_NAME = re.compile(r'"StreamName"\s*:\s*"([^"]+)"')
LOCALSTACK_ACCOUNT = "000000000000"

RestApiT = "aws:apigateway/restApi:RestApi"
ResourceT = "aws:apigateway/resource:Resource"
ModelT = "aws:apigateway/model:Model"
ValidatorT = "aws:apigateway/requestValidator:RequestValidator"
MethodT = "aws:apigateway/method:Method"
IntegrationT = "aws:apigateway/integration:Integration"
MethodResponseT = "aws:apigateway/methodResponse:MethodResponse"
IntegrationResponseT = "aws:apigateway/integrationResponse:IntegrationResponse"
GatewayResponseT = "aws:apigateway/response:Response"
DeploymentT = "aws:apigateway/deployment:Deployment"
StageT = "aws:apigateway/stage:Stage"
StreamT = "aws:kinesis/stream:Stream"
AuthorizerT = "aws:apigateway/authorizer:Authorizer"


class CollectApiError(RuntimeError):
    """The synthesized program does not have the shape this sandbox reproduces."""


def sandbox_config(site_origins: Sequence[str], region: str = REGION) -> dict[str, str]:
    return {
        "aws:region": region,
        f"{PROJECT}:environment": STACK,
        f"{PROJECT}:corsAllowedOrigins": json.dumps(list(site_origins)),
        f"{PROJECT}:collectionApiKeyRequired": "false",
    }


def synthesize_sandbox(site_origins: Sequence[str], region: str = REGION) -> Synthesis:
    return synthesize(sandbox_config(site_origins, region), stack=STACK, preview=False)


def mock_id(resource: RegisteredResource) -> str:
    """The id the offline mocks give every resource (tools/synth.py); references between resources use it."""
    return f"{resource.name}-id"


@dataclass
class CollectionApiSpec:
    """The recorded resources of the collection API, in creation order."""

    rest_api: RegisteredResource
    resources: list[RegisteredResource]
    models: list[RegisteredResource]
    validators: list[RegisteredResource]
    methods: list[RegisteredResource]
    integrations: list[RegisteredResource]
    method_responses: list[RegisteredResource]
    integration_responses: list[RegisteredResource]
    gateway_responses: list[RegisteredResource]
    deployment: RegisteredResource
    stage: RegisteredResource
    stream: RegisteredResource
    # Where readers are verified: the reader authorizer. LocalStack (community) records it but does not enforce it.
    authorizers: list[RegisteredResource] = field(default_factory=list)

    def _put_records(self, signed_in: bool) -> list[RegisteredResource]:
        custom = {(m.inputs["resourceId"], m.inputs["httpMethod"]) for m in self.methods
                  if m.inputs.get("authorization") == "CUSTOM"}
        return [i for i in self.integrations if PUT_RECORDS_URI.search(str(i.inputs.get("uri", "")))
                and ((i.inputs["resourceId"], i.inputs["httpMethod"]) in custom) == signed_in]

    @property
    def put_records(self) -> RegisteredResource:
        """The integration of POST /events (the route without an authorizer)."""
        return self._put_records(signed_in=False)[0]

    @property
    def signed_in_put_records(self) -> RegisteredResource | None:
        """The integration of POST /events/reader, where readers are verified."""
        return next(iter(self._put_records(signed_in=True)), None)

    @property
    def stream_name(self) -> str:
        return str(self.stream.inputs["name"])


def _of_api(synthesis: Synthesis, type_: str, api_id: str) -> list[RegisteredResource]:
    # Gateway responses name the API as ``restApiId``, everything else as ``restApi``.
    return [r for r in synthesis.of_type(type_) if api_id in (r.inputs.get("restApi"), r.inputs.get("restApiId"))]


def _one(items: Sequence[RegisteredResource], what: str) -> RegisteredResource:
    if len(items) != 1:
        raise CollectApiError(f"expected one {what} for the collection API, found {len(items)}")
    return items[0]


def collection_spec(synthesis: Synthesis) -> CollectionApiSpec:
    """Find the REST API whose integration calls Kinesis PutRecords, and everything that belongs to it."""
    kinesis = [i for i in synthesis.of_type(IntegrationT)
               if i.inputs.get("type") == "AWS" and PUT_RECORDS_URI.search(str(i.inputs.get("uri", "")))]
    # Where readers are verified, a second route (POST /events/reader) integrates with PutRecords too, on the same API.
    apis = {i.inputs["restApi"] for i in kinesis}
    integration = _one(kinesis if len(apis) != 1 else kinesis[:1], "Kinesis PutRecords integration")
    api_id = integration.inputs["restApi"]
    rest_api = _one([r for r in synthesis.of_type(RestApiT) if mock_id(r) == api_id], "RestApi")
    template = (integration.inputs.get("requestTemplates") or {}).get("application/json", "")
    match = STREAM_NAME.search(template)
    if match is None:
        raise CollectApiError("the PutRecords request template names no StreamName")
    stream = _one([s for s in synthesis.of_type(StreamT) if s.inputs.get("name") == match.group(1)],
                  f"Kinesis stream named {match.group(1)!r}")
    return CollectionApiSpec(
        rest_api=rest_api,
        resources=_of_api(synthesis, ResourceT, api_id),
        models=_of_api(synthesis, ModelT, api_id),
        validators=_of_api(synthesis, ValidatorT, api_id),
        methods=_of_api(synthesis, MethodT, api_id),
        integrations=_of_api(synthesis, IntegrationT, api_id),
        method_responses=_of_api(synthesis, MethodResponseT, api_id),
        integration_responses=_of_api(synthesis, IntegrationResponseT, api_id),
        gateway_responses=_of_api(synthesis, GatewayResponseT, api_id),
        deployment=_one(_of_api(synthesis, DeploymentT, api_id), "Deployment"),
        stage=_one(_of_api(synthesis, StageT, api_id), "Stage"),
        stream=stream,
        authorizers=_of_api(synthesis, AuthorizerT, api_id),
    )


def _present(**values: Any) -> dict[str, Any]:
    """boto3 refuses None for optional members: pass only what the program set."""
    return {k: v for k, v in values.items() if v is not None and v != {}}


@dataclass
class CreatedApi:
    api_id: str
    stage_name: str
    paths: dict[str, str]  # mock resource id -> full path ("/events")
    ids: dict[str, str] = field(default_factory=dict)  # mock id -> LocalStack id
    skipped: list[str] = field(default_factory=list)

    def url(self, endpoint: str, path: str) -> str:
        """LocalStack's path-style invoke URL (no DNS for <id>.execute-api here)."""
        return f"{endpoint}/_aws/execute-api/{self.api_id}/{self.stage_name}{path}"


def _resources_in_order(resources: Iterable[RegisteredResource], known: set[str]) -> list[RegisteredResource]:
    pending, ordered = list(resources), []
    while pending:
        ready = [r for r in pending if r.inputs["parentId"] in known]
        if not ready:
            raise CollectApiError(f"resources with unknown parents: {[r.name for r in pending]}")
        for resource in ready:
            ordered.append(resource)
            known.add(mock_id(resource))
            pending.remove(resource)
    return ordered


def local_arn(arn: str | None, account: str = LOCALSTACK_ACCOUNT) -> str | None:
    """The mocks' account in an ARN replaced by LocalStack's (it refuses to pass another account's role)."""
    return None if arn is None else arn.replace(f":{ACCOUNT_ID}:", f":{account}:")


def create_collection_api(apigateway: Any, spec: CollectionApiSpec,
                          account: str = LOCALSTACK_ACCOUNT) -> CreatedApi:
    """Create every recorded resource of the collection API in LocalStack; returns its ids and paths."""
    api_inputs = spec.rest_api.inputs
    api = apigateway.create_rest_api(**_present(
        name=api_inputs["name"], description=api_inputs.get("description"),
        endpointConfiguration=_endpoint_configuration(api_inputs.get("endpointConfiguration")),
        apiKeySource=api_inputs.get("apiKeySource"),
        binaryMediaTypes=api_inputs.get("binaryMediaTypes") or None,
        minimumCompressionSize=_int(api_inputs.get("minimumCompressionSize"))))
    api_id = api["id"]
    root_id = next(r["id"] for r in apigateway.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    ids = {mock_id(spec.rest_api): api_id, str(spec.rest_api.outputs["rootResourceId"]): root_id}
    paths = {root_id: ""}
    for resource in _resources_in_order(spec.resources, set(ids)):
        parent = ids[resource.inputs["parentId"]]
        created = apigateway.create_resource(restApiId=api_id, parentId=parent, pathPart=resource.inputs["pathPart"])
        ids[mock_id(resource)] = created["id"]
        paths[created["id"]] = f"{paths[parent]}/{resource.inputs['pathPart']}"
    for model in spec.models:
        apigateway.create_model(**_present(restApiId=api_id, name=model.inputs["name"],
                                           contentType=model.inputs["contentType"],
                                           schema=model.inputs.get("schema"),
                                           description=model.inputs.get("description")))
    for validator in spec.validators:
        created = apigateway.create_request_validator(**_present(
            restApiId=api_id, name=validator.inputs.get("name"),
            validateRequestBody=validator.inputs.get("validateRequestBody"),
            validateRequestParameters=validator.inputs.get("validateRequestParameters")))
        ids[mock_id(validator)] = created["id"]
    for authorizer in spec.authorizers:
        i = authorizer.inputs
        created = apigateway.create_authorizer(**_present(
            restApiId=api_id, name=i["name"], type=i["type"], authorizerUri=local_arn(i.get("authorizerUri"), account),
            identitySource=i.get("identitySource"),
            authorizerResultTtlInSeconds=_int(i.get("authorizerResultTtlInSeconds"))))
        ids[mock_id(authorizer)] = created["id"]
    for method in spec.methods:
        i = method.inputs
        apigateway.put_method(**_present(
            restApiId=api_id, resourceId=ids[i["resourceId"]], httpMethod=i["httpMethod"],
            authorizationType=i["authorization"], apiKeyRequired=i.get("apiKeyRequired"),
            authorizerId=ids[i["authorizerId"]] if i.get("authorizerId") else None,
            requestValidatorId=ids[i["requestValidatorId"]] if i.get("requestValidatorId") else None,
            requestModels=i.get("requestModels"), requestParameters=i.get("requestParameters"),
            operationName=i.get("operationName")))
    for integration in spec.integrations:
        i = integration.inputs
        apigateway.put_integration(**_present(
            restApiId=api_id, resourceId=ids[i["resourceId"]], httpMethod=i["httpMethod"], type=i["type"],
            integrationHttpMethod=i.get("integrationHttpMethod"), uri=i.get("uri"),
            credentials=local_arn(i.get("credentials"), account), requestParameters=i.get("requestParameters"),
            requestTemplates=i.get("requestTemplates"), passthroughBehavior=i.get("passthroughBehavior"),
            contentHandling=i.get("contentHandling"), timeoutInMillis=_int(i.get("timeoutMilliseconds"))))
    for response in spec.method_responses:
        i = response.inputs
        apigateway.put_method_response(**_present(
            restApiId=api_id, resourceId=ids[i["resourceId"]], httpMethod=i["httpMethod"],
            statusCode=i["statusCode"], responseParameters=i.get("responseParameters"),
            responseModels=i.get("responseModels")))
    for response in spec.integration_responses:
        i = response.inputs
        apigateway.put_integration_response(**_present(
            restApiId=api_id, resourceId=ids[i["resourceId"]], httpMethod=i["httpMethod"],
            statusCode=i["statusCode"], selectionPattern=i.get("selectionPattern"),
            responseParameters=i.get("responseParameters"), responseTemplates=i.get("responseTemplates"),
            contentHandling=i.get("contentHandling")))
    deployment = apigateway.create_deployment(**_present(restApiId=api_id,
                                                         description=spec.deployment.inputs.get("description")))
    ids[mock_id(spec.deployment)] = deployment["id"]
    stage_name = spec.stage.inputs["stageName"]
    apigateway.create_stage(**_present(restApiId=api_id, stageName=stage_name, deploymentId=deployment["id"],
                                       description=spec.stage.inputs.get("description"),
                                       variables=spec.stage.inputs.get("variables")))
    return CreatedApi(api_id=api_id, stage_name=stage_name,
                      paths={mock: paths[real] for mock, real in ids.items() if real in paths},
                      ids=ids, skipped=[r.name for r in spec.gateway_responses])


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _endpoint_configuration(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    types = value.get("types") or []
    return {"types": [types] if isinstance(types, str) else list(types)}  # pulumi-aws v7 records one string


def create_stream(kinesis: Any, stream: RegisteredResource) -> str:
    """The stream as recorded (name, capacity mode, shards, retention); returns its ARN once ACTIVE."""
    i = stream.inputs
    mode = (i.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
    arguments: dict[str, Any] = {"StreamName": i["name"], "StreamModeDetails": {"StreamMode": mode}}
    if mode == "PROVISIONED":
        arguments["ShardCount"] = int(i.get("shardCount") or 1)
    kinesis.create_stream(**arguments)
    kinesis.get_waiter("stream_exists").wait(StreamName=i["name"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    retention = _int(i.get("retentionPeriod"))
    if retention and retention > 24:
        kinesis.increase_stream_retention_period(StreamName=i["name"], RetentionPeriodHours=retention)
    arn: str = kinesis.describe_stream_summary(StreamName=i["name"])["StreamDescriptionSummary"]["StreamARN"]
    return arn


@dataclass
class CollectionApi:
    spec: CollectionApiSpec
    created: CreatedApi
    stream_arn: str
    endpoint: str

    @property
    def collect_url(self) -> str:
        return self.created.url(self.endpoint, self.created.paths[mock_id(self.events_resource)])

    @property
    def events_resource(self) -> RegisteredResource:
        resource_id = self.spec.put_records.inputs["resourceId"]
        return next(r for r in self.spec.resources if mock_id(r) == resource_id)


def deploy(synthesis: Synthesis, apigateway: Any, kinesis: Any, endpoint: str) -> CollectionApi:
    """Stream first (the API writes to it), then the API."""
    spec = collection_spec(synthesis)
    stream_arn = create_stream(kinesis, spec.stream)
    return CollectionApi(spec=spec, created=create_collection_api(apigateway, spec), stream_arn=stream_arn,
                         endpoint=endpoint)
