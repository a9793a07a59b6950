"""The training state machine, executed under moto (in-process interpreter) with a stateful fake of Personalize:
every outcome of the training lifecycle, and re-runs that create nothing twice."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from components.training_definition import teardown_definition, training_definition
from tests.sfn_harness import ACCOUNT, REGION, FakePersonalize, Harness, harness
from tests.test_event_processor import click
from tests.test_training_definition import config

BUCKET = f"cp-dev-euw1-raw-{ACCOUNT}"
METRIC = "normalized_discounted_cumulative_gain_at_25"
CAMPAIGN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:campaign/cp-dev-euw1-campaign"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                        "DATA_BUCKET": BUCKET, "EVENT_TYPES": '["view", "click", "read", "share"]',
                        "MIN_INTERACTIONS": "1000", "MIN_USERS_WITH_TWO": "25",
                        "POWERTOOLS_SERVICE_NAME": "training-steps"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        boto3.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield


def raw_events(users: int, per_user: int) -> None:
    lines = [json.dumps({"v": 1, "event": click(u * 100 + i, user=f"u-{u}", itemId=f"post-{(u + i) % 37}"),
                         "server": {}}) for u in range(users) for i in range(per_user)]
    for part in range(3):  # several Firehose objects in several partitions
        chunk = lines[part::3]
        boto3.client("s3").put_object(Bucket=BUCKET, Key=f"events/year=2026/month=11/day=2{part}/hour=10/o.jsonl.gz",
                                      Body=gzip.compress("\n".join(chunk).encode()))


def definition(**overrides: Any) -> dict[str, Any]:
    return training_definition(config(bucket=BUCKET, poll_seconds=0, retry_seconds=1, **overrides))


def parameter(name: str) -> str | None:
    try:
        value: str = boto3.client("ssm").get_parameter(Name=f"/cp-dev-euw1/personalize/{name}")["Parameter"]["Value"]
        return value
    except boto3.client("ssm").exceptions.ParameterNotFound:
        return None


@pytest.fixture
def run(aws: None) -> Iterator[Harness]:
    with harness() as h:
        yield h


def test_happy_path_trains_publishes_and_serves(run: Harness) -> None:
    raw_events(users=40, per_user=30)

    result = run.run(definition())

    assert result["status"] == "SUCCEEDED", run.entered_states(result)
    assert "Trained and promoted" in run.entered_states(result)
    assert parameter("campaign-arn") == CAMPAIGN
    assert parameter("tracking-id") == "tracking-cp-dev-euw1-tracker"
    assert json.loads(parameter("filter-arns") or "{}") == {
        "unread": f"arn:aws:personalize:{REGION}:{ACCOUNT}:filter/cp-dev-euw1-unread"}
    assert parameter("items-dataset-arn") == f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/cp-dev-euw1/ITEMS"
    assert json.loads(parameter("metrics") or "{}") == {METRIC: 0.3}
    fake = run.personalize
    assert fake.resources[CAMPAIGN]["version"].endswith("/v1")
    assert fake.created["import"] == 1  # no items in the store yet: only interactions imported
    assert run.notifications[-1]["subject"] == "Personalize training: new model serving"
    assert run.invocations["map"] >= 1 and run.invocations["reduce"] == 4 and run.invocations["summarize"] == 1


def test_insufficient_data_ends_well_and_creates_nothing(run: Harness) -> None:
    raw_events(users=10, per_user=5)

    result = run.run(definition())

    assert result["status"] == "SUCCEEDED"
    assert run.entered_states(result)[-1] == "Insufficient data"
    assert run.personalize.calls == []
    assert "Not enough data to train: 50 interactions" in run.notifications[-1]["message"]


@pytest.mark.parametrize(("kind", "state"), [("import", "Interactions imported"), ("solution-version", "Trained")])
def test_a_failed_job_notifies_the_state_and_fails(aws: None, kind: str, state: str) -> None:
    raw_events(users=40, per_user=30)
    with harness(FakePersonalize(fail={kind: "CREATE FAILED"})) as h:
        result = h.run(definition())

    assert result["status"] == "FAILED"
    assert f"Training failed in state {state}: ResourceFailed (status CREATE FAILED)" in h.notifications[-1]["message"]
    assert parameter("campaign-arn") is None


def test_throttling_is_retried(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize()
    fake.throttle["CreateSolutionVersion"] = 2
    with harness(fake) as h:
        result = h.run(definition())

    assert result["status"] == "SUCCEEDED"
    assert fake.calls.count("CreateSolutionVersion") == 3
    assert fake.created["solution-version"] == 1


def test_a_regression_is_not_promoted(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize(metrics=[{METRIC: 0.30}, {METRIC: 0.20}])
    with harness(fake) as h:
        first = h.run(definition(), name="run-1")
        second = h.run(definition(), name="run-2")

    assert first["status"] == second["status"] == "SUCCEEDED"
    assert "Not promoted" in h.entered_states(second)
    assert fake.resources[CAMPAIGN]["version"].endswith("/v1")  # the campaign keeps the better version
    assert "was not promoted" in h.notifications[-1]["message"]


def test_a_better_version_updates_the_existing_campaign(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize(metrics=[{METRIC: 0.30}, {METRIC: 0.31}])
    with harness(fake) as h:
        h.run(definition(), name="run-1")
        second = h.run(definition(), name="run-2")

    assert second["status"] == "SUCCEEDED"
    assert fake.resources[CAMPAIGN]["version"].endswith("/v2")
    assert (fake.created["campaign"], fake.created["campaign-update"]) == (1, 1)


def test_a_rerun_after_a_midway_failure_creates_nothing_twice(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize(crash_on="CreateSolution")
    with harness(fake) as h:
        failed = h.run(definition(), name="run-1")
        rerun = h.run(definition(), name="run-2")

    assert failed["status"] == "FAILED" and rerun["status"] == "SUCCEEDED"
    for kind in ("dataset-group", "schema", "dataset", "event-tracker", "filter", "solution", "campaign"):
        expected = 2 if kind in ("schema", "dataset") else 1
        assert fake.created[kind] == expected, kind
    assert "Training failed in state Solution" in h.notifications[0]["message"]


def test_teardown_deletes_what_training_created_and_can_run_twice(run: Harness) -> None:
    raw_events(users=40, per_user=30)
    run.run(definition(), name="train")

    fake = run.personalize
    first = run.run(teardown_definition(config(bucket=BUCKET, poll_seconds=0)), name="teardown-1")
    again = run.run(teardown_definition(config(bucket=BUCKET, poll_seconds=0)), name="teardown-2")

    assert first["status"] == again["status"] == "SUCCEEDED", run.entered_states(first)
    assert {r["kind"] for r in fake.resources.values()} <= {"import", "solution-version"}
    assert parameter("campaign-arn") is None and parameter("tracking-id") is None


def test_the_train_command_starts_and_follows_a_run(run: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    from tools import train

    raw_events(users=10, per_user=5)
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(name="cp-dev-euw1-training", definition=json.dumps(definition()),
                                       roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]

    status = train.main(["--state-machine-arn", machine, "--follow", "--poll-seconds", "0.05"])

    printed = capsys.readouterr().out
    assert status == 0
    assert "started arn:aws:states:" in printed
    assert "SUCCEEDED: Insufficient data — not enough data yet" in printed


def test_the_train_command_reports_a_failed_run(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    from tools import train

    raw_events(users=40, per_user=30)
    with harness(FakePersonalize(fail={"solution-version": "CREATE FAILED"})):
        machine = boto3.client("stepfunctions").create_state_machine(
            name="cp-dev-euw1-training", definition=json.dumps(definition()),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        status = train.main(["--state-machine-arn", machine, "--follow", "--poll-seconds", "0.05"])

    assert status == 1
    assert "FAILED: Failed" in capsys.readouterr().out


def test_the_train_command_needs_the_stack_output_or_an_arn(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from tools import train

    monkeypatch.setattr(train.subprocess, "run", lambda *a, **k: type("R", (), {
        "returncode": 255, "stdout": "", "stderr": "no Pulumi CLI"})())

    assert train.main(["--stack", "dev"]) == 2
    assert "cannot read output trainingStateMachineArn of stack dev: no Pulumi CLI" in capsys.readouterr().err
