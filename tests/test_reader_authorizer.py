"""The reader authorizer (handlers/reader_authorizer.py) with the environment the dev stack gives it, its secret in
Secrets Manager (moto), and tokens minted by the documented helper (tools/reader_token.py).

GIVEN a token, WHEN API Gateway asks the authorizer, THEN a valid token of reader R gets principal R and a policy
allowing only R's routes of the calling API and stage; any other token gets ``Unauthorized`` (401).
"""

from __future__ import annotations

import base64
import importlib
import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import jwt
import pytest
from moto import mock_aws

from tests.conftest import FakeLambdaContext
from tests.deployed import function_environment
from tools import reader_token

REGION = "eu-west-1"
METHOD_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/GET/recommendations/alice"
EVENTS_ARN = "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/events/reader"
SECRET = "s" * 48
OTHER_SECRET = "o" * 48


@pytest.fixture
def environment() -> dict[str, str]:
    return function_environment("reader_authorizer")


@pytest.fixture
def authorizer(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """GIVEN the deployed environment and the stack's secret holding SECRET."""
    for name, value in {**environment, "AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t",
                        "AWS_SECRET_ACCESS_KEY": "t", "POWERTOOLS_SERVICE_NAME": "reader-authorizer"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("secretsmanager")
        client.create_secret(Name=environment["READER_JWT_KEY_ARN"], SecretString=SECRET)
        module = importlib.reload(importlib.import_module("reader_authorizer"))
        module.verifier.cache_clear()
        yield module


def token(secret: str = SECRET, **overrides: Any) -> str:
    env = function_environment("reader_authorizer")
    claims: dict[str, Any] = {"iss": env["READER_JWT_ISSUER"], "aud": env["READER_JWT_AUDIENCE"], "sub": "alice",
                              "iat": int(time.time()), "exp": int(time.time()) + 600}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, algorithm="HS256")


def request(token_value: str | None, *, method_arn: str = METHOD_ARN, query: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "REQUEST", "methodArn": method_arn, "headers": {}, "queryStringParameters": {}}
    if token_value is not None and query:
        event["queryStringParameters"] = {"token": token_value}
    elif token_value is not None:
        event["headers"] = {"Authorization": f"Bearer {token_value}"}
    return event


def authorize(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = module.handler(event, FakeLambdaContext())
    return answer


def allowed(answer: dict[str, Any]) -> list[str]:
    [statement] = answer["policyDocument"]["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "execute-api:Invoke"
    resources: list[str] = statement["Resource"]
    return resources


# --- valid tokens -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [False, True], ids=["Authorization header", "token query parameter"])
def test_a_valid_token_names_its_reader_and_allows_only_that_readers_routes(authorizer: ModuleType,
                                                                             query: bool) -> None:
    answer = authorize(authorizer, request(token(), query=query))

    assert answer["principalId"] == "alice" and answer["context"] == {"reader": "alice"}
    assert allowed(answer) == ["arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/GET/recommendations/alice",
                               "arn:aws:execute-api:eu-west-1:123456789012:abc123/v1/POST/events/reader"]


def test_the_cached_answer_of_one_route_covers_the_readers_other_route_and_no_one_elses(
        authorizer: ModuleType) -> None:
    # API Gateway reuses the answer for the same token on every method of the API until the cache TTL ends.
    answer = authorize(authorizer, request(token(), method_arn=EVENTS_ARN, query=True))

    assert METHOD_ARN in allowed(answer)
    assert not [r for r in allowed(answer) if "*" in r or "?" in r or r.endswith("/recommendations/bob")]


def test_a_token_signed_with_the_previous_secret_still_verifies_after_a_rotation(authorizer: ModuleType) -> None:
    client = boto3.client("secretsmanager")
    arn = function_environment("reader_authorizer")["READER_JWT_KEY_ARN"]
    before = token()
    reader_token.rotate(client, arn)
    authorizer.verifier.cache_clear()  # a cold authorizer (a warm one sees the rotation within its secret cache)

    assert authorize(authorizer, request(before))["principalId"] == "alice"
    fresh = reader_token.mint(reader_token.current_secret(client, arn), issuer=authorizer.verifier().issuer,
                              audience=authorizer.verifier().audience, reader="bob")
    assert authorize(authorizer, request(fresh))["principalId"] == "bob"


def test_the_helper_mints_what_the_authorizer_accepts(authorizer: ModuleType) -> None:
    verifier = authorizer.verifier()
    minted = reader_token.mint(SECRET, issuer=verifier.issuer, audience=verifier.audience, reader="carol",
                               lifetime_seconds=60)

    assert authorize(authorizer, request(minted))["principalId"] == "carol"
    header = json.loads(base64.urlsafe_b64decode(minted.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}


# --- refused tokens ---------------------------------------------------------------------------------------------------

def none_algorithm_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    env = function_environment("reader_authorizer")
    claims = {"iss": env["READER_JWT_ISSUER"], "aud": env["READER_JWT_AUDIENCE"], "sub": "alice",
              "iat": int(time.time()), "exp": int(time.time()) + 600}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


REFUSED = {
    "no token": lambda: None,
    "empty token": lambda: "",
    "not a JWT": lambda: "not-a-jwt",
    "expired": lambda: token(iat=int(time.time()) - 1000, exp=int(time.time()) - 120),
    "not yet valid": lambda: token(nbf=int(time.time()) + 600),
    "wrong audience": lambda: token(aud="another-app"),
    "wrong issuer": lambda: token(iss="https://evil.example"),
    "wrong signature": lambda: token(secret=OTHER_SECRET),
    "alg none": none_algorithm_token,
    "HS512 instead of HS256": lambda: jwt.encode(jwt.decode(token(), options={"verify_signature": False}), SECRET,
                                                 algorithm="HS512"),
    "no exp": lambda: token(exp=None),
    "no iat": lambda: token(iat=None),
    "no sub": lambda: token(sub=None),
    "lives too long": lambda: token(exp=int(time.time()) + 10 * 86400),
    "wildcard sub": lambda: token(sub="*"),
    "sub with a slash": lambda: token(sub="alice/../bob"),
    "anonymous sub": lambda: token(sub="anon-123"),
    "sub not a string": lambda: token(sub=42),
}


@pytest.mark.parametrize("make", list(REFUSED.values()), ids=list(REFUSED))
@pytest.mark.parametrize("query", [False, True], ids=["header", "query"])
def test_a_bad_token_is_unauthorized(authorizer: ModuleType, make: Any, query: bool) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(authorizer, request(make(), query=query))


def test_a_basic_authorization_header_is_not_a_token(authorizer: ModuleType) -> None:
    event = request(None)
    event["headers"] = {"authorization": "Basic " + base64.b64encode(b"alice:pw").decode()}

    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(authorizer, event)


@pytest.mark.parametrize("stored", ["", "short"], ids=["empty", "shorter than 32 characters"])
def test_a_secret_too_weak_to_sign_verifies_nothing(authorizer: ModuleType, stored: str) -> None:
    client = boto3.client("secretsmanager")
    arn = function_environment("reader_authorizer")["READER_JWT_KEY_ARN"]
    client.put_secret_value(SecretId=arn, SecretString=stored or " ")
    client.update_secret_version_stage(SecretId=arn, VersionStage="AWSPREVIOUS",
                                       RemoveFromVersionId=_version(client, arn, "AWSPREVIOUS"))
    authorizer.verifier.cache_clear()

    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(authorizer, request(token(secret=stored.ljust(32, "x") if stored else SECRET)))


def _version(client: Any, arn: str, stage: str) -> str:
    versions = client.list_secret_version_ids(SecretId=arn)["Versions"]
    return str(next(v["VersionId"] for v in versions if stage in v.get("VersionStages", [])))


# --- the secret cache and the configuration ---------------------------------------------------------------------------

def test_secret_versions_are_cached_for_their_ttl(authorizer: ModuleType) -> None:
    calls: list[str] = []

    class Client:
        class exceptions:  # noqa: N801 (botocore's shape)
            ResourceNotFoundException = KeyError

        def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, str]:  # noqa: N803
            calls.append(VersionStage)
            if VersionStage == "AWSPREVIOUS":
                raise KeyError(VersionStage)
            return {"SecretString": SECRET}

    now = [0.0]
    keys = authorizer.SecretKeys(Client(), "arn", 300, clock=lambda: now[0])

    assert keys.keys() == (SECRET,) and keys.keys() == (SECRET,)
    now[0] = 301
    assert keys.keys() == (SECRET,)
    assert calls == ["AWSCURRENT", "AWSPREVIOUS", "AWSCURRENT", "AWSPREVIOUS"]


def test_a_failing_secrets_manager_is_an_error_not_a_401(authorizer: ModuleType,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # An outage must not look like a bad token (clients would drop the reader's token): API Gateway answers 500.
    client = boto3.client("secretsmanager")
    monkeypatch.setattr(client, "get_secret_value", lambda **_: (_ for _ in ()).throw(RuntimeError("outage")))
    keys = authorizer.SecretKeys(client, "arn", 300)

    with pytest.raises(RuntimeError, match="outage"):
        keys.keys()


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("READER_JWT_MAX_LIFETIME_SECONDS", "0", "must be a positive number of seconds"),
    ("READER_JWT_MAX_LIFETIME_SECONDS", "an hour", "must be a number"),
    ("READER_JWT_ISSUER", "", "is not set"),
    ("READER_JWT_AUDIENCE", "", "is not set"),
    ("READER_JWT_KEY_ARN", "", "is not set"),
])
def test_a_malformed_environment_fails_the_cold_start(authorizer: ModuleType, environment: dict[str, str],
                                                      variable: str, value: str, message: str) -> None:
    with pytest.raises(authorizer.MissingConfigurationError, match=f"{variable} {message}"):
        authorizer.build_verifier({**environment, variable: value})


def test_an_unexpected_method_arn_is_refused() -> None:
    from reader_authorizer import reader_policy

    with pytest.raises(ValueError, match="unexpected methodArn"):
        reader_policy("arn:aws:lambda:eu-west-1:123456789012:function:x", "alice")
