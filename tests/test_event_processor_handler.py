"""The event processor's Lambda entry point, end to end over moto (SSM, SQS) and a local Personalize endpoint."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import FakeLambdaContext
from tests.deployed import function_environment
from tests.test_event_processor import TRACKING_ID, click, envelope_data, records_of
from tools.fake_personalize import FakePersonalize, serve


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakePersonalize, ModuleType]]:
    """GIVEN the environment the stack gives the function, a published tracking id and a local Personalize,
    WHEN the module loads (a cold start)."""
    fake = FakePersonalize()
    with mock_aws(), serve(fake) as endpoint:
        environment = function_environment("event_processor")
        for name, value in {**environment, "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "t",
                            "AWS_SECRET_ACCESS_KEY": "t", "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": endpoint}.items():
            monkeypatch.setenv(name, value)
        # moto's account and region are the mocks': the queue gets exactly the URL the stack hands the function.
        queue_url = boto3.client("sqs").create_queue(QueueName=environment["DEAD_LETTER_QUEUE_URL"].rsplit("/", 1)[1])
        assert queue_url["QueueUrl"].endswith(environment["DEAD_LETTER_QUEUE_URL"].split("amazonaws.com", 1)[1])
        boto3.client("ssm").put_parameter(Name=environment["TRACKING_ID_PARAMETER"], Value=TRACKING_ID, Type="String")
        module = importlib.reload(importlib.import_module("event_processor"))
        module.processor.cache_clear()
        yield fake, module


def metrics_of(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if '"_aws"' in line:
            document: dict[str, Any] = json.loads(line)
            return document
    raise AssertionError(f"no EMF metrics in {output!r}")


def test_the_handler_delivers_a_batch_and_publishes_metrics(deployed: tuple[FakePersonalize, ModuleType],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake, event_processor = deployed
    records = records_of([click(1), click(2), click(3, session="s-2")])
    records.append({"kinesis": {"sequenceNumber": "9", "partitionKey": "p", "data": "%%%"}})

    result = event_processor.handler({"Records": records}, FakeLambdaContext())

    assert result == {"batchItemFailures": []}
    assert sorted(e["eventId"] for c in fake.calls for e in c["eventList"]) == ["e-1", "e-2", "e-3"]
    emitted = metrics_of(capsys.readouterr().out)
    assert (emitted["EventsSent"], emitted["EventsDeadLettered"], emitted["EventsReportedForRetry"]) == (
        [3.0], [1.0], [0.0])
    assert emitted["PutEventsCalls"] == [2.0]
    assert len(emitted["PutEventsLatency"]) == 2


def test_the_handler_reports_retries_as_batch_item_failures(deployed: tuple[FakePersonalize, ModuleType]) -> None:
    fake, event_processor = deployed
    fake.throttle_probability = 1.0

    impatient = FakeLambdaContext(remaining_ms=3_100)  # just above the safety margin: no time to retry

    result = event_processor.handler({"Records": records_of([click(1)])}, impatient)

    assert result == {"batchItemFailures": [{"itemIdentifier": "0"}]}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_missing_environment_variable_fails_loudly(deployed: tuple[FakePersonalize, ModuleType],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, event_processor = deployed
    monkeypatch.delenv("TRACKING_ID_PARAMETER")

    with pytest.raises(Exception, match="TRACKING_ID_PARAMETER is not set"):
        event_processor.handler({"Records": records_of([click(1)])}, FakeLambdaContext())


def test_envelopes_written_by_the_collection_template_decode() -> None:
    from common.events import decode_record

    assert decode_record(envelope_data(click(5)), ("click",)).event_id == "e-5"
