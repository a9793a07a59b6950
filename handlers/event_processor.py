"""Lambda: the ingestion stream's records → Amazon Personalize PutEvents (see ``common.putevents``)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from common.config import required_env
from common.events import configured_event_types
from common.putevents import EventProcessor, Outcome, SqsDeadLetters
from common.ssm import CachedParameter

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Time kept back from the invocation's remaining time to report results before Lambda's timeout.
SAFETY_SECONDS = 3.0
# Retries are ours (budgeted, jittered); botocore's own would multiply them.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5,
                       max_pool_connections=32)


@cache
def processor() -> EventProcessor:
    """Built on first use, so importing the module needs no configuration (and tests can set it first)."""
    workers = int(os.environ.get("MAX_CONCURRENCY", "8"))
    return EventProcessor(
        events_client=boto3.client("personalize-events", config=CLIENT_CONFIG),
        tracking_id=CachedParameter(boto3.client("ssm"), required_env("TRACKING_ID_PARAMETER"),
                                    float(os.environ.get("TRACKING_ID_CACHE_SECONDS", "60"))),
        dead_letters=SqsDeadLetters(boto3.client("sqs"), required_env("DEAD_LETTER_QUEUE_URL")),
        event_types=configured_event_types(),
        executor=ThreadPoolExecutor(max_workers=workers),
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    records = event.get("Records", [])
    budget = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    report = processor().process(records, budget_seconds=budget)
    for name, outcome in (("EventsSent", Outcome.SENT), ("EventsSkippedBeforeTraining", Outcome.SKIPPED),
                          ("EventsReportedForRetry", Outcome.RETRY), ("EventsDeadLettered", Outcome.DEAD_LETTERED)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.count(outcome))
    metrics.add_metric(name="PutEventsCalls", unit=MetricUnit.Count, value=report.calls)
    metrics.add_metric(name="PutEventsRetries", unit=MetricUnit.Count, value=report.retries)
    for latency in report.latencies_ms:
        metrics.add_metric(name="PutEventsLatency", unit=MetricUnit.Milliseconds, value=latency)
    failures = report.batch_item_failures()
    if failures or report.dead_letters:
        logger.warning("batch delivered with failures", extra={
            "records": len(records), "retry": len(failures), "deadLettered": report.count(Outcome.DEAD_LETTERED)})
    return {"batchItemFailures": failures}
