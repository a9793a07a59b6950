"""The real-time component: the processor function, its stream mapping and its two queues."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.realtime import RealtimeArgs, RealtimeEvents
from components.settings import parse_settings
from tests.conftest import REGION, Synthesize, assert_policy_pack_passes
from tools.policy_eval import evaluate
from tools.synth import ACCOUNT_ID, Synthesis

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0000"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/cp-dev-euw1-clicks"


def run(synth: Synthesize, preview: bool = False, **values: str) -> Synthesis:
    settings = parse_settings({"environment": "dev", **values}, region=REGION, stack="dev")
    return synth(lambda: RealtimeEvents("rt", RealtimeArgs(
        stack=settings, realtime=settings.realtime, published=settings.published,
        event_types=settings.ingestion.event_types, key_arn=KEY_ARN, stream_arn=STREAM_ARN)), preview=preview)


def inputs(synthesis: Synthesis, type_: str) -> dict[str, Any]:
    [resource] = synthesis.of_type(type_)
    return resource.inputs


def test_the_mapping_is_resilient_and_sized_from_settings(synth: Synthesize) -> None:
    synthesis = run(synth, processorBatchSize="250", processorBatchingWindowSeconds="5",
                    processorParallelizationFactor="4", processorMaximumRecordAgeSeconds="3600",
                    processorMaximumRetryAttempts="3")

    mapping = inputs(synthesis, "aws:lambda/eventSourceMapping:EventSourceMapping")
    failures = synthesis.find("aws:sqs/queue:Queue", "rt-failures")
    assert mapping["eventSourceArn"] == STREAM_ARN
    assert mapping["startingPosition"] == "TRIM_HORIZON"
    assert (mapping["batchSize"], mapping["maximumBatchingWindowInSeconds"], mapping["parallelizationFactor"]) == (
        250, 5, 4)
    assert (mapping["maximumRecordAgeInSeconds"], mapping["maximumRetryAttempts"]) == (3600, 3)
    assert mapping["bisectBatchOnFunctionError"] is True
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["destinationConfig"] == {"onFailure": {"destinationArn": failures.outputs["arn"]}}


def test_the_processor_gets_its_configuration_from_the_stack(synth: Synthesize) -> None:
    synthesis = run(synth, processorConcurrency="16", processorMemoryMb="1024", processorTimeoutSeconds="120",
                    parameterCacheSeconds="30", eventTypes='["view", "play"]')

    function = inputs(synthesis, "aws:lambda/function:Function")
    dlq = synthesis.find("aws:sqs/queue:Queue", "rt-dlq")
    assert function["handler"] == "event_processor.handler"
    assert (function["memorySize"], function["timeout"]) == (1024, 120)
    assert function["environment"]["variables"] == {
        "POWERTOOLS_SERVICE_NAME": "event-processor", "POWERTOOLS_METRICS_NAMESPACE": "ClickstreamPersonalization",
        "TRACKING_ID_PARAMETER": "/cp-dev-euw1/personalize/tracking-id", "PARAMETER_CACHE_SECONDS": "30",
        "DEAD_LETTER_QUEUE_URL": dlq.outputs["url"], "EVENT_TYPES": '["view", "play"]', "MAX_CONCURRENCY": "16"}


def test_the_processor_role_names_exact_actions_and_resources(synth: Synthesize) -> None:
    synthesis = run(synth)

    statements = {s["Sid"]: s for s in json.loads(inputs(synthesis, "aws:iam/rolePolicy:RolePolicy")["policy"])[
        "Statement"]}
    assert statements["ReadClickStream"]["Resource"] == STREAM_ARN
    assert statements["ReadTrackingId"]["Resource"] == (
        f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/cp-dev-euw1/personalize/tracking-id")
    assert statements["PutEvents"] == {"Sid": "PutEvents", "Effect": "Allow", "Action": ["personalize:PutEvents"],
                                       "Resource": "*"}  # PutEvents has no resource-level permissions
    queues = sorted(q.outputs["arn"] for q in synthesis.of_type("aws:sqs/queue:Queue"))
    assert sorted(statements["KeepUndeliverableRecords"]["Resource"]) == queues
    for statement in statements.values():
        assert all(not a.endswith("*") for a in statement["Action"]), statement["Sid"]


def test_both_queues_are_encrypted_and_keep_messages_14_days(synth: Synthesize) -> None:
    synthesis = run(synth)

    for queue in synthesis.of_type("aws:sqs/queue:Queue"):
        assert queue.inputs["kmsMasterKeyId"] == KEY_ARN
        assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_realtime_passes_the_policy_pack(synth: Synthesize, preview: bool) -> None:
    assert_policy_pack_passes(evaluate(run(synth, preview=preview)), preview)
