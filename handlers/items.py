"""Lambda: ``POST /items`` — new blog posts into the items store and, once it exists, the items dataset."""

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

from common.catalog import InvalidItemsError, parse_items
from common.config import required_env
from common.http import bad_request, reply
from common.items import ItemsService, StoreUnavailableError
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@cache
def service() -> ItemsService:
    ttl = float(os.environ.get("PARAMETER_CACHE_SECONDS", "60"))
    return ItemsService(
        s3_client=boto3.client("s3"),
        bucket=required_env("DATA_BUCKET"),
        events_client=boto3.client("personalize-events", config=Config(retries={"total_max_attempts": 1})),
        dataset_arn=CachedParameter(boto3.client("ssm"), required_env("ITEMS_DATASET_PARAMETER"), ttl),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = (event.get("requestContext") or {}).get("requestId")
    try:
        items = parse_items(json.loads(event.get("body") or ""))
    except (json.JSONDecodeError, InvalidItemsError) as error:
        metrics.add_metric(name="ItemsBadRequests", unit=MetricUnit.Count, value=1)
        message = ("the body must be JSON: {\"items\": [...]}" if isinstance(error, json.JSONDecodeError)
                   else f"invalid items: {error}")
        return bad_request(message, request_id)
    try:
        result = service().add(items)
    except StoreUnavailableError:
        logger.exception("items store unavailable")
        metrics.add_metric(name="ItemsStoreFailures", unit=MetricUnit.Count, value=1)
        return reply(503, {"message": "The items could not be stored; retry the request.", "requestId": request_id},
                     {"Retry-After": "1"})
    metrics.add_metric(name="ItemsStored", unit=MetricUnit.Count, value=result["stored"])
    metrics.add_metric(name="ItemsSentToPersonalize", unit=MetricUnit.Count, value=result["sentToPersonalize"])
    return reply(200, result)
