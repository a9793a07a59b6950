"""Lambda: the read surfaces — ``GET /recommendations/{userId}`` (for you), ``GET /items/{itemId}/related``,
``GET /trending``, ``POST /rank`` — Personalize within the deadline, or a fallback list, never an error page.

One function serves every configured surface: they read the same parameters, campaigns of this stack and items store
(so one role is no broader than four would be, but for ``GetPersonalizedRanking``, granted only with the ranking
surface), and the rarer surfaces answer from the warm instances and caches of the busiest one instead of cold starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import MissingConfigurationError, required_env, required_int, required_number, required_strings
from common.contract import SURFACES, Env, Metric, Surface
from common.http import cors_headers, reply
from common.readers import ANONYMOUS_RESOURCE, forbidden_reason
from common.recommend import BadRequestError, Fallback, parse_request
from common.ssm import CachedParameter
from common.surfaces import (
    Campaigns,
    Catalog,
    FreshPosts,
    SurfaceRequest,
    Surfaces,
    parse_rank,
    parse_related,
    parse_trending,
    personalize_user,
    runtime_config,
)

logger = Logger()
tracer = Tracer()
metrics = Metrics()

DEFAULT_DEADLINE_SECONDS = 0.4
# The client the tests stub; the function's own follows its configured deadline (``runtime_config``).
RUNTIME_CONFIG = runtime_config(DEFAULT_DEADLINE_SECONDS)
# Per surface: the API Gateway resource path that reaches it, and the metrics of its answers.
RESOURCES = {"/recommendations/{userId}": Surface.FOR_YOU, "/items/{itemId}/related": Surface.RELATED,
             "/trending": Surface.TRENDING, "/rank": Surface.RANKING, ANONYMOUS_RESOURCE: Surface.FOR_YOU}
SERVED_METRICS = {Surface.FOR_YOU: (Metric.RECOMMENDATIONS_SERVED, Metric.FALLBACK_SERVED),
                  Surface.RELATED: (Metric.RELATED_SERVED, Metric.RELATED_FALLBACK_SERVED),
                  Surface.TRENDING: (Metric.TRENDING_SERVED, Metric.TRENDING_FALLBACK_SERVED),
                  Surface.RANKING: (Metric.RANKING_SERVED, Metric.RANKING_FALLBACK_SERVED)}


@dataclass(frozen=True)
class Service:
    surfaces: Surfaces
    served: tuple[str, ...]
    filter_names: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    readers_verified: bool = False

    def parse(self, surface: str, event: Mapping[str, Any]) -> SurfaceRequest:
        parsers: dict[str, Callable[[], SurfaceRequest]] = {
            Surface.FOR_YOU: lambda: self._for_you(event),
            Surface.RELATED: lambda: parse_related(event, self.filter_names),
            Surface.TRENDING: lambda: parse_trending(event),
            Surface.RANKING: lambda: parse_rank(event, self.filter_names)}
        return parsers[surface]()

    def _for_you(self, event: Mapping[str, Any]) -> SurfaceRequest:
        request = parse_request(event, self.filter_names)
        return SurfaceRequest(Surface.FOR_YOU, personalize_user(request.user_id), num_results=request.num_results,
                              filter_name=request.filter_name, context=request.context)


def build_service(environ: Mapping[str, str]) -> Service:
    """The service as the stack configures it; a missing or malformed variable fails here, at cold start."""
    ttl = required_number(Env.PARAMETER_CACHE_SECONDS, environ)
    deadline = required_int(Env.DEADLINE_MS, environ) / 1000
    served = required_strings(Env.SERVED_SURFACES, environ)
    fresh_percent, fresh_hours = required_int(Env.FRESH_POSTS_PERCENT, environ), required_int(
        Env.FRESH_POSTS_HOURS, environ)
    if not set(served) <= set(SURFACES) or deadline <= 0 or not 0 <= fresh_percent <= 100 or fresh_hours < 1:
        raise MissingConfigurationError(
            f"environment variables {Env.SERVED_SURFACES} (of {', '.join(SURFACES)}), {Env.DEADLINE_MS} (> 0), "
            f"{Env.FRESH_POSTS_PERCENT} (0-100) and {Env.FRESH_POSTS_HOURS} (>= 1) must be valid")
    ssm, s3 = boto3.client("ssm"), boto3.client("s3")
    bucket = required_env(Env.DATA_BUCKET, environ)
    # Threads that let a request give up on a call at its deadline; a hung call ends within the client timeouts.
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="surface")
    return Service(
        surfaces=Surfaces(
            runtime_client=boto3.client("personalize-runtime", config=runtime_config(deadline)),
            campaigns=Campaigns(CachedParameter(ssm, required_env(Env.CAMPAIGN_ARNS_PARAMETER, environ), ttl),
                                CachedParameter(ssm, required_env(Env.CAMPAIGN_ARN_PARAMETER, environ), ttl)),
            filter_arns=CachedParameter(ssm, required_env(Env.FILTER_ARNS_PARAMETER, environ), ttl),
            popular=Fallback(s3, bucket, ttl), catalog=Catalog(s3, bucket, ttl, executor), executor=executor,
            deadline_seconds=deadline, fresh=FreshPosts(fresh_percent, fresh_hours) if fresh_percent else None,
            metadata_surfaces=required_strings(Env.METADATA_SURFACES, environ, allow_empty=True)),
        served=served,
        filter_names=required_strings(Env.FILTER_NAMES, environ, allow_empty=True),
        allowed_origins=required_strings(Env.CORS_ALLOWED_ORIGINS, environ, allow_empty=True),
        readers_verified=required_flag(Env.READERS_VERIFIED, environ),
    )


def required_flag(name: str, environ: Mapping[str, str]) -> bool:
    raw = required_env(name, environ)
    if raw not in ("true", "false"):
        raise MissingConfigurationError(f"environment variable {name} must be true or false, got {raw!r}")
    return raw == "true"


def unverified_reader(event: Mapping[str, Any]) -> str | None:
    """Why a ``userId`` of related, trending or ranking may not be used (403), or None: on a stack that verifies
    signed-in readers, only the reader the request's verified identity names (``sessionId`` needs none)."""
    try:
        body = json.loads(event.get("body") or "{}") if event.get("httpMethod") == "POST" else {}
    except json.JSONDecodeError:
        return None  # the parser answers 400
    given = (event.get("queryStringParameters") or {}).get("userId") or (
        body.get("userId") if isinstance(body, dict) else None)
    verified = ((event.get("requestContext") or {}).get("authorizer") or {}).get("principalId")
    if given is not None and given != verified:
        return "userId needs the signed-in reader's token on this stack; anonymous readers send sessionId"
    return None


@cache
def service() -> Service:
    return build_service(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    configured = service()
    cors = cors_headers(event, configured.allowed_origins)
    surface = RESOURCES.get(str(event.get("resource")))
    if surface is None or surface not in configured.served:
        return reply(404, {"message": "no such surface on this stack", "requestId": request_id}, cors)
    # for you: the path's reader (readers.py); the other surfaces: a userId they are given.
    forbidden = forbidden_reason(event) if surface == Surface.FOR_YOU else (
        unverified_reader(event) if configured.readers_verified else None)
    if forbidden is not None:
        return reply(403, {"message": forbidden, "requestId": request_id}, cors)
    try:
        request = configured.parse(surface, event)
    except BadRequestError as error:
        metrics.add_metric(name=Metric.RECOMMENDATION_BAD_REQUESTS, unit=MetricUnit.Count, value=1)
        return reply(400, {"message": str(error), "requestId": request_id}, cors)
    body = configured.surfaces.serve(request)
    served, fallback = SERVED_METRICS[surface]
    metrics.add_metric(name=served, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=fallback, unit=MetricUnit.Count, value=int(body["source"] == "fallback"))
    return reply(200, body, {"Cache-Control": "no-store", **cors})
