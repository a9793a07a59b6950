"""Offline plan: synthesize a stack under mocks, print what it would create, and run the policy pack on it.

    python -m tools.plan --stack dev [--json plan.json] [--deployed]

Nothing is deployed and no AWS or Pulumi service is called. By default the stack is synthesized as a first
``pulumi preview`` sees it (values computed by AWS are unknown); ``--deployed`` fills them in as after an update.
Exit status: 0 when no mandatory policy is violated, 1 when one is, 2 when the stack cannot be synthesized (for
example, invalid configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tools.policy_eval import POLICIES, Finding, evaluate, mandatory
from tools.synth import RegisteredResource, Synthesis, stack_names, synthesize_stack


def _tree(synthesis: Synthesis) -> list[str]:
    by_parent: dict[str | None, list[RegisteredResource]] = {}
    urns = {r.urn for r in synthesis.resources}
    for r in synthesis.resources:
        by_parent.setdefault(r.parent if r.parent in urns else None, []).append(r)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for r in by_parent.get(parent, []):
            lines.append(f"{'  ' * depth}{'+' if r.custom else '*'} {r.type}  {r.name}")
            walk(r.urn, depth + 1)

    walk(None, 1)
    return lines


def render(synthesis: Synthesis, findings: list[Finding]) -> str:
    custom = [r for r in synthesis.resources if r.custom]
    components = [r for r in synthesis.resources if not r.custom]
    blocking = mandatory(findings)
    lines = [
        f"Offline plan of stack '{synthesis.stack}' (under Pulumi mocks: nothing is deployed)",
        "",
        f"Resources ({len(custom)} to create, {len(components)} components; '*' component, '+' resource):",
        *_tree(synthesis),
        "",
        "Counts by type:",
        *(f"  {count:3d}  {type_}" for type_, count in sorted(Counter(r.type for r in custom).items())),
        "",
        "Stack outputs:",
        *(f"  {name}: {value}" for name, value in synthesis.outputs.items()),
        "",
        f"Policy pack ({len(POLICIES)} policies): {len(blocking)} mandatory violation(s), "
        f"{len(findings) - len(blocking)} advisory finding(s)",
        *(f"  [{f.level}] {f.policy}: {f.message}" + (f" ({f.resource_type} {f.resource_name})" if f.resource_name
                                                      else "") for f in findings),
    ]
    return "\n".join(lines)


def plan_document(synthesis: Synthesis, findings: list[Finding]) -> dict[str, Any]:
    return {
        "stack": synthesis.stack,
        "resources": [{"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent, "custom": r.custom,
                       "inputs": r.inputs} for r in synthesis.resources],
        "outputs": synthesis.outputs,
        "findings": [f.as_dict() for f in findings],
        "mandatoryViolations": len(mandatory(findings)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"),
                        help="stack name (reads Pulumi.<stack>.yaml); default $STACK or dev")
    parser.add_argument("--json", metavar="FILE", help="also write the plan and findings as JSON ('-' for stdout)")
    parser.add_argument("--deployed", action="store_true",
                        help="fill in values AWS computes (ARNs, ids) instead of leaving them unknown")
    args = parser.parse_args(argv)

    if args.stack not in stack_names():
        print(f"error: no stack file Pulumi.{args.stack}.yaml; stacks: {', '.join(stack_names())}", file=sys.stderr)
        return 2
    try:
        synthesis = synthesize_stack(args.stack, preview=not args.deployed)
    except Exception as error:  # noqa: BLE001 - any failure to synthesize is reported, not traced back
        print(f"error: stack '{args.stack}' cannot be synthesized: {error}", file=sys.stderr)
        return 2
    findings = evaluate(synthesis)
    if args.json == "-":
        print(json.dumps(plan_document(synthesis, findings), indent=2, default=str))
    else:
        print(render(synthesis, findings))
        if args.json:
            Path(args.json).write_text(json.dumps(plan_document(synthesis, findings), indent=2, default=str) + "\n",
                                       encoding="utf-8")
    return 1 if mandatory(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
