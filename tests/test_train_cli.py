"""`python -m tools.train` when the first hour goes wrong: no Pulumi CLI, no credentials, a malformed ARN, and the
teardown step that empties the versioned buckets so `pulumi destroy` can delete them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tools import train
from tools.synth import ROOT

REGION = "eu-west-1"
MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:cp-dev-euw1-training"


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # boto3's default session keeps the credentials an earlier test resolved.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def fake_pulumi(directory: Path, script: str) -> None:
    """A `pulumi` executable on PATH that answers `pulumi stack output <name>` as the script says."""
    exe = directory / "pulumi"
    exe.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_without_the_pulumi_cli_the_command_says_so(tmp_path: Path) -> None:
    # GIVEN a PATH without pulumi WHEN the README's command runs in a plain shell
    env = {**os.environ, "PATH": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-m", "tools.train", "--stack", "dev", "--follow"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)

    # THEN one line says what is missing and what to do instead, status 2
    assert result.returncode == 2
    assert one_error_line(result.stderr).startswith("error: the Pulumi CLI is not on PATH")
    assert "--state-machine-arn" in result.stderr


def test_a_stack_without_outputs_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake_pulumi(tmp_path, 'echo "error: no stack named \'dev\' found" >&2; exit 255')
    monkeypatch.setenv("PATH", str(tmp_path))

    assert train.main(["--stack", "dev"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line == ("error: cannot read output trainingStateMachineArn of stack dev: error: no stack named 'dev' "
                    "found (or pass --state-machine-arn)")


@pytest.mark.parametrize("arn", ["arn:aws:states:eu-west-1:123:stateMachine:x", "cp-dev-euw1-training",
                                 "arn:aws:lambda:eu-west-1:123456789012:function:x"])
def test_a_malformed_arn_is_one_line(arn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--state-machine-arn", arn]) == 2
    assert one_error_line(capsys.readouterr().err).startswith(f"error: not a state machine ARN: {arn!r}")


def test_a_malformed_arn_from_the_stack_output_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    fake_pulumi(tmp_path, "echo 'not-an-arn'")
    monkeypatch.setenv("PATH", str(tmp_path))

    assert train.main(["--stack", "dev"]) == 2
    assert one_error_line(capsys.readouterr().err).startswith("error: not a state machine ARN: 'not-an-arn'")


def test_without_credentials_the_command_says_so(no_credentials: None, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no AWS credentials anywhere WHEN a run is started THEN one line says so, status 2
    assert train.main(["--state-machine-arn", MACHINE]) == 2
    assert one_error_line(capsys.readouterr().err).startswith("error: no AWS credentials found")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def test_aws_refusing_the_call_is_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a well-formed ARN of a state machine that does not exist
    assert train.main(["--state-machine-arn", MACHINE]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("error: AWS refused StartExecution: StateMachineDoesNotExist")


def versioned_bucket(name: str, region: str = REGION) -> None:
    s3 = boto3.client("s3", region_name=region)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    for i in range(3):
        s3.put_object(Bucket=name, Key=f"events/part-{i}.gz", Body=b"v1")
        s3.put_object(Bucket=name, Key=f"events/part-{i}.gz", Body=b"v2")
    s3.delete_object(Bucket=name, Key="events/part-0.gz")  # a delete marker


def remaining(name: str, region: str = REGION) -> int:
    reply = boto3.client("s3", region_name=region).list_object_versions(Bucket=name)
    return len(reply.get("Versions", [])) + len(reply.get("DeleteMarkers", []))


def test_empty_buckets_lists_without_yes_and_deletes_nothing(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    versioned_bucket("cp-dev-euw1-raw-123456789012")

    status = train.main(["--teardown", "--empty-buckets", "--bucket", "cp-dev-euw1-raw-123456789012"])

    printed = capsys.readouterr().out
    assert status == 0
    assert "cp-dev-euw1-raw-123456789012: would delete 6 object version(s) and 1 delete marker(s)" in printed
    assert "run again with --yes" in printed
    assert remaining("cp-dev-euw1-raw-123456789012") == 7


def test_empty_buckets_with_yes_deletes_every_version_and_marker_then_the_bucket_can_go(
        aws: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the stack's raw bucket and its replica in another region, read from the stack outputs
    versioned_bucket("cp-prod-euc1-raw-123456789012", "eu-central-1")
    versioned_bucket("cp-prod-euc1-raw-replica-123456789012", "eu-west-1")
    fake_pulumi(tmp_path, 'case "$3" in rawBucket) echo cp-prod-euc1-raw-123456789012;; '
                          'rawReplicaBucket) echo cp-prod-euc1-raw-replica-123456789012;; *) exit 1;; esac')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

    status = train.main(["--stack", "prod-eu", "--teardown", "--empty-buckets", "--yes"])

    assert status == 0, capsys.readouterr().err
    assert "emptied 2 bucket(s)" in capsys.readouterr().out
    assert remaining("cp-prod-euc1-raw-123456789012", "eu-central-1") == 0
    assert remaining("cp-prod-euc1-raw-replica-123456789012") == 0
    boto3.client("s3", region_name="eu-central-1").delete_bucket(Bucket="cp-prod-euc1-raw-123456789012")


def test_empty_buckets_deletes_more_than_one_batch(aws: None, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(train, "DELETE_BATCH", 2)
    versioned_bucket("b-small-batches")

    assert train.main(["--teardown", "--empty-buckets", "--yes", "--bucket", "b-small-batches"]) == 0
    assert remaining("b-small-batches") == 0


def test_empty_buckets_of_a_missing_bucket_is_one_line(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main(["--teardown", "--empty-buckets", "--yes", "--bucket", "no-such-bucket-here"]) == 1
    assert one_error_line(capsys.readouterr().err).startswith("error: AWS refused GetBucketLocation: NoSuchBucket")


@pytest.mark.parametrize("argv", [["--empty-buckets"], ["--yes"], ["--teardown", "--bucket", "b"]])
def test_empty_buckets_belongs_to_the_teardown(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        train.main(argv)
    assert exit_.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
