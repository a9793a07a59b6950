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
from tests.test_training_definition import config, plans

BUCKET = f"cp-dev-euw1-raw-{ACCOUNT}"
METRIC = "normalized_discounted_cumulative_gain_at_25"
CAMPAIGN = f"arn:aws:personalize:{REGION}:{ACCOUNT}:campaign/cp-dev-euw1-campaign"
SURFACES = ("for-you", "related", "trending", "ranking")
NDCG10 = "normalized_discounted_cumulative_gain_at_10"


def campaign(surface: str) -> str:
    return CAMPAIGN if surface == "for-you" else CAMPAIGN.replace("-campaign", f"-{surface}-campaign")


def solution(surface: str) -> str:
    name = "cp-dev-euw1-solution" if surface == "for-you" else f"cp-dev-euw1-{surface}-solution"
    return f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution/{name}"


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


def all_surfaces(**overrides: Any) -> dict[str, Any]:
    return definition(surfaces=plans(*SURFACES, metadata=("ranking",)), **overrides)


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
    assert "Notify serving (for-you)" in run.entered_states(result)
    assert parameter("campaign-arn") == CAMPAIGN
    assert parameter("tracking-id") == "tracking-cp-dev-euw1-tracker"
    assert json.loads(parameter("filter-arns") or "{}") == {
        "unread": f"arn:aws:personalize:{REGION}:{ACCOUNT}:filter/cp-dev-euw1-unread"}
    assert parameter("items-dataset-arn") == f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/cp-dev-euw1/ITEMS"
    assert json.loads(parameter("metrics") or "{}")[METRIC] == 0.3
    fake = run.personalize
    assert fake.resources[CAMPAIGN]["version"].endswith("/v1")
    assert fake.created["import"] == 1  # no items in the store yet: only interactions imported
    assert [n["subject"] for n in run.notifications] == ["Personalize training: new for-you model serving",
                                                         "Personalize training: run finished"]
    assert json.loads(parameter("campaign-arns") or "{}") == {"for-you": CAMPAIGN}
    assert fake.resources[solution("for-you")]["auto"] is False  # automatic training explicitly off
    assert run.invocations["map"] >= 1 and run.invocations["reduce"] == 4 and run.invocations["summarize"] == 1


def test_insufficient_data_ends_well_and_creates_nothing(run: Harness) -> None:
    raw_events(users=10, per_user=5)

    result = run.run(definition())

    assert result["status"] == "SUCCEEDED"
    assert run.entered_states(result)[-1] == "Insufficient data"
    assert run.personalize.calls == []
    assert "Not enough data to train: 50 interactions" in run.notifications[-1]["message"]


@pytest.mark.parametrize(("kind", "state"), [("import", "Interactions imported"),
                                             ("solution-version", "Trained (for-you)")])
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
    assert "Notify not promoted (for-you)" in h.entered_states(second)
    assert fake.resources[CAMPAIGN]["version"].endswith("/v1")  # the campaign keeps the better version
    assert "was not promoted" in h.notifications[-2]["message"]


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
    assert "Training failed in state Solution (for-you)" in h.notifications[0]["message"]


def test_every_surface_trains_its_recipe_and_is_published(run: Harness) -> None:
    raw_events(users=40, per_user=30)

    result = run.run(all_surfaces())

    assert result["status"] == "SUCCEEDED", run.entered_states(result)
    fake = run.personalize
    assert {s: fake.resources[solution(s)]["recipe"].rsplit("/", 1)[1] for s in SURFACES} == {
        "for-you": "aws-user-personalization-v2", "related": "aws-similar-items", "trending": "aws-trending-now",
        "ranking": "aws-personalized-ranking-v2"}
    assert {fake.resources[solution(s)]["auto"] for s in SURFACES} == {False}
    assert json.loads(parameter("campaign-arns") or "{}") == {s: campaign(s) for s in SURFACES}
    assert parameter("campaign-arn") == CAMPAIGN  # still published for functions deployed before the surfaces
    for s in SURFACES:
        served = fake.resources[campaign(s)]
        assert served["version"].startswith(solution(s) + "/"), s
        assert served["config"] == {"syncWithLatestSolutionVersion": False,
                                    "enableMetadataWithRecommendations": s == "ranking"}
    assert fake.created["campaign"] == 4  # within the quota of 5 campaigns per dataset group
    assert sum(1 for n in run.notifications if n["subject"].endswith("model serving")) == 4


