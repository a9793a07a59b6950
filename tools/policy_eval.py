"""Offline policy evaluation: apply the pack to a synthesis the way the Pulumi analyzer does.

Resource policies see each resource's inputs; stack policies see every resource's outputs with parent, dependency
and property-dependency links resolved to objects. Values behind Pulumi's unknown sentinels raise
``UnknownValueError`` when read; like the analyzer, that turns the policy's verdict into an advisory
"can't run during preview" finding.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from inspect import isawaitable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "policies") not in sys.path:
    sys.path.insert(0, str(ROOT / "policies"))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.policy import _NotApplicableError  # noqa: E402
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy  # noqa: E402

from clickstream_policies import POLICIES  # noqa: E402
from tools.synth import RegisteredResource, Synthesis  # noqa: E402

__all__ = ["POLICIES", "Finding", "evaluate", "mandatory"]


@dataclass(frozen=True)
class Finding:
    policy: str
    level: str  # "mandatory" | "advisory"
    message: str
    resource_type: str | None = None
    resource_name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _options(resource: RegisteredResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
                                 parent=resource.parent)


def _policy_config(policy: Policy, overrides: Mapping[str, Any]) -> tuple[EnforcementLevel, dict[str, Any]]:
    """The policy's enforcement level and properties: schema defaults, then the pack configuration's entry for it
    (a level such as "advisory", or an object with an optional "enforcementLevel"), as the CLI applies them."""
    level = policy.enforcement_level or EnforcementLevel.MANDATORY
    config: dict[str, Any] = {}
    schema = policy.config_schema
    if schema is not None:
        config.update({k: v["default"] for k, v in schema.properties.items() if "default" in v})
    entry = overrides.get(policy.name, {})
    if isinstance(entry, str):
        return EnforcementLevel(entry), config
    entry = dict(entry)
    if "enforcementLevel" in entry:
        level = EnforcementLevel(entry.pop("enforcementLevel"))
    config.update(entry)
    return level, config


def _run(validation: Any) -> None:
    if isawaitable(validation):
        asyncio.run(validation)  # type: ignore[arg-type]


def _stack_resources(synthesis: Synthesis) -> list[PolicyResource]:
    by_urn: dict[str, PolicyResource] = {}
    for r in synthesis.resources:
        by_urn[r.urn] = PolicyResource(r.type, unknown_checking_proxy(r.outputs), r.urn, r.name, _options(r), None,
                                       None, [], {})
    for r in synthesis.resources:
        resource = by_urn[r.urn]
        resource.parent = by_urn.get(r.parent or "")
        resource.dependencies = [by_urn[d] for d in r.dependencies if d in by_urn]
        resource.property_dependencies = {k: [by_urn[d] for d in v if d in by_urn]
                                          for k, v in r.property_dependencies.items()}
    return list(by_urn.values())


def evaluate(synthesis: Synthesis, policies: Sequence[Policy] = POLICIES,
             config: Mapping[str, Any] | None = None) -> list[Finding]:
    """Every violation and advisory the pack reports for ``synthesis`` under the pack configuration ``config``."""
    findings: list[Finding] = []
    for policy in policies:
        level, policy_config = _policy_config(policy, config or {})
        if level == EnforcementLevel.DISABLED:
            continue

        def report(message: str, urn: str | None = None, *, subject: RegisteredResource | None = None,
                   _policy: Policy = policy, _level: EnforcementLevel = level) -> None:
            target = subject or (synthesis.by_urn(urn) if urn else None)
            findings.append(Finding(_policy.name, _level.value, message, target.type if target else None,
                                    target.name if target else None))

        try:
            if isinstance(policy, ResourceValidationPolicy):
                for r in synthesis.resources:
                    args = ResourceValidationArgs(r.type, unknown_checking_proxy(r.inputs), r.urn, r.name,
                                                  _options(r), None, policy_config)

                    def report_resource(message: str, _urn: str | None = None, _r: RegisteredResource = r) -> None:
                        report(message, subject=_r)

                    try:
                        _run(policy.validate(args, report_resource))
                    except UnknownValueError as e:
                        findings.append(Finding(policy.name, "advisory",
                                                f"can't run policy during preview: {e.message}", r.type, r.name))
                    except _NotApplicableError:
                        pass
            elif isinstance(policy, StackValidationPolicy):
                stack_args = StackValidationArgs(_stack_resources(synthesis), policy_config)
                try:
                    _run(policy.validate(stack_args, report))
                except UnknownValueError as e:
                    findings.append(Finding(policy.name, "advisory", f"can't run policy during preview: {e.message}"))
        except _NotApplicableError:
            continue
    return findings


def mandatory(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == EnforcementLevel.MANDATORY.value]
