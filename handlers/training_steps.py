"""Lambda: the training state machine's own steps — data preparation (map, reduce, summarize) and the metric gate
(compare); see ``common.training_data`` — and the segments machine's input file (segments-input,
``common.segments``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from common.config import required_env, required_int, required_strings
from common.contract import Env
from common.segments import write_segment_input
from common.training_data import as_dict, map_objects, metric_gate, reduce_shard, summarize

logger = Logger()
tracer = Tracer()


@dataclass(frozen=True)
class StepsConfig:
    bucket: str
    event_types: tuple[str, ...]
    min_interactions: int
    min_users_with_two: int


def build_config(environ: Mapping[str, str]) -> StepsConfig:
    """The steps' configuration; a missing or malformed variable fails here, at cold start."""
    return StepsConfig(bucket=required_env(Env.DATA_BUCKET, environ),
                       event_types=required_strings(Env.EVENT_TYPES, environ),
                       min_interactions=required_int(Env.MIN_INTERACTIONS, environ),
                       min_users_with_two=required_int(Env.MIN_USERS_WITH_TWO, environ))


@cache
def config() -> StepsConfig:
    return build_config(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    s3 = boto3.client("s3")
    settings = config()
    bucket = settings.bucket
    step = event.get("step")
    if step == "map":
        counts = map_objects(s3, bucket, [event["key"]], event["runId"], int(event["shards"]),
                             settings.event_types)
        logger.info("mapped a raw object", extra={"key": event["key"], **as_dict(counts)})
        return as_dict(counts)
    if step == "reduce":
        return as_dict(reduce_shard(s3, bucket, event["runId"], int(event["shard"])))
    if step == "summarize":
        totals = summarize(s3, bucket, event["runId"], event.get("maps", []), event.get("shards", []),
                           min_interactions=settings.min_interactions,
                           min_users_with_two=settings.min_users_with_two)
        logger.info("prepared training data", extra=totals)
        return totals
    if step == "compare":
        current = event.get("current")
        decision = metric_gate(event["metric"], float(event["tolerance"]), event["new"]["Metrics"],
                               current["Metrics"] if current else None)
        logger.info("metric gate", extra=decision)
        return decision
    if step == "segments-input":
        job = write_segment_input(s3, bucket, event["runId"], event.get("request") or {}, event["solutions"])
        logger.info("segment job input written", extra=job)
        return job
    raise ValueError(f"unknown step {step!r}: expected map, reduce, summarize, compare or segments-input")
