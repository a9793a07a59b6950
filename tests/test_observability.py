"""The operations dashboard and alarms, generated from code: valid structure, every metric about a resource the
stack creates, thresholds from the stack's settings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.observability import Observed, alarm_specs
from components.settings import parse_settings
from tools.synth import Synthesis, stack_names, synthesize_stack

STACKS = stack_names()
OBSERVED = Observed(region="eu-west-1", collect_api="collect", serve_api="serve", stream="clicks",
                    delivery_stream="raw", processor="processor", recommendations="recs", items="items",
                    dead_letter_queue="dlq", failure_queue="failures",
                    training_machine_arn="arn:aws:states:eu-west-1:1:stateMachine:t", web_acl="acl")


@pytest.fixture(scope="module", params=STACKS)
def deployed(request: pytest.FixtureRequest) -> Synthesis:
    return synthesize_stack(request.param, preview=False)


def dashboard(synthesis: Synthesis) -> dict[str, Any]:
    [resource] = synthesis.of_type("aws:cloudwatch/dashboard:Dashboard")
    body: dict[str, Any] = json.loads(resource.inputs["dashboardBody"])
    return body


def metric_rows(body: dict[str, Any]) -> list[list[Any]]:
    return [row for w in body["widgets"] if w["type"] == "metric" for row in w["properties"]["metrics"]
            if isinstance(row[0], str)]


def test_the_dashboard_has_the_documented_structure(deployed: Synthesis) -> None:
    body = dashboard(deployed)

    assert set(body) == {"widgets"}
    for widget in body["widgets"]:
        assert widget["type"] in {"text", "metric", "alarm"}
        assert all(isinstance(widget[k], int) for k in ("x", "y", "width", "height"))
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            props = widget["properties"]
            assert props["region"] == deployed.outputs["region"]
            assert props["period"] % 60 == 0 and props["metrics"]
    for row in metric_rows(body):
        pairs = row[2:-1] if isinstance(row[-1], dict) else row[2:]
        assert len(pairs) % 2 == 0, row


def test_the_dashboard_follows_the_flow_of_a_click(deployed: Synthesis) -> None:
    headers = [w["properties"]["markdown"] for w in dashboard(deployed)["widgets"] if w["type"] == "text"]

    assert [h.split()[1] for h in headers] == ["Alarms", "Collection", "Stream", "Storage", "Real", "Serving",
                                               "Training"]


def test_every_metric_is_about_a_resource_the_stack_creates(deployed: Synthesis) -> None:
    names = {r.inputs.get("name") for r in deployed.resources} | {r.outputs.get("name") for r in deployed.resources}
    arns = {r.outputs.get("arn") for r in deployed.resources}
    services = {f.inputs["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"]
                for f in deployed.of_type("aws:lambda/function:Function")}
    region = deployed.outputs["region"]
    checked = 0
    for row in metric_rows(dashboard(deployed)):
        pairs = row[2:-1] if isinstance(row[-1], dict) else row[2:]
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            allowed = {"StateMachineArn": arns, "service": services, "Region": {region}, "Rule": {"ALL"},
                       "Stage": {"v1"}}.get(key, names)
            assert value in allowed, (row[1], key, value)
            checked += 1
    assert checked > 30


def test_every_alarm_notifies_the_encrypted_operations_topic(deployed: Synthesis) -> None:
    alarms = deployed.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    [topic] = [t for t in deployed.of_type("aws:sns/topic:Topic") if t.inputs["name"].endswith("-alarms")]

    assert len(alarms) == len(alarm_specs(OBSERVED, parse_settings({"environment": "dev"}, region="eu-west-1",
                                                                    stack="dev").alarms))
    for alarm in alarms:
        assert alarm.inputs["alarmActions"] == [topic.outputs["arn"]]
        assert alarm.inputs["okActions"] == [topic.outputs["arn"]]
        assert ("metricQueries" in alarm.inputs) != ("metricName" in alarm.inputs)
    assert topic.inputs["kmsMasterKeyId"]


def test_alarm_thresholds_come_from_the_settings() -> None:
    settings = parse_settings({"environment": "prod", "alarmIteratorAgeSeconds": "120", "alarmApi5xxPercent": "5",
                               "alarmFallbackPercent": "50", "alarmFirehoseFreshnessSeconds": "600",
                               "alarmWafBlockedPer5Minutes": "300"}, region="eu-west-1", stack="prod")
    specs = alarm_specs(OBSERVED, settings.alarms)

    assert set(specs) == {"processor-iterator-age", "processor-dead-letters", "processor-abandoned-batches",
                          "collect-api-5xx", "serve-api-5xx", "fallback-rate", "training-failed",
                          "firehose-freshness", "waf-blocked-spike"}
    assert specs["processor-iterator-age"].threshold == 120_000
    assert specs["collect-api-5xx"].threshold == specs["serve-api-5xx"].threshold == 5
    assert specs["fallback-rate"].expression == "100 * e / IF(n > 0, n, 1)"
    assert specs["fallback-rate"].threshold == 50
    assert specs["firehose-freshness"].threshold == 600
    assert specs["waf-blocked-spike"].threshold == 300
    assert specs["processor-dead-letters"].metric == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": "dlq"}, "Maximum")


def subscriptions(synthesis: Synthesis) -> dict[str, Any]:
    return {r.inputs["endpoint"]: r for r in synthesis.of_type("aws:sns/topicSubscription:TopicSubscription")
            if "-alarm-email-" in r.name}


def test_subscriptions_are_named_by_address_so_removing_one_keeps_the_others(synth: Any) -> None:
    """GIVEN two subscribed addresses, WHEN the first is removed, THEN the second keeps its logical name (no
    re-created subscription to confirm again); the alias adopts what earlier versions named by position."""
    from components.program import build

    def stack(emails: list[str]) -> Synthesis:
        settings = parse_settings({"environment": "dev", "alarmEmails": json.dumps(emails),
                                   "trainingNotificationEmails": json.dumps(emails)}, region="eu-west-1", stack="dev")
        return synth(lambda: build(settings))

    both = subscriptions(stack(["ops@example.com", "ml@example.com"]))
    one = subscriptions(stack(["ml@example.com"]))

    alarms = "cp-dev-euw1-operations-alarm-email"
    assert both["ml@example.com"].name == one["ml@example.com"].name == f"{alarms}-ml@example.com"
    assert (both["ops@example.com"].aliases, both["ml@example.com"].aliases) == ([f"{alarms}-0"], [f"{alarms}-1"])
