"""A local HTTP gateway for the serving API: API Gateway REST proxy events to the real handlers, in ``LambdaHost``s.

Interface::

    routes = serving_routes(synthesis)              # list[Route] from the synthesized serving API (see below)
    gateway = ServingGateway(routes, invokers={function_name: LambdaHost | anything with .invoke(event)},
                             api_keys={"key"}, allowed_origins=["http://127.0.0.1:8000"], stage="v1")
    gateway.handle(method, target, headers: list[(name, value)], body: bytes) -> GatewayReply(status, headers, body)
    server = gateway.serve(port=0)                  # LoopbackServer: .url (http://127.0.0.1:<port>), .stop()
    serving_url = server.url + "/" + gateway.stage  # what the stack's ``servingUrl`` output is in AWS
    serving = Serving.start(synthesis, workdir, endpoints={"AWS_ENDPOINT_URL_S3": ...}, region="eu-west-1",
                            api_keys={"key"}, allowed_origins=[...], port=0, packages="layer")
        # one LambdaHost per function the routes integrate (environment: the synthesized variables +
        # sandbox_environment(...) + CORS_ALLOWED_ORIGINS = allowed_origins), then the gateway;
        # serving.url (with the stage), serving.hosts (function name → LambdaHost), serving.stop()
    site = StaticSite({"/": blog_dir, "/tracker/": Path("web/dist")}).serve(port=0)   # .url, .stop()

Routes come from the synthesized resources, not from a hand list: ``aws:apigateway/resource:Resource`` (pathPart and
parent, resolved through the property dependencies to full paths), ``aws:apigateway/method:Method`` (httpMethod,
apiKeyRequired, the request validator and models), ``aws:apigateway/integration:Integration`` (``AWS_PROXY`` to a
function named in its URI, or ``MOCK``, whose ``aws:apigateway/integrationResponse:IntegrationResponse`` headers
answer CORS preflights) and ``aws:apigateway/model:Model`` (the JSON schema validated for bodies).

Like API Gateway: the stage is the first path segment; a method with ``apiKeyRequired`` answers 403
``{"message": "Forbidden"}`` without a known ``x-api-key``; a method with ``authorization`` ``CUSTOM`` runs its Lambda
REQUEST authorizer (401 ``Unauthorized`` when an identity source is missing or the authorizer raises
``Unauthorized``, 403 when its policy does not allow the methodArn, 500 for any other authorizer failure; answers
cached per identity-source values for the authorizer's TTL; the function sees ``requestContext.authorizer`` with
``principalId`` and the context); a method with ``authorization`` ``AWS_IAM`` answers 403
without a valid SigV4 signature (``Missing Authentication Token`` unsigned; an unknown access key, a signature that
botocore's ``SigV4Auth`` recomputes differently for the sandbox's known credentials, a wrong credential scope or a
date more than 5 minutes off are refused with API Gateway's messages), and the function sees the signer in
``requestContext.identity`` (accessKey, userArn, caller, accountId); ``sign_request`` signs for a client; a body
that fails the method's request model answers 400
before the function runs; the function gets the REST API v1 proxy event (resource, path, httpMethod, headers,
multiValueHeaders, queryStringParameters, multiValueQueryStringParameters, pathParameters (decoded), stageVariables,
requestContext with requestId, stage, path, identity (sourceIp, userAgent, apiKey, apiKeyId), body,
isBase64Encoded); a function error or a reply that is not a proxy response answers 502
``{"message": "Internal server error"}``; an unreachable or timed-out function 504. OPTIONS on a resource with a
MOCK preflight answers 200 with the integration response's headers and ``Access-Control-Allow-Origin`` for an
allowed origin; gateway errors carry that header too for allowed origins (the stack's gateway responses do).

Unlike API Gateway: an unknown path answers 404 ``{"message": "Not Found"}`` and an undeclared method on a known
path 405 (AWS answers both with 403 "Missing Authentication Token"); gateway-response templates are not rendered
(error bodies are ``{"message", "requestId"}``); usage-plan throttling, WAF and the 29 s integration timeout are not
emulated; every API key passed in is valid for every route.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import mimetypes
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import fastjsonschema
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import components  # noqa: F401 (puts handlers/ on the path: the contract below is the functions' own file)
from common.contract import Env
from tools.fake_personalize import LoopbackServer
from tools.sandbox.lambda_host import ACCOUNT_ID, FunctionSpec, InvokeResult, LambdaHost, sandbox_environment

RESOURCE = "aws:apigateway/resource:Resource"
METHOD = "aws:apigateway/method:Method"
INTEGRATION = "aws:apigateway/integration:Integration"
INTEGRATION_RESPONSE = "aws:apigateway/integrationResponse:IntegrationResponse"
MODEL = "aws:apigateway/model:Model"
REST_API = "aws:apigateway/restApi:RestApi"
STAGE = "aws:apigateway/stage:Stage"
FUNCTION = "aws:lambda/function:Function"
AUTHORIZER = "aws:apigateway/authorizer:Authorizer"
_FUNCTION_IN_URI = re.compile(r":function:([^/:]+)(?::[^/]+)?/invocations$")
_HEADER_PARAMETER = "method.response.header."
_SIGV4 = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/([0-9]{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
                    r"SignedHeaders=([a-z0-9;-]+),\s*Signature=([0-9a-f]{64})$")
SIGNATURE_MAX_SKEW_SECONDS = 300  # API Gateway refuses signatures more than 5 minutes off its clock


@dataclass(frozen=True)
class IamPrincipal:
    """Credentials the sandbox knows, and who signs with them (what API Gateway would find in IAM)."""

    access_key: str
    secret_key: str
    arn: str


# The CMS of the sandbox: it signs POST /items as the stack's CMS role would (the orchestrator registers posts so).
SANDBOX_CMS = IamPrincipal("AKIASANDBOXCMS000001", "sandbox-cms-secret-access-key",
                           f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/sandbox-cms-items/cms")


class SignatureError(Exception):
    """The request is not signed by a known principal; the message is API Gateway's."""


