"""User segments: the segments state machine executed under moto with the Personalize fake (input file, job, output
location, failures), its input rules, and the `tools.segments` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from common.catalog import Item
from common.segments import InvalidSegmentRequestError, segment_lines
from components.training_definition import segments_definition, training_definition
from tests.sfn_harness import ACCOUNT, REGION, FakePersonalize, Harness, harness
from tests.test_training_definition import config, plans
from tests.test_training_execution import BUCKET, aws, raw_events  # noqa: F401 - the aws fixture
from tools import segments

JOBS = f"arn:aws:personalize:{REGION}:{ACCOUNT}:batch-segment-job/"
SEGMENTS = config(bucket=BUCKET, poll_seconds=0, retry_seconds=1, surfaces=plans("for-you"), segments=True)


def solution(kind: str) -> str:
    return f"arn:aws:personalize:{REGION}:{ACCOUNT}:solution/cp-dev-euw1-{kind}-solution"


@pytest.fixture
def trained(aws: None) -> Iterator[Harness]:  # noqa: F811
    raw_events(users=40, per_user=30)
    with harness() as h:
        assert h.run(training_definition(SEGMENTS), name="train")["status"] == "SUCCEEDED"
        yield h


def body(key: str) -> list[dict[str, Any]]:
    text = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in text.splitlines()]


def test_training_trains_both_segment_solutions_with_automatic_training_off(trained: Harness) -> None:
    fake = trained.personalize
    for kind, recipe in (("item-affinity", "aws-item-affinity"),
                         ("item-attribute-affinity", "aws-item-attribute-affinity")):
        assert fake.resources[solution(kind)]["recipe"].endswith(f"/{recipe}")
        assert fake.resources[solution(kind)]["auto"] is False
        assert "latest" in fake.resources[solution(kind)]
    assert not any(arn.endswith("affinity-campaign") for arn in fake.resources)


def test_posts_make_an_item_affinity_job_from_the_documented_prefixes(trained: Harness) -> None:
    result = trained.run(segments_definition(SEGMENTS), name="seg-1",
                         execution_input=json.dumps({"items": ["post-1", "post-2", "post-1"]}))

    assert result["status"] == "SUCCEEDED", trained.entered_states(result)
    assert body("segments/input/seg-1.jsonl") == [{"itemId": "post-1"}, {"itemId": "post-2"}]
    job = trained.personalize.resources[f"{JOBS}cp-dev-euw1-seg-seg-1"]
    assert job["version"] == trained.personalize.resources[solution("item-affinity")]["latest"]
    assert job["input"] == f"s3://{BUCKET}/segments/input/seg-1.jsonl"
    assert job["output"] == {"path": f"s3://{BUCKET}/segments/output/seg-1/", "kmsKeyArn": SEGMENTS.key_arn}
    assert trained.notifications[-1]["message"] == (
        f"2 segment(s) (itemAffinity) written under s3://{BUCKET}/segments/output/seg-1/")


def test_a_category_makes_an_item_attribute_affinity_job(trained: Harness) -> None:
    result = trained.run(segments_definition(SEGMENTS), name="seg-2", execution_input='{"category": "sport"}')

    assert result["status"] == "SUCCEEDED"
    assert body("segments/input/seg-2.jsonl") == [{"itemAttributes": 'ITEMS.CATEGORY = "sport"'}]
    job = trained.personalize.resources[f"{JOBS}cp-dev-euw1-seg-seg-2"]
    assert job["version"] == trained.personalize.resources[solution("item-attribute-affinity")]["latest"]


def test_the_scheduled_run_takes_the_newest_posts_of_the_items_store(trained: Harness) -> None:
    s3 = boto3.client("s3")
    for n, created in enumerate((1_764_000_000, 1_764_100_000, 1_764_200_000)):
        item = Item(item_id=f"post-{n}", creation_timestamp=created)
        s3.put_object(Bucket=BUCKET, Key=item.by_time_key(), Body=json.dumps(item.document()).encode())

    result = trained.run(segments_definition(SEGMENTS), name="seg-3", execution_input='{"newest": 2}')

    assert result["status"] == "SUCCEEDED"
    assert body("segments/input/seg-3.jsonl") == [{"itemId": "post-2"}, {"itemId": "post-1"}]


def test_before_any_training_the_run_fails_and_says_why(aws: None) -> None:  # noqa: F811
    fake = FakePersonalize()
    fake.resources[solution("item-affinity")] = {"kind": "solution", "status": "ACTIVE", "auto": False,
                                                 "recipe": "arn:aws:personalize:::recipe/aws-item-affinity"}
    with harness(fake) as h:
        result = h.run(segments_definition(SEGMENTS), name="seg-4", execution_input='{"items": ["post-1"]}')

    assert result["status"] == "FAILED"
    assert "NotTrained" in h.notifications[-1]["message"]


def test_a_bad_request_fails_in_the_first_step(trained: Harness) -> None:
    result = trained.run(segments_definition(SEGMENTS), name="seg-5",
                         execution_input='{"items": ["a"], "category": "sport"}')

    assert result["status"] == "FAILED"
    assert "Segments failed in state Write segment input" in trained.notifications[-1]["message"]


@pytest.mark.parametrize(("request_", "problem"), [
    ({"items": ["a"], "category": "c"}, "not both"),
    ({"category": 'say "hi"'}, "category must be"),
    ({"items": []}, "items must be 1-100"),
    ({"items": ["has space"]}, "items must be 1-100"),
    ({}, "no posts yet"),
])
def test_segment_requests_are_checked(request_: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidSegmentRequestError, match=problem):
        segment_lines(request_, [])


# --- the command -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "problem"), [
    (["--items", ",,"], "--items needs 1-100 comma-separated item ids"),
    (["--items", "ok,not ok"], "not an item id: 'not ok'"),
    (["--category", "a|b"], "--category must be 1-64 characters"),
    (["--state-machine-arn", "arn:aws:lambda:eu-west-1:123456789012:function:x", "--items", "a"],
     "not a state machine ARN"),
])
def test_the_command_refuses_bad_arguments_in_one_line(argv: list[str], problem: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert segments.main(argv) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1


def test_the_command_needs_the_stack_output(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:

    monkeypatch.setattr("tools.train.subprocess.run", lambda *a, **k: type("R", (), {
        "returncode": 255, "stdout": "", "stderr": "no Pulumi CLI"})())

    assert segments.main(["--stack", "dev", "--items", "a"]) == 2
    assert "cannot read output segmentsStateMachineArn of stack dev: no Pulumi CLI" in capsys.readouterr().err


def test_the_command_starts_and_follows_a_run(trained: Harness, capsys: pytest.CaptureFixture[str]) -> None:
    machine = boto3.client("stepfunctions").create_state_machine(
        name="cp-dev-euw1-segments", definition=json.dumps(segments_definition(SEGMENTS)),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]

    status = segments.main(["--state-machine-arn", machine, "--items", "post-1,post-2", "--follow",
                            "--poll-seconds", "0.05"])

    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "SUCCEEDED: 2 segment(s) written under s3://" in printed


def test_the_command_reports_a_failed_run(aws: None, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    with harness():
        machine = boto3.client("stepfunctions").create_state_machine(
            name="cp-dev-euw1-segments", definition=json.dumps(segments_definition(SEGMENTS)),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        status = segments.main(["--state-machine-arn", machine, "--category", "sport", "--follow",
                                "--poll-seconds", "0.05"])

    assert status == 1
    assert "FAILED: Failed" in capsys.readouterr().out


def test_teardown_deletes_the_segment_solutions_too(trained: Harness) -> None:
    from components.training_definition import teardown_definition

    result = trained.run(teardown_definition(SEGMENTS), name="teardown")

    assert result["status"] == "SUCCEEDED", trained.entered_states(result)
    assert solution("item-affinity") not in trained.personalize.resources
    assert solution("item-attribute-affinity") not in trained.personalize.resources
