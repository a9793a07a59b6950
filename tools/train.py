"""Start a training (or teardown) run of a stack and follow it until it ends.

    python -m tools.train --stack dev [--follow] [--teardown]

The state machine's ARN comes from the stack's outputs (``pulumi stack output``), or ``--state-machine-arn``. AWS
credentials and region come from the usual AWS configuration. With ``--follow`` it prints the state the run is in
and the elapsed time until it ends, then the outcome; the exit status is 0 only when the run succeeded.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3

OUTCOMES = {"Trained and promoted": "a new model serves the campaign",
            "Not promoted": "trained, but the current model is kept (metric gate)",
            "Insufficient data": "not enough data yet: nothing created in Personalize",
            "Deleted": "every Personalize resource is deleted"}


def stack_output(stack: str, name: str) -> str:
    result = subprocess.run(["pulumi", "stack", "output", name, "--stack", stack], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"cannot read output {name} of stack {stack}: {result.stderr.strip() or 'empty'} "
                         "(or pass --state-machine-arn)")
    return result.stdout.strip()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--teardown", action="store_true", help="delete the stack's Personalize resources instead")
    parser.add_argument("--state-machine-arn", help="instead of reading the stack's outputs")
    parser.add_argument("--follow", action="store_true", help="show progress until the run ends")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    output = "teardownStateMachineArn" if args.teardown else "trainingStateMachineArn"
    machine = args.state_machine_arn or stack_output(args.stack, output)
    client = boto3.client("stepfunctions", region_name=machine.split(":")[3])
    name = f"{'teardown' if args.teardown else 'manual'}-{datetime.now(tz=UTC):%Y%m%dT%H%M%SZ}"
    execution = client.start_execution(stateMachineArn=machine, name=name, input="{}")["executionArn"]
    print(f"started {execution}")
    if not args.follow:
        return 0
    result = follow(client, execution, args.poll_seconds)
    detail = OUTCOMES.get(result["finalState"] or "", result.get("error") or "")
    print(f"{result['status']}: {result['finalState']} — {detail}".rstrip(" —"))
    return 0 if result["status"] == "SUCCEEDED" else 1


if __name__ == "__main__":
    sys.exit(main())
