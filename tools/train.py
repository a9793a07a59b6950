"""Start a training (or teardown) run of a stack and follow it until it ends; empty its buckets before destroy.

    python -m tools.train --stack dev [--follow] [--teardown]
    python -m tools.train --stack dev --teardown --empty-buckets [--yes]

The state machine's ARN comes from the stack's outputs (``pulumi stack output``), or ``--state-machine-arn``. AWS
credentials and region come from the usual AWS configuration. With ``--follow`` it prints the state the run is in
and the elapsed time until it ends, then the outcome; the exit status is 0 only when the run succeeded.

``--empty-buckets`` (with ``--teardown``) deletes every object version and delete marker of the stack's buckets
(``rawBucket``, ``rawReplicaBucket``, or ``--bucket``) so that ``pulumi destroy`` can delete the versioned buckets.
Without ``--yes`` it only lists what it would delete. Exit status 2: a problem before anything ran (no Pulumi CLI,
no stack output, no credentials, a malformed ARN); 1: AWS refused a call, or the run did not succeed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

OUTCOMES = {"Trained": "every surface trained; its notification says whether the new version serves (metric gate)",
            "Insufficient data": "not enough data yet: nothing created in Personalize",
            "Deleted": "every Personalize resource is deleted"}
STATE_MACHINE_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z]{2}(-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"stateMachine:[A-Za-z0-9_-]{1,80}")
BUCKET_OUTPUTS = ("rawBucket", "rawReplicaBucket")
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class UsageError(Exception):
    """Something to fix before anything runs: exit status 2 with this one line."""


def stack_output(stack: str, name: str, *, required: bool = True, instead: str = "--state-machine-arn") -> str | None:
    try:
        result = subprocess.run(["pulumi", "stack", "output", name, "--stack", stack], capture_output=True,
                                text=True, check=False, timeout=120)
    except FileNotFoundError:
        raise UsageError("the Pulumi CLI is not on PATH: install it (see README, First hour on AWS) or pass "
                         "--state-machine-arn / --bucket") from None
    value = result.stdout.strip()
    if result.returncode != 0 or value in ("", "null"):  # an output of None prints nothing or null
        if not required:
            return None
        reason = (result.stderr.strip().splitlines() or ["empty"])[-1]
        raise UsageError(f"cannot read output {name} of stack {stack}: {reason} (or pass {instead})")
    return value


def machine_region(arn: str) -> str:
    """The region of a state machine ARN; ``UsageError`` when it is not one."""
    match = STATE_MACHINE_ARN.fullmatch(arn)
    if match is None:
        raise UsageError(f"not a state machine ARN: {arn!r} (expected arn:aws:states:<region>:<account>:"
                         "stateMachine:<name>)")
    return match.group("region")


def current_state(client: Any, execution_arn: str) -> str | None:
    """The last state the run entered."""
    state = None
    for page in client.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for event in page["events"]:
            if "stateEnteredEventDetails" in event:
                state = event["stateEnteredEventDetails"]["name"]
    return state


def follow(client: Any, execution_arn: str, poll_seconds: float, out: Callable[[str], None] = print,
           clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    started, last = clock(), None
    while True:
        described: dict[str, Any] = client.describe_execution(executionArn=execution_arn)
        state = current_state(client, execution_arn)
        if state != last:
            out(f"[{clock() - started:7.1f}s] {state}")
            last = state
        if described["status"] != "RUNNING":
            return {**described, "finalState": state}
        time.sleep(poll_seconds)


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    delete_marker: bool


def versions(s3: Any, bucket: str) -> Iterator[Version]:
    """Every object version and delete marker in ``bucket``."""
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            yield Version(v["Key"], v["VersionId"], False)
        for m in page.get("DeleteMarkers", []):
            yield Version(m["Key"], m["VersionId"], True)


def bucket_region(s3: Any, bucket: str) -> str:
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return str(location or "us-east-1")  # us-east-1 answers an empty constraint


def empty_bucket(s3: Any, bucket: str, *, confirmed: bool, out: Callable[[str], None] = print) -> int:
    """Delete (or, unconfirmed, count) every version and delete marker of ``bucket``; the number found."""
    found = list(versions(s3, bucket))
    markers = sum(v.delete_marker for v in found)
    verb = "deleting" if confirmed else "would delete"
    out(f"{bucket}: {verb} {len(found) - markers} object version(s) and {markers} delete marker(s)")
    if not confirmed:
        for v in found[:20]:
            out(f"  {'marker ' if v.delete_marker else 'version'} {v.key} ({v.version_id})")
        if len(found) > 20:
            out(f"  ... and {len(found) - 20} more")
        return len(found)
    for start in range(0, len(found), DELETE_BATCH):
        batch = found[start:start + DELETE_BATCH]
        reply = s3.delete_objects(Bucket=bucket, Delete={"Quiet": True, "Objects": [
            {"Key": v.key, "VersionId": v.version_id} for v in batch]})
        if reply.get("Errors"):
            first = reply["Errors"][0]
            raise RuntimeError(f"{bucket}: {len(reply['Errors'])} version(s) not deleted, e.g. {first.get('Key')}: "
                               f"{first.get('Code')} {first.get('Message', '')}".rstrip())
    return len(found)


def empty_buckets(buckets: list[str], *, confirmed: bool, out: Callable[[str], None] = print) -> int:
    total = 0
    for bucket in buckets:
        region = bucket_region(boto3.client("s3"), bucket)
        total += empty_bucket(boto3.client("s3", region_name=region), bucket, confirmed=confirmed, out=out)
    if not confirmed:
        out(f"dry run: {total} version(s) and marker(s) found; run again with --yes to delete them")
    else:
        out(f"emptied {len(buckets)} bucket(s): `pulumi destroy` can delete them now")
    return total


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--teardown", action="store_true", help="delete the stack's Personalize resources instead")
    parser.add_argument("--state-machine-arn", help="instead of reading the stack's outputs")
    parser.add_argument("--follow", action="store_true", help="show progress until the run ends")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    parser.add_argument("--empty-buckets", action="store_true",
                        help="with --teardown: delete every object version of the stack's buckets (a dry-run "
                             "listing unless --yes); starts no state machine")
    parser.add_argument("--bucket", action="append", default=[],
                        help="with --empty-buckets: this bucket instead of the stack's outputs (repeatable)")
    parser.add_argument("--yes", action="store_true", help="with --empty-buckets: really delete")
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.empty_buckets:
        buckets = args.bucket or [
            b for name in BUCKET_OUTPUTS
            if (b := stack_output(args.stack, name, required=name == "rawBucket", instead="--bucket"))]
        empty_buckets(buckets, confirmed=args.yes)
        return 0
    output = "teardownStateMachineArn" if args.teardown else "trainingStateMachineArn"
    machine = args.state_machine_arn or stack_output(args.stack, output) or ""
    client = boto3.client("stepfunctions", region_name=machine_region(machine))
    name = f"{'teardown' if args.teardown else 'manual'}-{datetime.now(tz=UTC):%Y%m%dT%H%M%SZ}"
    execution = client.start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
    print(f"started {execution}")
    if not args.follow:
        return 0
    result = follow(client, execution, args.poll_seconds)
    detail = OUTCOMES.get(result["finalState"] or "", result.get("error") or "")
    print(f"{result['status']}: {result['finalState']} — {detail}".rstrip(" —"))
    return 0 if result["status"] == "SUCCEEDED" else 1


def report_errors(run: Callable[[], int]) -> int:
    """``run``'s status, or one ``error:`` line and 2 (the user can fix it) or 1 (AWS or the run failed)."""
    try:
        return run()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print("error: no AWS credentials found: configure them (aws configure / AWS_PROFILE / aws sso login) "
              "for the stack's account", file=sys.stderr)
        return 2
    except NoRegionError:
        print("error: no AWS region configured (set AWS_REGION or pass --state-machine-arn)", file=sys.stderr)
        return 2
    except ClientError as error:
        info = error.response.get("Error", {})
        print(f"error: AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message', '')}".rstrip(),
              file=sys.stderr)
        return 1
    except (BotoCoreError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the run goes on in AWS (see the Step Functions console)", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.empty_buckets or args.yes) and not args.teardown:
        parser.error("--empty-buckets and --yes belong to the teardown: add --teardown")
    if args.bucket and not args.empty_buckets:
        parser.error("--bucket needs --empty-buckets")
    return report_errors(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