def sign_request(method: str, url: str, body: bytes, principal: IamPrincipal, region: str,
                 headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers of ``method url`` signed with SigV4 for execute-api (what a CMS's AWS SDK sends)."""
    # Host is signed and sent as is (an HTTP client would send the same value).
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Host": urllib.parse.urlsplit(url).netloc, **dict(headers or {})})
    SigV4Auth(Credentials(principal.access_key, principal.secret_key), "execute-api", region).add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}


def verify_signature(method: str, target: str, headers: Mapping[str, str], body: bytes,
                     principals: Mapping[str, IamPrincipal], region: str | None,
                     now: datetime.datetime | None = None) -> IamPrincipal:
    """The principal whose SigV4 signature ``headers`` (lowercase names) carry, recomputed with botocore; raises
    ``SignatureError`` otherwise. ``region`` None accepts the credential scope's region."""
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureError("Missing Authentication Token")
    match = _SIGV4.match(authorization.strip())
    if match is None:
        raise SignatureError("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters "
                             "(AWS4-HMAC-SHA256).")
    access_key, day, scope_region, service, signed, signature = match.groups()
    principal = principals.get(access_key)
    if principal is None:
        raise SignatureError("The security token included in the request is invalid.")
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise SignatureError("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
                             "header.") from None
    clock = now or datetime.datetime.now(datetime.UTC)
    if abs((clock - signed_at).total_seconds()) > SIGNATURE_MAX_SKEW_SECONDS:
        raise SignatureError(f"Signature expired: {amz_date} is not within 5 minutes of "
                             f"{clock.strftime('%Y%m%dT%H%M%SZ')}")
    if service != "execute-api" or day != amz_date[:8] or (region is not None and scope_region != region):
        raise SignatureError(f"Credential should be scoped to a valid region and to the service 'execute-api' on "
                             f"{amz_date[:8]}, not {scope_region}/{service} on {day}.")
    names = signed.split(";")
    if "host" not in names or any(name not in headers for name in names):
        raise SignatureError("The request signature we calculated does not match the signature you provided: "
                             "the signed headers must include host and be present.")
    content_hash = headers.get("x-amz-content-sha256")
    if content_hash is not None and content_hash != hashlib.sha256(body).hexdigest():
        raise SignatureError("The provided 'x-amz-content-sha256' header does not match what was computed.")
    request = AWSRequest(method=method, url=f"http://{headers['host']}{target}", data=body,
                         headers={name: headers[name] for name in names})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(principal.access_key, principal.secret_key), "execute-api", scope_region)
    expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("The request signature we calculated does not match the signature you provided. Check "
                             "your AWS Secret Access Key and signing method. Consult the service documentation for "
                             "details.")
    return principal


