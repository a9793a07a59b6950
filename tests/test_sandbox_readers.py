"""Verified readers end to end in the sandbox: the serving API of the dev stack (readers sign in there) in the
sandbox's gateway, the real recommendations function and the real reader authorizer in Lambda hosts, the
reader-token secret in a local Secrets Manager (moto server), tokens minted by tools/reader_token.py.

LocalStack (community) records authorizers but never runs them (tests/test_sandbox_envelope.py), so the gateway of
the sandbox runs them the way API Gateway does: identity sources, the authorizer's answer cached per token for its
TTL, its policy evaluated against the methodArn, ``requestContext.authorizer`` for the function.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from common.contract import Env
from tools import reader_token
from tools.sandbox.gateway import Serving
from tools.sandbox.lambda_host import FunctionSpec, InvokeResult
from tools.synth import Synthesis, synthesize_stack

REGION = "eu-west-1"
KEY = "sandbox-serving-key"
SECRET = "r" * 48


@pytest.fixture(scope="module")
def synthesis() -> Synthesis:
    return synthesize_stack("dev", preview=False)


class Counting:
    """An invoker that counts the authorizer's invocations (to see API Gateway's cache at work)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        self.calls += 1
        result: InvokeResult = self.inner.invoke(event)
        return result


@pytest.fixture(scope="module")
def serving(synthesis: Synthesis, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Serving, Counting, FunctionSpec]]:
    aws = {"endpoint_url": moto_endpoint, "region_name": REGION, "aws_access_key_id": "testing",
           "aws_secret_access_key": "testing"}
    recommendations = FunctionSpec.from_synthesis(synthesis, "recommendations").environment
    boto3.client("s3", **aws).create_bucket(Bucket=recommendations[Env.DATA_BUCKET],
                                            CreateBucketConfiguration={"LocationConstraint": REGION})
    authorizer = FunctionSpec.from_synthesis(synthesis, "reader_authorizer")
    secret = boto3.client("secretsmanager", **aws).create_secret(
        Name=authorizer.environment[Env.READER_JWT_KEY_ARN].split(":")[-1], SecretString=SECRET)
    endpoints = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_SSM": moto_endpoint,
                 "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_endpoint}
    with Serving.start(synthesis, tmp_path_factory.mktemp("serving"), endpoints=endpoints, region=REGION,
                       api_keys={KEY}, allowed_origins=[], overrides={Env.READER_JWT_KEY_ARN: secret["ARN"]}
                       ) as running:
        counting = Counting(running.gateway.invokers[authorizer.name])
        running.gateway.invokers[authorizer.name] = counting
        yield running, counting, authorizer


def token(spec: FunctionSpec, reader: str, secret: str = SECRET) -> str:
    return reader_token.mint(secret, issuer=spec.environment[Env.READER_JWT_ISSUER],
                             audience=spec.environment[Env.READER_JWT_AUDIENCE], reader=reader)


def get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    call = urllib.request.Request(url, headers={"x-api-key": KEY, **(headers or {})})
    try:
        with urllib.request.urlopen(call, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_a_reader_gets_their_own_recommendations_with_their_token_and_the_answer_is_cached(
        serving: tuple[Serving, Counting, FunctionSpec]) -> None:
    running, counting, spec = serving
    bearer = {"Authorization": f"Bearer {token(spec, 'alice')}"}
    before = counting.calls

    first = get(f"{running.url}/recommendations/alice", bearer)
    second = get(f"{running.url}/recommendations/alice", bearer)

    assert first[0] == 200 and first[1]["userId"] == "alice"
    assert second[0] == 200
    assert counting.calls == before + 1  # the second request used API Gateway's cached answer


def test_another_readers_token_is_refused_even_from_the_cache(serving: tuple[Serving, Counting, FunctionSpec]
                                                              ) -> None:
    running, _, spec = serving
    bearer = {"Authorization": f"Bearer {token(spec, 'mallory')}"}
    assert get(f"{running.url}/recommendations/mallory", bearer)[0] == 200  # caches mallory's answer

    status, body = get(f"{running.url}/recommendations/alice", bearer)

    assert status == 403 and body["message"] == "User is not authorized to access this resource"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic eA=="}],
                         ids=["no token", "not a JWT", "not a bearer token"])
def test_without_a_valid_token_a_signed_in_readers_recommendations_are_unauthorized(
        serving: tuple[Serving, Counting, FunctionSpec], headers: dict[str, str]) -> None:
    running, _, _ = serving

    status, body = get(f"{running.url}/recommendations/alice", headers)

    assert status == 401 and body["message"] == "Unauthorized"


