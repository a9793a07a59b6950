"""Lambda: the training state machine's own steps — data preparation (map, reduce, summarize) and the metric gate
(compare); see ``common.training_data``."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import required_env
from common.events import configured_event_types
from common.training_data import as_dict, map_objects, metric_gate, reduce_shard, summarize

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s3 = boto3.client("s3")
    bucket = required_env("DATA_BUCKET")
    step = event.get("step")
    if step == "map":
        counts = map_objects(s3, bucket, [event["key"]], event["runId"], int(event["shards"]),
                             configured_event_types())
        logger.info("mapped a raw object", extra={"key": event["key"], **as_dict(counts)})
        return as_dict(counts)
    if step == "reduce":
        return as_dict(reduce_shard(s3, bucket, event["runId"], int(event["shard"])))
    if step == "summarize":
        totals = summarize(s3, bucket, event["runId"], event.get("maps", []), event.get("shards", []),
                           min_interactions=int(os.environ.get("MIN_INTERACTIONS", "1000")),
                           min_users_with_two=int(os.environ.get("MIN_USERS_WITH_TWO", "25")))
        logger.info("prepared training data", extra=totals)
        return totals
    if step == "compare":
        current = event.get("current")
        decision = metric_gate(event["metric"], float(event["tolerance"]), event["new"]["Metrics"],
                               current["Metrics"] if current else None)
        logger.info("metric gate", extra=decision)
        return decision
    raise ValueError(f"unknown step {step!r}: expected map, reduce, summarize or compare")