@dataclass(frozen=True)
class CustomAuthorizer:
    """A Lambda REQUEST authorizer of a method (``authorization: CUSTOM``), as recorded."""

    function: str
    identity_sources: tuple[str, ...]  # "method.request.header.Authorization", "method.request.querystring.token"
    ttl_seconds: int


@dataclass(frozen=True)
class Route:
    resource: str  # "/recommendations/{userId}"
    method: str  # "GET", "POST", "OPTIONS"
    api_key_required: bool
    integration: str  # "AWS_PROXY", "MOCK", ...
    authorization: str = "NONE"  # the method's authorization: "NONE", "AWS_IAM", ...
    function: str | None = None  # the function an AWS_PROXY integration invokes
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # content type → JSON schema
    response_headers: Mapping[str, str] = field(default_factory=dict)  # a MOCK's static headers
    authorizer: CustomAuthorizer | None = None  # the method's authorizer when ``authorization`` is CUSTOM

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when ``path`` (without the stage) is this route's resource, else None."""
        template = [p for p in self.resource.split("/") if p]
        parts = [p for p in path.split("/") if p]
        if template and template[-1].endswith("+}"):
            if len(parts) < len(template):
                return None
            parts = [*parts[:len(template) - 1], "/".join(parts[len(template) - 1:])]
        if len(parts) != len(template):
            return None
        parameters: dict[str, str] = {}
        for expected, actual in zip(template, parts, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                parameters[expected[1:-1].rstrip("+")] = urllib.parse.unquote(actual)
            elif expected != actual:
                return None
        return parameters


class Invoker(Protocol):
    def invoke(self, event: Mapping[str, Any]) -> InvokeResult: ...


def _full_paths(synthesis: Any, api_urn: str) -> dict[str, str]:
    """Resource URN → full path ("/" for the API itself)."""
    resources = {r.urn: r for r in synthesis.of_type(RESOURCE)}
    paths: dict[str, str] = {api_urn: "/"}

    def path_of(urn: str, seen: tuple[str, ...] = ()) -> str:
        if urn in paths:
            return paths[urn]
        if urn in seen or urn not in resources:
            raise LookupError(f"resource {urn} has no parent in the API")
        resource = resources[urn]
        parent = (resource.property_dependencies.get("parentId") or [api_urn])[0]
        paths[urn] = path_of(parent, (*seen, urn)).rstrip("/") + "/" + str(resource.inputs["pathPart"])
        return paths[urn]

    for urn, resource in resources.items():
        if api_urn in resource.property_dependencies.get("restApi", []):
            path_of(urn)
    return paths


def _serving_api(synthesis: Any) -> Any:
    """The REST API whose integrations invoke functions (the collection API integrates Kinesis directly)."""
    apis = {r.urn: r for r in synthesis.of_type(REST_API)}
    proxied = {urn for i in synthesis.of_type(INTEGRATION) if i.inputs.get("type") == "AWS_PROXY"
               for urn in i.property_dependencies.get("restApi", []) if urn in apis}
    if len(proxied) != 1:
        raise LookupError(f"expected one REST API with Lambda proxy integrations, found {len(proxied)}")
    return apis[proxied.pop()]


def serving_routes(synthesis: Any) -> list[Route]:
    """Every method of the serving API, with its resource path, key requirement, integration and models."""
    api = _serving_api(synthesis)
    paths = _full_paths(synthesis, api.urn)

    def in_api(resource: Any) -> bool:
        return api.urn in resource.property_dependencies.get("restApi", []) + \
            resource.property_dependencies.get("restApiId", [])

    def resource_of(resource: Any) -> str:
        urns = resource.property_dependencies.get("resourceId") or [api.urn]
        return paths[urns[0]]

    models = {str(m.inputs.get("name")): json.loads(m.inputs["schema"]) for m in synthesis.of_type(MODEL)
              if in_api(m) and "schema" in m.inputs}
    integrations = {(resource_of(i), i.inputs["httpMethod"]): i for i in synthesis.of_type(INTEGRATION) if in_api(i)}
    responses = {(resource_of(r), r.inputs["httpMethod"]): r for r in synthesis.of_type(INTEGRATION_RESPONSE)
                 if in_api(r) and str(r.inputs.get("statusCode")) == "200"}
    authorizers = {a.urn: a for a in synthesis.of_type(AUTHORIZER) if in_api(a)}
    routes = []
    for method in (m for m in synthesis.of_type(METHOD) if in_api(m)):
        key = (resource_of(method), str(method.inputs["httpMethod"]))
        integration = integrations.get(key)
        if integration is None:
            raise LookupError(f"{key[1]} {key[0]} has no integration")
        function = _FUNCTION_IN_URI.search(str(integration.inputs.get("uri", "")))
        validated = bool(method.inputs.get("requestValidatorId"))
        response = responses.get(key)
        headers = {name[len(_HEADER_PARAMETER):]: value.strip("'")
                   for name, value in ((response.inputs.get("responseParameters") or {}) if response else {}).items()
                   if name.startswith(_HEADER_PARAMETER)}
        routes.append(Route(
            resource=key[0], method=key[1], api_key_required=bool(method.inputs.get("apiKeyRequired")),
            authorization=str(method.inputs.get("authorization") or "NONE"),
            integration=str(integration.inputs.get("type")), function=function.group(1) if function else None,
            models={ct: models[name] for ct, name in (method.inputs.get("requestModels") or {}).items()
                    if validated and name in models},
            response_headers=headers,
            authorizer=_custom_authorizer(authorizers, method)))
    return sorted(routes, key=lambda r: (r.resource, r.method))


def _custom_authorizer(authorizers: Mapping[str, Any], method: Any) -> CustomAuthorizer | None:
    urns = method.property_dependencies.get("authorizerId") or []
    if str(method.inputs.get("authorization")) != "CUSTOM" or not urns:
        return None
    inputs = authorizers[urns[0]].inputs
    function = _FUNCTION_IN_URI.search(str(inputs.get("authorizerUri", "")))
    if inputs.get("type") != "REQUEST" or function is None:
        raise LookupError(f"the sandbox runs Lambda REQUEST authorizers only, not {inputs.get('type')}")
    return CustomAuthorizer(function=function.group(1),
                            identity_sources=tuple(s.strip() for s in str(inputs["identitySource"]).split(",")),
                            ttl_seconds=int(inputs.get("authorizerResultTtlInSeconds", 300)))


def _policy_allows(policy: Mapping[str, Any], method_arn: str) -> bool:
    """IAM evaluation of an authorizer's policy for one methodArn: an explicit Deny wins, else any Allow."""
    def matches(statement: Mapping[str, Any]) -> bool:
        resources = statement.get("Resource", [])
        for pattern in [resources] if isinstance(resources, str) else resources:
            regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in str(pattern))
            if re.fullmatch(regex, method_arn):
                return True
        return False
    statements = [s for s in policy.get("Statement", []) if "execute-api:Invoke" in (
        [s.get("Action")] if isinstance(s.get("Action"), str) else s.get("Action", [])) and matches(s)]
    return not any(s.get("Effect") == "Deny" for s in statements) and any(s.get("Effect") == "Allow"
                                                                           for s in statements)


