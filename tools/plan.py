"""Offline plan: synthesize a stack under mocks, print what it would create, and run the policy pack on it.

    python -m tools.plan --stack dev [--json plan.json] [--policy-config FILE]

Nothing is deployed and no AWS or Pulumi service is called. The stack is synthesized twice, as the policy pack meets
it: as a first ``pulumi preview`` sees it (values AWS computes, such as ARNs, are unknown, so a rule that must read
one is only advisory there) and as ``pulumi up`` sees each resource when it creates it (those values known). The
tree and outputs shown are the preview's. ``--policy-config`` (default ``policies/config.<stack>.json`` when it
exists) is the file given to ``pulumi up --policy-pack-config``. Exit status: 0 when no mandatory policy is violated
in either phase, 1 when one is, 2 when the stack cannot be synthesized (for example, invalid configuration).
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
from tools.synth import ROOT, RegisteredResource, Synthesis, stack_names, synthesize_stack


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


def _findings_lines(phase: str, findings: list[Finding]) -> list[str]:
    blocking = mandatory(findings)
    advisory = Counter(f.policy for f in findings if f not in blocking)
    return [
        f"  {phase}: {len(blocking)} mandatory violation(s), {sum(advisory.values())} advisory finding(s)",
        *(f"    [mandatory] {f.policy}: {f.message}" + (f" ({f.resource_type} {f.resource_name})"
                                                       if f.resource_name else "") for f in blocking),
        *(f"    [advisory] {policy}: {count} resource(s) whose value is known only after deploy"
          for policy, count in sorted(advisory.items())),
    ]


def render(synthesis: Synthesis, findings: dict[str, list[Finding]]) -> str:
    custom = [r for r in synthesis.resources if r.custom]
    components = [r for r in synthesis.resources if not r.custom]
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
        f"Policy pack ({len(POLICIES)} policies):",
        *(line for phase, phase_findings in findings.items() for line in _findings_lines(phase, phase_findings)),
    ]
    return "\n".join(lines)


def plan_document(synthesis: Synthesis, findings: dict[str, list[Finding]]) -> dict[str, Any]:
    return {
        "stack": synthesis.stack,
        "resources": [{"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent, "custom": r.custom,
                       "inputs": r.inputs} for r in synthesis.resources],
        "outputs": synthesis.outputs,
        "findings": {phase: [f.as_dict() for f in phase_findings] for phase, phase_findings in findings.items()},
        "mandatoryViolations": sum(len(mandatory(f)) for f in findings.values()),
    }


def policy_config(stack: str, path: str | None) -> dict[str, Any]:
    file = Path(path) if path else ROOT / "policies" / f"config.{stack}.json"
    if path is None and not file.is_file():
        return {}
    config: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"),
                        help="stack name (reads Pulumi.<stack>.yaml); default $STACK or dev")
    parser.add_argument("--json", metavar="FILE", help="also write the plan and findings as JSON ('-' for stdout)")
    parser.add_argument("--policy-config", metavar="FILE",
                        help="policy pack configuration (default policies/config.<stack>.json when it exists)")
    args = parser.parse_args(argv)

    if args.stack not in stack_names():
        print(f"error: no stack file Pulumi.{args.stack}.yaml; stacks: {', '.join(stack_names())}", file=sys.stderr)
        return 2
    try:
        config = policy_config(args.stack, args.policy_config)
        preview = synthesize_stack(args.stack, preview=True)
        deployed = synthesize_stack(args.stack, preview=False)
    except Exception as error:  # noqa: BLE001 - any failure to synthesize is reported, not traced back
        print(f"error: stack '{args.stack}' cannot be planned: {error}", file=sys.stderr)
        return 2
    findings = {"preview": evaluate(preview, config=config), "update": evaluate(deployed, config=config)}
    synthesis = preview
    if args.json == "-":
        print(json.dumps(plan_document(synthesis, findings), indent=2, default=str))
    else:
        print(render(synthesis, findings))
        if args.json:
            Path(args.json).write_text(json.dumps(plan_document(synthesis, findings), indent=2, default=str) + "\n",
                                       encoding="utf-8")
    return 1 if any(mandatory(f) for f in findings.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