def test_a_token_signed_with_another_secret_is_unauthorized(serving: tuple[Serving, Counting, FunctionSpec]) -> None:
    running, _, spec = serving

    status, _ = get(f"{running.url}/recommendations/alice",
                    {"Authorization": f"Bearer {token(spec, 'alice', secret='x' * 48)}"})

    assert status == 401


def test_anonymous_readers_need_no_token_on_their_route_and_cannot_use_it_for_a_signed_in_reader(
        serving: tuple[Serving, Counting, FunctionSpec]) -> None:
    running, _, _ = serving

    anonymous = get(f"{running.url}/recommendations/anonymous/anon-k3x9")
    impostor = get(f"{running.url}/recommendations/anonymous/alice")

    # an anonymous reader's anon-<session id> is answered for the session (handlers/common/surfaces.py)
    assert anonymous[0] == 200 and anonymous[1]["userId"] == "k3x9"
    assert impostor[0] == 403


def test_the_authorizer_runs_in_its_own_host_with_its_vendored_library(
        serving: tuple[Serving, Counting, FunctionSpec], tmp_path: Path) -> None:
    running, _, spec = serving

    assert spec.name in running.hosts
    assert (Path(running.hosts[spec.name].workdir) / "package" / "jwt" / "__init__.py").is_file()


# --- the gateway's authorizer semantics, with stand-in functions ------------------------------------------------------

class Scripted:
    def __init__(self, payload: Any, error: str | None = None) -> None:
        self.payload, self.error = payload, error
        self.events: list[Mapping[str, Any]] = []

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        self.events.append(event)
        return InvokeResult(self.payload, self.error, "r", 1.0)


def gateway_with(authorizer: Scripted, identity: str = "method.request.querystring.token") -> tuple[Any, Scripted]:
    from tools.sandbox.gateway import CustomAuthorizer, Route, ServingGateway
    function = Scripted({"statusCode": 200, "headers": {}, "body": "{}"})
    route = Route(resource="/things/{id}", method="GET", api_key_required=False, integration="AWS_PROXY",
                  authorization="CUSTOM", function="fn", authorizer=CustomAuthorizer("auth", (identity,), 300))
    return ServingGateway([route], {"fn": function, "auth": authorizer}, api_keys=(), allowed_origins=(),
                          region=REGION), function


def allow(resource: str, effect: str = "Allow") -> dict[str, Any]:
    return {"principalId": "alice", "context": {"reader": "alice", "n": 1},
            "policyDocument": {"Statement": [{"Effect": effect, "Action": "execute-api:Invoke", "Resource": resource}]}}


def test_the_gateway_passes_the_principal_and_context_and_reads_a_query_identity_source() -> None:
    authorizer = Scripted(allow("arn:aws:execute-api:eu-west-1:*:sandbox/v1/GET/things/*"))
    gateway, function = gateway_with(authorizer)

    reply = gateway.handle("GET", "/v1/things/7?token=abc", [], b"")

    assert reply.status == 200
    assert authorizer.events[0]["queryStringParameters"] == {"token": "abc"}
    assert authorizer.events[0]["methodArn"].endswith(":sandbox/v1/GET/things/7")
    assert function.events[0]["requestContext"]["authorizer"] == {"principalId": "alice", "reader": "alice", "n": "1"}


@pytest.mark.parametrize(("answer", "error", "status"), [
    (allow("arn:aws:execute-api:eu-west-1:*:sandbox/v1/GET/things/7", "Deny"), None, 403),
    (allow("arn:aws:execute-api:eu-west-1:*:sandbox/v1/GET/other/*"), None, 403),
    ({"errorMessage": "Unauthorized", "errorType": "Exception"}, "Unhandled", 401),
    ({"errorMessage": "boom", "errorType": "RuntimeError"}, "Unhandled", 500),
    ({"policyDocument": {}}, None, 500),
], ids=["explicit deny", "allow elsewhere", "unauthorized", "authorizer crash", "no principal"])
def test_the_gateway_answers_like_api_gateway_for_each_authorizer_outcome(answer: Any, error: str | None,
                                                                          status: int) -> None:
    gateway, function = gateway_with(Scripted(answer, error))

    reply = gateway.handle("GET", "/v1/things/7?token=abc", [], b"")

    assert reply.status == status and not function.events