def stage_name(synthesis: Any) -> str:
    api = _serving_api(synthesis)
    stages = [s for s in synthesis.of_type(STAGE) if api.urn in s.property_dependencies.get("restApi", [])]
    return str(stages[0].inputs["stageName"]) if stages else "v1"


@cache
def _validator(schema: str) -> Callable[[Any], Any]:
    # API Gateway models are JSON Schema draft 4, which fastjsonschema compiles.
    compiled: Callable[[Any], Any] = fastjsonschema.compile(json.loads(schema))
    return compiled


class GatewayReply(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class ServingGateway:
    def __init__(self, routes: Sequence[Route], invokers: Mapping[str, Invoker], *, api_keys: Collection[str],
                 allowed_origins: Collection[str], stage: str = "v1", api_id: str = "sandbox",
                 iam_principals: Collection[IamPrincipal] = (SANDBOX_CMS,), region: str | None = None) -> None:
        needed = {r.function for r in routes if r.function} | {r.authorizer.function for r in routes if r.authorizer}
        missing = sorted(needed - set(invokers))
        if missing:
            raise ValueError(f"no invoker for the functions {missing}")
        self.routes, self.invokers = list(routes), dict(invokers)
        self.api_keys, self.allowed_origins = set(api_keys), set(allowed_origins)
        self.stage, self.api_id = stage, api_id
        self.iam_principals = {p.access_key: p for p in iam_principals}
        self.region = region
        # API Gateway caches an authorizer's answer per identity-source values for its TTL.
        self._authorized: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._authorized_lock = threading.Lock()

    def handle(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> GatewayReply:
        request_id = str(uuid.uuid4())
        lowered = {k.lower(): v for k, v in headers}
        cors = self._cors(lowered.get("origin"))
        base = [("x-amzn-RequestId", request_id), ("x-amz-apigw-id", request_id[:16])]

        def error(status: int, message: str, **extra: Any) -> GatewayReply:
            payload = json.dumps({"message": message, "requestId": request_id, **extra}).encode()
            return GatewayReply(status, [*base, *cors, ("Content-Type", "application/json")], payload)

        url = urllib.parse.urlsplit(target)
        stage, _, path = url.path.lstrip("/").partition("/")
        path = "/" + path
        if stage != self.stage:
            return error(404, "Not Found")
        candidates = [(r, p) for r in self.routes if (p := r.match(path)) is not None]
        if not candidates:
            return error(404, "Not Found")
        chosen = next(((r, p) for r, p in candidates if r.method == method), None)
        if chosen is None:
            reply = error(405, "Method Not Allowed")
            allowed = ",".join(sorted({r.method for r, _ in candidates}))
            return GatewayReply(reply.status, [*reply.headers, ("Allow", allowed)], reply.body)
        route, parameters = chosen
        api_key = lowered.get("x-api-key")
        if route.api_key_required and api_key not in self.api_keys:
            return error(403, "Forbidden")
        signer: IamPrincipal | None = None
        if route.authorization == "AWS_IAM":
            try:
                signer = verify_signature(method, target, lowered, body, self.iam_principals, self.region)
            except SignatureError as refused:
                return error(403, str(refused))
        authorized: dict[str, Any] | None = None
        if route.authorization == "CUSTOM" and route.authorizer is not None:
            answer = self._authorize(route, route.authorizer, method, path, url.query, lowered, parameters)
            if isinstance(answer, tuple):
                return error(*answer)
            authorized = answer
        if route.integration == "MOCK":
            return GatewayReply(200, [*base, *route.response_headers.items(), *cors,
                                      ("Content-Type", "application/json")], b"{}")
        problem = self._invalid_body(route, lowered.get("content-type", ""), body)
        if problem is not None:
            return error(400, "Invalid request body", errors=problem)
        if route.function is None:
            return error(500, f"the sandbox cannot run {route.integration} integrations")
        event = self._event(route, method, path, url.query, headers, body, parameters, request_id, api_key)
        if authorized is not None:
            event["requestContext"]["authorizer"] = authorized
        if signer is not None:
            event["requestContext"]["identity"].update(accessKey=signer.access_key, userArn=signer.arn,
                                                       caller=signer.arn, accountId=ACCOUNT_ID)
        try:
            result = self.invokers[route.function].invoke(event)
        except TimeoutError:
            return error(504, "Endpoint request timed out")
        except OSError:
            return error(502, "Internal server error")
        return self._proxy_reply(result, base) or error(502, "Internal server error")

    def _authorize(self, route: Route, authorizer: CustomAuthorizer, method: str, path: str, query: str,
                   headers: Mapping[str, str], parameters: Mapping[str, str]) -> dict[str, Any] | tuple[int, str]:
        """The authorizer's context for the function, or (status, message) as API Gateway answers."""
        queries = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        values = []
        for source in authorizer.identity_sources:
            kind, _, name = source.removeprefix("method.request.").partition(".")
            value = headers.get(name.lower()) if kind == "header" else queries.get(name) if kind == "querystring" \
                else None
            if not value:
                return 401, "Unauthorized"  # a missing identity source: the authorizer is not even called
            values.append(value)
        method_arn = f"arn:aws:execute-api:{self.region or 'eu-west-1'}:{ACCOUNT_ID}:{self.api_id}/{self.stage}/" \
                     f"{method}{path}"
        key = (authorizer.function, tuple(values))
        with self._authorized_lock:
            cached = self._authorized.get(key)
        if cached is not None and cached[0] > time.monotonic():
            answer = cached[1]
        else:
            event = {"type": "REQUEST", "methodArn": method_arn, "resource": route.resource, "path": path,
                     "httpMethod": method, "headers": dict(headers), "queryStringParameters": queries or None,
                     "pathParameters": dict(parameters) or None,
                     "requestContext": {"stage": self.stage, "apiId": self.api_id, "httpMethod": method,
                                        "resourcePath": route.resource}}
            try:
                result = self.invokers[authorizer.function].invoke(event)
            except (TimeoutError, OSError):
                return 500, "AuthorizerConfigurationException"
            payload = result.payload if isinstance(result.payload, dict) else {}
            if result.function_error:
                return (401, "Unauthorized") if payload.get("errorMessage") == "Unauthorized" else (
                    500, "AuthorizerConfigurationException")
            if not isinstance(payload.get("principalId"), str) or not isinstance(payload.get("policyDocument"), dict):
                return 500, "AuthorizerConfigurationException"
            answer = payload
            with self._authorized_lock:
                self._authorized[key] = (time.monotonic() + authorizer.ttl_seconds, answer)
        if not _policy_allows(answer["policyDocument"], method_arn):
            return 403, "User is not authorized to access this resource"
        context = {k: str(v) for k, v in (answer.get("context") or {}).items()}
        return {"principalId": answer["principalId"], **context}

    def _cors(self, origin: str | None) -> list[tuple[str, str]]:
        return [("Access-Control-Allow-Origin", origin)] if origin and origin in self.allowed_origins else []

    @staticmethod
    def _invalid_body(route: Route, content_type: str, body: bytes) -> str | None:
        if not route.models:
            return None
        media = content_type.split(";")[0].strip().lower() or "application/json"
        schema = route.models.get(media) or route.models.get("application/json")
        if schema is None:
            return None
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return "the body is not JSON"
        try:
            _validator(json.dumps(schema, sort_keys=True))(document)
        except fastjsonschema.JsonSchemaValueException as failure:
            return str(failure.message)
        return None

    def _event(self, route: Route, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
               body: bytes, parameters: Mapping[str, str], request_id: str, api_key: str | None) -> dict[str, Any]:
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        try:
            text, encoded = (body.decode("utf-8"), False) if body else (None, False)
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        lowered = {k.lower(): v for k, v in headers}
        now = time.time()
        return {
            "resource": route.resource, "path": path, "httpMethod": method,
            "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": dict(parameters) or None, "stageVariables": None,
            "requestContext": {
                "resourceId": route.resource, "resourcePath": route.resource, "httpMethod": method,
                "extendedRequestId": request_id[:16], "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000",
                                                                                   time.gmtime(now)),
                "path": f"/{self.stage}{path}", "accountId": ACCOUNT_ID, "protocol": "HTTP/1.1",
                "stage": self.stage, "domainPrefix": "127", "requestTimeEpoch": int(now * 1000),
                "requestId": request_id, "domainName": lowered.get("host", "127.0.0.1"), "apiId": self.api_id,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": lowered.get("user-agent"),
                             "apiKey": api_key if route.api_key_required else None,
                             "apiKeyId": "sandbox-key" if route.api_key_required else None,
                             "cognitoIdentityPoolId": None, "accountId": None, "cognitoIdentityId": None,
                             "caller": None, "accessKey": None, "cognitoAuthenticationType": None,
                             "cognitoAuthenticationProvider": None, "userArn": None, "user": None},
            },
            "body": text, "isBase64Encoded": encoded,
        }

    @staticmethod
    def _proxy_reply(result: InvokeResult, base: list[tuple[str, str]]) -> GatewayReply | None:
        """The function's proxy response, or None when API Gateway would answer 502."""
        reply = result.payload
        if result.function_error or not isinstance(reply, dict):
            return None
        status = reply.get("statusCode")
        if not isinstance(status, int) or not 100 <= status <= 599:
            return None
        headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in (reply.get("headers") or {}).items()]
        for name, values in (reply.get("multiValueHeaders") or {}).items():
            headers += [(str(name), str(v)) for v in values]
        body = reply.get("body") or ""
        if not isinstance(body, str):
            return None
        payload = base64.b64decode(body) if reply.get("isBase64Encoded") else body.encode()
        return GatewayReply(status, [*base, *headers], payload)  # a proxy integration's CORS is the function's

    def serve(self, port: int = 0) -> LoopbackServer:
        return LoopbackServer(self.handle, port)


