"""Lambda: ``POST /items`` — new blog posts into the items store and, once it exists, the items dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common.catalog import InvalidItemsError, parse_items
from common.config import required_env, required_number
from common.contract import Env, Metric
from common.http import bad_request, reply
from common.items import ItemsService, StoreUnavailableError
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()


# PutItems allows about 10 calls a second: botocore's standard mode retries throttling with backoff and jitter.
EVENTS_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 4}, connect_timeout=2, read_timeout=5)


def build_service(environ: Mapping[str, str]) -> ItemsService:
    """The service as the stack configures it; a missing or malformed variable fails here, at cold start."""
    return ItemsService(
        s3_client=boto3.client("s3"),
        bucket=required_env(Env.DATA_BUCKET, environ),
        events_client=boto3.client("personalize-events", config=EVENTS_CONFIG),
        dataset_arn=CachedParameter(boto3.client("ssm"), required_env(Env.ITEMS_DATASET_PARAMETER, environ),
                                    required_number(Env.PARAMETER_CACHE_SECONDS, environ)),
    )


@cache
def service() -> ItemsService:
    return build_service(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    # AWS_IAM authorization: API Gateway puts the verified SigV4 signer here; the audit trail of catalog writes.
    logger.append_keys(caller=((event.get("requestContext") or {}).get("identity") or {}).get("userArn"))
    try:
        items = parse_items(json.loads(event.get("body") or ""))
    except (json.JSONDecodeError, InvalidItemsError) as error:
        metrics.add_metric(name=Metric.ITEMS_BAD_REQUESTS, unit=MetricUnit.Count, value=1)
        message = ("the body must be JSON: {\"items\": [...]}" if isinstance(error, json.JSONDecodeError)
                   else f"invalid items: {error}")
        return bad_request(message, request_id)
    try:
        result = service().add(items)
    except StoreUnavailableError:
        logger.exception("items store unavailable")
        metrics.add_metric(name=Metric.ITEMS_STORE_FAILURES, unit=MetricUnit.Count, value=1)
        return reply(503, {"message": "The items could not be stored; retry the request.", "requestId": request_id},
                     {"Retry-After": "1"})
    logger.info("items stored", extra=dict(result))
    metrics.add_metric(name=Metric.ITEMS_STORED, unit=MetricUnit.Count, value=result["stored"])
    metrics.add_metric(name=Metric.ITEMS_SENT, unit=MetricUnit.Count, value=result["sentToPersonalize"])
    return reply(200, result)
