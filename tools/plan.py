"""Offline plan: synthesize a stack under mocks, print what it would create, and run the policy pack on it.

    python -m tools.plan --stack dev [--json plan.json] [--policy-config FILE]

Nothing is deployed and no AWS or Pulumi service is called. The stack is synthesized twice, as the policy pack meets
it: as a first ``pulumi preview`` sees it (values AWS computes, such as ARNs, are unknown, so a rule that must read
one is only advisory there) and as ``pulumi up`` sees each resource when it creates it (those values known). The
tree and outputs shown are the preview's. ``--policy-config`` (default ``policies/config.<stack>.json`` when it
exists) is the file given to ``pulumi up --policy-pack-config``; the plan says which file it applied. The repository's
stack files are also checked together: two stacks that may share an account and region must not both manage the API
Gateway account setting. Exit status: 0 when no mandatory policy is violated in either phase, 1 when one is (or the
stacks conflict), 2 when the stack cannot be synthesized (for example, invalid configuration) or the policy
configuration is invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.policy_eval import POLICIES, Finding, PolicyConfigError, evaluate, load_policy_config, mandatory
from tools.synth import ACCOUNT_ID, ROOT, RegisteredResource, Synthesis, stack_config, stack_names, synthesize_stack

PROJECT = "clickstream-personalization"
MANAGE_ACCOUNT_KEY = f"{PROJECT}:manageApiGatewayAccount"
# The AWS provider's own setting: a stack that declares its accounts can be told apart from one in another account.
ACCOUNTS_KEY = "aws:allowedAccountIds"


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
    advisory: dict[str, list[Finding]] = {}
    for f in findings:
        if f not in blocking:
            advisory.setdefault(f.policy, []).append(f)
    lines = [f"  {phase}: {len(blocking)} mandatory violation(s), "
             f"{sum(map(len, advisory.values()))} advisory finding(s)"]
    lines += [f"    [mandatory] {f.policy}: {f.message}" + (f" ({f.resource_type} {f.resource_name})"
                                                            if f.resource_name else "") for f in blocking]
    for policy, found in sorted(advisory.items()):
        unknown = [f for f in found if f.message.startswith("can't run policy during preview")]
        named = sorted({f.resource_name for f in unknown if f.resource_name})
        if unknown:
            lines.append(f"    [advisory] {policy}: {len(unknown)} resource(s) whose value is known only after "
                         f"deploy" + (f": {', '.join(named)}" if named else ""))
        lines += [f"    [advisory] {policy}: {f.message}" + (f" ({f.resource_type} {f.resource_name})"
                                                            if f.resource_name else "")
                  for f in found if f not in unknown]
    return lines


def display(value: Any) -> str:
    """A stack output as a reader wants it: JSON for structures, "(none)" for no value, no mock account id."""
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace(ACCOUNT_ID, "<account>")


@dataclass(frozen=True)
class StackConflict:
    stacks: tuple[str, str]
    region: str

    def message(self) -> str:
        first, second = self.stacks
        return (f"stacks {first} and {second} both manage the API Gateway account setting of {self.region} "
                f"(manageApiGatewayAccount): if they share an account, set "
                f"manageApiGatewayAccount: false in one, or declare {ACCOUNTS_KEY} in both")


def _accounts(config: dict[str, str]) -> frozenset[str] | None:
    raw = config.get(ACCOUNTS_KEY)
    if not raw:
        return None  # unknown offline: may be any account
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = [raw]
    return frozenset(str(a) for a in (parsed if isinstance(parsed, list) else [parsed]))


def api_gateway_account_conflicts(root: Path = ROOT) -> list[StackConflict]:
    """Pairs of stacks in one region, possibly one account, that both manage the API Gateway account setting.

    The account is unknown offline unless both stacks declare ``aws:allowedAccountIds``: disjoint lists mean two
    accounts; otherwise the stacks may share one.
    """
    managing: list[tuple[str, str, frozenset[str] | None]] = []
    for stack in stack_names(root):
        config = stack_config(stack, root, allow_secrets=True)  # other stacks may hold secrets
        if config.get(MANAGE_ACCOUNT_KEY, "true").strip().lower() != "false":
            managing.append((stack, config.get("aws:region", ""), _accounts(config)))
    conflicts = []
    for i, (first, region, accounts) in enumerate(managing):
        for second, other_region, other_accounts in managing[i + 1:]:
            apart = accounts is not None and other_accounts is not None and not accounts & other_accounts
            if region == other_region and not apart:
                conflicts.append(StackConflict((first, second), region))
    return conflicts


def render(synthesis: Synthesis, findings: dict[str, list[Finding]], policy_file: Path | None = None,
           conflicts: list[StackConflict] | None = None) -> str:
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
        "Stack outputs (<account> is the AWS account id, unknown offline):",
        *(f"  {name}: {display(value)}" for name, value in synthesis.outputs.items()),
        "",
        f"Policy pack ({len(POLICIES)} policies), configuration: {_relative(policy_file) if policy_file else 'none'}",
        *(line for phase, phase_findings in findings.items() for line in _findings_lines(phase, phase_findings)),
        "",
        "Stacks of this repository together:",
        *([f"  [error] {c.message()}" for c in conflicts] if conflicts else
          ["  no two stacks manage the API Gateway account setting of one region"]),
    ]
    return "\n".join(lines)


def _relative(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(ROOT))
    except ValueError:
        return str(file)


def plan_document(synthesis: Synthesis, findings: dict[str, list[Finding]], policy_file: Path | None = None,
                  conflicts: list[StackConflict] | None = None) -> dict[str, Any]:
    return {
        "stack": synthesis.stack,
        "mockAccountId": ACCOUNT_ID,
        "policyConfig": _relative(policy_file) if policy_file else None,
        "stackConflicts": [c.message() for c in conflicts or []],
        "resources": [{"type": r.type, "name": r.name, "urn": r.urn, "parent": r.parent, "custom": r.custom,
                       "inputs": r.inputs} for r in synthesis.resources],
        "outputs": synthesis.outputs,
        "findings": {phase: [f.as_dict() for f in phase_findings] for phase, phase_findings in findings.items()},
        "mandatoryViolations": sum(len(mandatory(f)) for f in findings.values()),
    }


def policy_config_file(stack: str, path: str | None, root: Path = ROOT) -> Path | None:
    """The file given to ``--policy-pack-config``: ``path``, else ``policies/config.<stack>.json`` if it exists."""
    if path:
        return Path(path)
    default = root / "policies" / f"config.{stack}.json"
    return default if default.is_file() else None


def policy_config(stack: str, path: str | None) -> dict[str, Any]:
    file = policy_config_file(stack, path)
    return load_policy_config(file) if file else {}


def _write(text: str) -> None:
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`, `| jq` that failed) closed the pipe: nothing left to say. Point stdout at devnull so
        # the interpreter's final flush does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default=os.environ.get("STACK", "dev"),
                        help="stack name (reads Pulumi.<stack>.yaml); default $STACK or dev")
    parser.add_argument("--json", metavar="FILE", help="also write the plan and findings as JSON ('-' for stdout)")
    parser.add_argument("--policy-config", "--policy-pack-config", metavar="FILE", dest="policy_config",
                        help="policy pack configuration, as given to the CLI (default policies/config.<stack>.json "
                             "when it exists)")
    args = parser.parse_args(argv)

    if args.stack not in stack_names():
        print(f"error: no stack file Pulumi.{args.stack}.yaml; stacks: {', '.join(stack_names())}", file=sys.stderr)
        return 2
    policy_file = policy_config_file(args.stack, args.policy_config)
    try:
        config = load_policy_config(policy_file) if policy_file else {}
    except PolicyConfigError as error:
        print(f"error: policy configuration {error}", file=sys.stderr)
        return 2
    try:
        preview = synthesize_stack(args.stack, preview=True)
        deployed = synthesize_stack(args.stack, preview=False)
        conflicts = [c for c in api_gateway_account_conflicts() if args.stack in c.stacks]
    except Exception as error:  # noqa: BLE001 - any failure to synthesize is reported, not traced back
        print(f"error: stack '{args.stack}' cannot be planned: {error}", file=sys.stderr)
        return 2
    findings = {"preview": evaluate(preview, config=config), "update": evaluate(deployed, config=config)}
    synthesis = preview
    document = json.dumps(plan_document(synthesis, findings, policy_file, conflicts), indent=2, default=str)
    if args.json == "-":
        _write(document)
    else:
        _write(render(synthesis, findings, policy_file, conflicts))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(document + "\n", encoding="utf-8")
    for conflict in conflicts:
        print(f"error: {conflict.message()}", file=sys.stderr)
    return 1 if conflicts or any(mandatory(f) for f in findings.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
