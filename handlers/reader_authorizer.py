"""Lambda REQUEST authorizer of API Gateway: verifies a reader token and allows that reader's routes only.

A reader token is a standard JWT (RFC 7519) signed with HS256 by the sites' backend, with the stack's reader-token
secret (Secrets Manager, encrypted with the stack key); it is verified with PyJWT (vendored into this archive:
``common.contract.VENDORED_PACKAGES``), the algorithm pinned, ``iss``, ``aud``, ``sub``, ``iat`` and ``exp``
required, its lifetime bounded. Both the current and the previous secret version verify, so a rotation does not
cut off tokens in flight. API Gateway caches the answer per token (``readerTokenCacheSeconds``): there is no Lambda
per collected event or per recommendation request of a reader whose answer is cached.

The answer's principal is the token's ``sub`` (the reader id); its policy allows only that reader's routes
(``GET /recommendations/<sub>`` and ``POST /events/reader``), so a token used for another reader's id gets 403
from API Gateway even from the cache. A bad token (malformed, expired, wrong issuer, audience or signature) gets
401: the authorizer raises ``Unauthorized``, as API Gateway expects.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
import jwt
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import MissingConfigurationError, required_env, required_int, required_number
from common.contract import ANONYMOUS_ID_PREFIX, Env, Metric, ReaderRoute

logger = Logger()
metrics = Metrics()

ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp"]
LEEWAY_SECONDS = 30
MIN_SECRET_LENGTH = 32  # HS256 wants a key of at least 256 bits (RFC 7518, section 3.2)
# A reader id usable verbatim in a policy's resource ARN and in a path: no wildcard (* ?), no separator (/).
READER_ID = re.compile(r"^[A-Za-z0-9._~@:+=-]{1,128}$")
METHOD_ARN = re.compile(r"^(arn:aws[a-z-]*:execute-api:[a-z0-9-]+:\d{12}:[a-z0-9]+)/([^/]+)/")


class RejectedTokenError(Exception):
    """The token does not prove a reader: API Gateway answers 401."""


class SecretKeys:
    """The secret's current and previous versions (each at least MIN_SECRET_LENGTH), cached for ``ttl_seconds``."""

    STAGES = ("AWSCURRENT", "AWSPREVIOUS")

    def __init__(self, client: Any, secret_id: str, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._secret_id, self._ttl, self._clock = client, secret_id, ttl_seconds, clock
        self._lock = threading.Lock()
        self._keys: tuple[str, ...] = ()
        self._expires = float("-inf")

    def keys(self) -> tuple[str, ...]:
        with self._lock:
            now = self._clock()
            if now >= self._expires:
                self._keys = self._fetch()
                self._expires = now + self._ttl
            return self._keys

    def _fetch(self) -> tuple[str, ...]:
        keys = []
        for stage in self.STAGES:
            try:
                value = self._client.get_secret_value(SecretId=self._secret_id, VersionStage=stage)
            except self._client.exceptions.ResourceNotFoundException:
                continue  # no previous version before the first rotation; no current one before the first value
            secret = value.get("SecretString") or ""
            if len(secret) >= MIN_SECRET_LENGTH:
                keys.append(secret)
            else:
                logger.error("reader-token secret version is too short to sign tokens", extra={"stage": stage})
        return tuple(keys)


@dataclass(frozen=True)
class Verifier:
    keys: Callable[[], Sequence[str]]
    issuer: str
    audience: str
    max_lifetime_seconds: int

    def reader(self, token: str) -> str:
        """The reader id (``sub``) of a valid token; anything else raises RejectedTokenError with the reason."""
        claims = self._claims(token)
        if claims["exp"] - claims["iat"] > self.max_lifetime_seconds:
            raise RejectedTokenError(f"token lives longer than {self.max_lifetime_seconds} s")
        subject = claims["sub"]
        if not isinstance(subject, str) or not READER_ID.match(subject):
            raise RejectedTokenError("sub is not a usable reader id")
        if subject.startswith(ANONYMOUS_ID_PREFIX):
            raise RejectedTokenError(f"sub has the anonymous prefix {ANONYMOUS_ID_PREFIX!r}")
        return subject

    def _claims(self, token: str) -> dict[str, Any]:
        keys = self.keys()
        if not keys:
            raise RejectedTokenError("no reader-token secret is set")
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                    leeway=LEEWAY_SECONDS, options={"require": REQUIRED_CLAIMS})
                return claims
            except jwt.InvalidSignatureError:
                continue  # signed with the other version, or forged
            except jwt.PyJWTError as error:
                raise RejectedTokenError(f"{type(error).__name__}: {error}") from None
        raise RejectedTokenError("signature does not verify with any secret version")


def token_of(event: Mapping[str, Any]) -> str:
    """The token from ``Authorization: Bearer <jwt>`` (fetch) or from ``?token=<jwt>`` (beacons cannot send headers)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    authorization = str(headers.get("authorization") or "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return str((event.get("queryStringParameters") or {}).get(ReaderRoute.QUERY_PARAMETER) or "")


def reader_policy(method_arn: str, reader: str) -> dict[str, Any]:
    """Allow only this reader's routes of the API and stage the request came to (the answer is cached per token)."""
    match = METHOD_ARN.match(method_arn)
    if match is None:
        raise ValueError(f"unexpected methodArn {method_arn!r}")
    base = f"{match.group(1)}/{match.group(2)}"
    return {"Version": "2012-10-17", "Statement": [{
        "Action": "execute-api:Invoke", "Effect": "Allow",
        "Resource": [f"{base}/GET/recommendations/{reader}", f"{base}/POST/events/{ReaderRoute.SIGNED_IN_EVENTS}"],
    }]}


def build_verifier(environ: Mapping[str, str]) -> Verifier:
    """The verifier as the stack configures it; a missing or malformed variable fails here, at cold start."""
    lifetime = required_int(Env.READER_JWT_MAX_LIFETIME_SECONDS, environ)
    if lifetime < 1:
        raise MissingConfigurationError(f"environment variable {Env.READER_JWT_MAX_LIFETIME_SECONDS} must be "
                                        "a positive number of seconds")
    secret = SecretKeys(boto3.client("secretsmanager"), required_env(Env.READER_JWT_KEY_ARN, environ),
                        required_number(Env.PARAMETER_CACHE_SECONDS, environ))
    return Verifier(keys=secret.keys, issuer=required_env(Env.READER_JWT_ISSUER, environ),
                    audience=required_env(Env.READER_JWT_AUDIENCE, environ), max_lifetime_seconds=lifetime)


@cache
def verifier() -> Verifier:
    return build_verifier(os.environ)


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        reader = verifier().reader(token_of(event))
    except RejectedTokenError as error:
        metrics.add_metric(name=Metric.READER_TOKENS_REJECTED, unit=MetricUnit.Count, value=1)
        logger.info("reader token rejected", extra={"reason": str(error)})
        raise Exception("Unauthorized") from None
    metrics.add_metric(name=Metric.READER_TOKENS_ACCEPTED, unit=MetricUnit.Count, value=1)
    return {"principalId": reader, "policyDocument": reader_policy(str(event.get("methodArn", "")), reader),
            "context": {"reader": reader}}
