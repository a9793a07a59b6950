"""Lambda: ``GET /recommendations/{userId}`` — Personalize, or a fallback list, never an error page."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common.config import required_env
from common.http import cors_headers, reply
from common.recommend import BadRequestError, Fallback, Recommender, parse_request
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# A page waits for this call: short timeouts, one quick retry, then the fallback.
RUNTIME_CONFIG = Config(connect_timeout=0.5, read_timeout=1.0, retries={"total_max_attempts": 2, "mode": "standard"})


@cache
def filter_names() -> tuple[str, ...]:
    return tuple(str(n) for n in json.loads(os.environ.get("FILTER_NAMES", "[]")))


@cache
def allowed_origins() -> list[str]:
    return [str(o) for o in json.loads(os.environ.get("CORS_ALLOWED_ORIGINS", "[]"))]


@cache
def recommender() -> Recommender:
    ttl = float(os.environ.get("PARAMETER_CACHE_SECONDS", "60"))
    ssm = boto3.client("ssm")
    return Recommender(
        runtime_client=boto3.client("personalize-runtime", config=RUNTIME_CONFIG),
        campaign_arn=CachedParameter(ssm, required_env("CAMPAIGN_ARN_PARAMETER"), ttl),
        filter_arns=CachedParameter(ssm, required_env("FILTER_ARNS_PARAMETER"), ttl),
        fallback=Fallback(boto3.client("s3"), required_env("DATA_BUCKET"), ttl),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    cors = cors_headers(event, allowed_origins())
    try:
        request = parse_request(event, filter_names())
    except BadRequestError as error:
        metrics.add_metric(name="RecommendationBadRequests", unit=MetricUnit.Count, value=1)
        return reply(400, {"message": str(error), "requestId": request_id}, cors)
    body = recommender().recommend(request)
    metrics.add_metric(name="RecommendationsServed", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="FallbackServed", unit=MetricUnit.Count, value=int(body["source"] == "fallback"))
    return reply(200, body, {"Cache-Control": "no-store", **cors})
