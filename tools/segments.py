"""Write user segments now: the readers most likely to read given posts, or most drawn to a category.

    python -m tools.segments --stack dev --items post-1,post-2 [--follow]
    python -m tools.segments --stack dev --category sport [--follow]
    python -m tools.segments --stack dev [--newest 10]        # the newest posts, as the schedule does

It starts the stack's segments state machine (output ``segmentsStateMachineArn``, deployed with ``userSegments:
true``, or ``--state-machine-arn``), which writes the job's input to ``segments/input/<run>.jsonl``, runs an Amazon
Personalize batch segment job (Item-Affinity for posts, Item-Attribute-Affinity for a category) and notifies the
training topic when ``segments/output/<run>/`` holds the result (format: README, "User segments"). Exit status 0 when
started (with ``--follow``: when the run succeeded), 1 when AWS refused or the run failed, 2 for a problem before
anything ran; each failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

import boto3

from tools.train import UsageError, follow, machine_region, report_errors, stack_output

ITEM_ID = re.compile(r"^[!#-\[\]-~]{1,128}$")
CATEGORY = re.compile(r'^[^|"\\]{1,64}$')
MAX_ITEMS = 100


def request(items: str | None, category: str | None, newest: int | None) -> dict[str, Any]:
    """The segments machine's input; ``UsageError`` for anything the job would refuse."""
    if items is not None:
        ids = [i.strip() for i in items.split(",") if i.strip()]
        bad = [i for i in ids if not ITEM_ID.match(i)]
        if not ids or bad or len(ids) > MAX_ITEMS:
            raise UsageError(f"--items needs 1-{MAX_ITEMS} comma-separated item ids"
                             + (f"; not an item id: {bad[0]!r}" if bad else ""))
        return {"items": ids}
    if category is not None:
        if not CATEGORY.match(category):
            raise UsageError(f"--category must be 1-64 characters without |, \" or \\: {category!r}")
        return {"category": category}
    return {"newest": newest} if newest is not None else {}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.segments", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--state-machine-arn", help="instead of reading the stack's outputs")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--items", help="comma-separated post ids: the readers most likely to read them")
    which.add_argument("--category", help="a post category: the readers most drawn to it")
    which.add_argument("--newest", type=int, choices=range(1, MAX_ITEMS + 1), metavar="N",
                       help="the N newest posts of the items store (default 10, as the schedule)")
    parser.add_argument("--follow", action="store_true", help="show progress until the run ends")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    return parser


def _run(args: argparse.Namespace) -> int:
    payload = request(args.items, args.category, args.newest)
    machine = args.state_machine_arn or stack_output(args.stack, "segmentsStateMachineArn") or ""
    client = boto3.client("stepfunctions", region_name=machine_region(machine))
    name = f"segments-{datetime.now(tz=UTC):%Y%m%dT%H%M%SZ}"
    execution = client.start_execution(stateMachineArn=machine, name=name, input=json.dumps(payload))["executionArn"]
    print(f"started {execution}")
    if not args.follow:
        return 0
    result = follow(client, execution, args.poll_seconds)
    if result["status"] == "SUCCEEDED":
        output = json.loads(result.get("output") or "{}").get("job", {}).get("value", {})
        print(f"SUCCEEDED: {output.get('lines', '?')} segment(s) written under {output.get('output', '?')}")
        return 0
    print(f"{result['status']}: {result['finalState']} — {result.get('cause') or result.get('error') or ''}"
          .rstrip(" —"))
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return report_errors(lambda: _run(args))


if __name__ == "__main__":
    sys.exit(main())