def test_a_surface_whose_metric_regresses_keeps_its_version_while_another_is_promoted(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize(surface_metrics={
        "cp-dev-euw1-related-solution": [{NDCG10: 0.40}, {NDCG10: 0.20}],  # worse: not promoted
        "cp-dev-euw1-ranking-solution": [{NDCG10: 0.30}, {NDCG10: 0.35}],  # better: promoted
    })
    with harness(fake) as h:
        h.run(all_surfaces(), name="run-1")
        first = {s: fake.resources[campaign(s)]["version"] for s in SURFACES}
        second = h.run(all_surfaces(), name="run-2")

    assert second["status"] == "SUCCEEDED"
    states = h.entered_states(second)
    assert "Notify not promoted (related)" in states and "Notify serving (ranking)" in states
    assert fake.resources[campaign("related")]["version"] == first["related"]
    assert fake.resources[campaign("ranking")]["version"] != first["ranking"]
    # Trending-Now has no offline metrics and finds new trends by itself: trained once, never again
    assert fake.resources[campaign("trending")]["version"] == first["trending"]
    assert "Train (trending)" not in states
    message = next(n["message"] for n in h.notifications if "related solution version" in n["message"])
    assert f"{NDCG10} 0.2000 vs 0.4000" in message


def test_automatic_mode_hands_training_to_personalize_and_campaigns_follow_its_latest_version(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize()
    with harness(fake) as h:
        first = h.run(all_surfaces(mode="automatic", auto_training_days=3), name="run-1")
        versions = fake.created["solution-version"]
        second = h.run(all_surfaces(mode="automatic", auto_training_days=3), name="run-2")

    assert first["status"] == second["status"] == "SUCCEEDED", h.entered_states(first)
    for s in SURFACES:
        assert fake.resources[solution(s)]["auto"] is True
        assert fake.resources[solution(s)]["config"] == {"autoTrainingConfig": {"schedulingExpression": "rate(3 days)"}}
        assert fake.resources[campaign(s)]["version"] == f"{solution(s)}/$LATEST"
        assert fake.resources[campaign(s)]["config"]["syncWithLatestSolutionVersion"] is True
    assert versions == 4 and fake.created["solution-version"] == 4  # the second run trains nothing itself
    assert not any(name.startswith("Compare") for name in h.entered_states(first))


def test_switching_modes_updates_the_existing_solutions_and_campaigns(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize()
    with harness(fake) as h:
        h.run(all_surfaces(mode="automatic"), name="run-1")
        back = h.run(all_surfaces(), name="run-2")

    assert back["status"] == "SUCCEEDED", h.entered_states(back)
    assert {fake.resources[solution(s)]["auto"] for s in SURFACES} == {False}
    assert fake.created["solution-update"] == 4
    for s in ("for-you", "related", "ranking"):  # gated again: each campaign serves a version the gate chose
        assert not fake.resources[campaign(s)]["version"].endswith("$LATEST")


def test_a_solution_made_with_personalizes_default_gets_automatic_training_turned_off(aws: None) -> None:
    raw_events(users=40, per_user=30)
    fake = FakePersonalize()
    fake.resources[solution("for-you")] = {"kind": "solution", "status": "ACTIVE", "auto": True, "config": {},
                                           "recipe": "arn:aws:personalize:::recipe/aws-user-personalization-v2"}
    with harness(fake) as h:
        result = h.run(definition())

    assert result["status"] == "SUCCEEDED", h.entered_states(result)
    assert "Set training mode (for-you)" in h.entered_states(result)
    assert fake.resources[solution("for-you")]["auto"] is False


def test_an_items_dataset_with_the_first_schema_moves_to_the_one_with_title_and_url(run: Harness) -> None:
    raw_events(users=40, per_user=30)
    run.run(definition(), name="run-1")
    items = f"arn:aws:personalize:{REGION}:{ACCOUNT}:dataset/cp-dev-euw1/ITEMS"
    fake = run.personalize
    fake.resources[items]["schema"] = f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/cp-dev-euw1-items"
    fake.resources[f"arn:aws:personalize:{REGION}:{ACCOUNT}:schema/cp-dev-euw1-items"] = {"kind": "schema",
                                                                                         "status": "ACTIVE"}

    result = run.run(definition(), name="run-2")

    assert result["status"] == "SUCCEEDED"
    assert fake.resources[items]["schema"].endswith(":schema/cp-dev-euw1-items-v2")
    assert fake.created["dataset-update"] == 1


def test_teardown_deletes_every_surface(run: Harness) -> None:
    raw_events(users=40, per_user=30)
    run.run(all_surfaces(), name="train")

    teardown = teardown_definition(config(bucket=BUCKET, poll_seconds=0, surfaces=plans(*SURFACES)))
    first = run.run(teardown, name="teardown-1")
    again = run.run(teardown, name="teardown-2")

    assert first["status"] == again["status"] == "SUCCEEDED", run.entered_states(first)
    assert {r["kind"] for r in run.personalize.resources.values()} <= {"import", "solution-version"}
    assert parameter("campaign-arns") is None and parameter("campaign-arn") is None


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

    monkeypatch.setattr("tools.train.subprocess.run", lambda *a, **k: type("R", (), {
        "returncode": 255, "stdout": "", "stderr": "no Pulumi CLI"})())

    assert train.main(["--stack", "dev"]) == 2
    assert "cannot read output trainingStateMachineArn of stack dev: no Pulumi CLI" in capsys.readouterr().err