class StaticSite:
    """Files under URL prefixes (``{"/": site_dir, "/tracker/": dist_dir}``), longest prefix first; no listing,
    nothing outside the mounted directories, ``index.html`` for directories, never cached (a development site)."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        self.mounts = sorted(((p if p.endswith("/") else p + "/", Path(d).resolve()) for p, d in mounts.items()),
                             key=lambda m: -len(m[0]))

    def handle(self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes) -> GatewayReply:
        if method not in ("GET", "HEAD"):
            return GatewayReply(405, [("Allow", "GET, HEAD")], b"")
        path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
        for prefix, root in self.mounts:
            if (path + "/").startswith(prefix):
                file = (root / path[len(prefix):]).resolve()
                if file.is_dir():
                    file = file / "index.html"
                if file.is_relative_to(root) and file.is_file():
                    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                    if content_type.startswith("text/") or content_type.endswith("javascript"):
                        content_type += "; charset=utf-8"
                    return GatewayReply(200, [("Content-Type", content_type), ("Cache-Control", "no-store")],
                                        file.read_bytes())
        return GatewayReply(404, [("Content-Type", "text/plain; charset=utf-8")], b"not found\n")

    def serve(self, port: int = 0) -> LoopbackServer:
        return LoopbackServer(self.handle, port)


def _function_spec(synthesis: Any, function_name: str) -> FunctionSpec:
    functions = [f for f in synthesis.of_type(FUNCTION) if f.inputs.get("name") == function_name]
    if len(functions) != 1:
        raise LookupError(f"expected one function named {function_name}, found {len(functions)}")
    return FunctionSpec.from_synthesis(synthesis, str(functions[0].inputs["handler"]).split(".")[0])


@dataclass
class Serving:
    gateway: ServingGateway
    server: LoopbackServer
    hosts: dict[str, LambdaHost]

    @property
    def url(self) -> str:
        return f"{self.server.url}/{self.gateway.stage}"

    @classmethod
    def start(cls, synthesis: Any, workdir: Path, *, endpoints: Mapping[str, str], region: str,
              api_keys: Collection[str], allowed_origins: Iterable[str], port: int = 0,
              packages: str = "layer", overrides: Mapping[str, str] | None = None) -> Serving:
        """Hosts for every function the serving routes invoke (started in parallel), then the gateway."""
        routes = serving_routes(synthesis)
        origins = list(allowed_origins)
        functions = {r.function for r in routes if r.function} | {r.authorizer.function for r in routes if r.authorizer}
        specs = [_function_spec(synthesis, name) for name in sorted(functions)]

        def start_host(spec: FunctionSpec) -> LambdaHost:
            cors = {Env.CORS_ALLOWED_ORIGINS: json.dumps(origins)} if Env.CORS_ALLOWED_ORIGINS in spec.environment \
                else {}
            environment = sandbox_environment(spec, endpoints, region, {**cors, **(overrides or {})})
            return LambdaHost.start(spec.module, environment, spec.timeout_seconds, Path(workdir) / spec.module,
                                    function_name=spec.name, memory_mb=spec.memory_mb, packages=packages)

        hosts: dict[str, LambdaHost] = {}
        with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
            futures = {spec.name: pool.submit(start_host, spec) for spec in specs}
        try:
            for name, future in futures.items():
                hosts[name] = future.result()
        except BaseException:
            for future in futures.values():
                if future.exception() is None:
                    future.result().stop()
            raise
        gateway = ServingGateway(routes, hosts, api_keys=api_keys, allowed_origins=origins,
                                 stage=stage_name(synthesis), region=region)
        return cls(gateway, gateway.serve(port), hosts)

    def stop(self) -> None:
        self.server.stop()
        for host in self.hosts.values():
            host.stop()

    def __enter__(self) -> Serving:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
