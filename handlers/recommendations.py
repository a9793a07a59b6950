"""Lambda: ``GET /recommendations/{userId}`` — Personalize, or a fallback list, never an error page."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common.config import required_env, required_number, required_strings
from common.contract import Env, Metric
from common.http import cors_headers, reply
from common.recommend import BadRequestError, Fallback, Recommender, parse_request
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# A page waits for this call: short timeouts, one quick retry, then the fallback.
RUNTIME_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"total_max_attempts": 2, "mode": "standard"})


@dataclass(frozen=True)
class Service:
    recommender: Recommender
    filter_names: tuple[str, ...]
    allowed_origins: tuple[str, ...]


def build_service(environ: Mapping[str, str]) -> Service:
    """The service as the stack configures it; a missing or malformed variable fails here, at cold start."""
    ttl = required_number(Env.PARAMETER_CACHE_SECONDS, environ)
    ssm = boto3.client("ssm")
    return Service(
        recommender=Recommender(
            runtime_client=boto3.client("personalize-runtime", config=RUNTIME_CONFIG),
            campaign_arn=CachedParameter(ssm, required_env(Env.CAMPAIGN_ARN_PARAMETER, environ), ttl),
            filter_arns=CachedParameter(ssm, required_env(Env.FILTER_ARNS_PARAMETER, environ), ttl),
            fallback=Fallback(boto3.client("s3"), required_env(Env.DATA_BUCKET, environ), ttl),
        ),
        filter_names=required_strings(Env.FILTER_NAMES, environ, allow_empty=True),
        allowed_origins=required_strings(Env.CORS_ALLOWED_ORIGINS, environ, allow_empty=True),
    )


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
    try:
        request = parse_request(event, configured.filter_names)
    except BadRequestError as error:
        metrics.add_metric(name=Metric.RECOMMENDATION_BAD_REQUESTS, unit=MetricUnit.Count, value=1)
        return reply(400, {"message": str(error), "requestId": request_id}, cors)
    body = configured.recommender.recommend(request)
    metrics.add_metric(name=Metric.RECOMMENDATIONS_SERVED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=Metric.FALLBACK_SERVED, unit=MetricUnit.Count, value=int(body["source"] == "fallback"))
    return reply(200, body, {"Cache-Control": "no-store", **cors})
