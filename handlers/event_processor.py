"""Lambda: the ingestion stream's records → Amazon Personalize PutEvents (see ``common.putevents``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common.config import required_env, required_int, required_number, required_strings
from common.contract import Env, Metric
from common.putevents import EventProcessor, Outcome, SqsDeadLetters
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Time kept back from the invocation's remaining time to report results before Lambda's timeout.
SAFETY_SECONDS = 3.0
# The retries are ours: they must stop at the invocation's deadline, which botocore's retry modes cannot know.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5,
                       max_pool_connections=32)


def build_processor(environ: Mapping[str, str]) -> EventProcessor:
    """The processor as the stack configures it; a missing or malformed variable fails here, at cold start."""
    return EventProcessor(
        events_client=boto3.client("personalize-events", config=CLIENT_CONFIG),
        tracking_id=CachedParameter(boto3.client("ssm"), required_env(Env.TRACKING_ID_PARAMETER, environ),
                                    required_number(Env.PARAMETER_CACHE_SECONDS, environ)),
        dead_letters=SqsDeadLetters(boto3.client("sqs"), required_env(Env.DEAD_LETTER_QUEUE_URL, environ)),
        event_types=required_strings(Env.EVENT_TYPES, environ),
        executor=ThreadPoolExecutor(max_workers=required_int(Env.MAX_CONCURRENCY, environ)),
    )


@cache
def processor() -> EventProcessor:
    """Built on first use, so importing the module needs no configuration (and tests can set it first)."""
    return build_processor(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    budget = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    report = processor().process(records, budget_seconds=budget)
    for name, outcome in ((Metric.EVENTS_SENT, Outcome.SENT), (Metric.EVENTS_SKIPPED, Outcome.SKIPPED),
                          (Metric.EVENTS_FROM_BOTS, Outcome.BOT),
                          (Metric.EVENTS_RETRIED, Outcome.RETRY), (Metric.EVENTS_DEAD_LETTERED, Outcome.DEAD_LETTERED)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.count(outcome))
    metrics.add_metric(name=Metric.PUT_EVENTS_CALLS, unit=MetricUnit.Count, value=report.calls)
    metrics.add_metric(name=Metric.PUT_EVENTS_RETRIES, unit=MetricUnit.Count, value=report.retries)
    for latency in report.latencies_ms:
        metrics.add_metric(name=Metric.PUT_EVENTS_LATENCY, unit=MetricUnit.Milliseconds, value=latency)
    failures = report.batch_item_failures()
    if failures or report.dead_letters:
        logger.warning("batch delivered with failures", extra={
            "records": len(records), "retry": len(failures), "deadLettered": report.count(Outcome.DEAD_LETTERED)})
    return {"batchItemFailures": failures}
