"""Offline policy evaluation: apply the pack to a synthesis the way the Pulumi analyzer does.

Resource policies see each resource's inputs; stack policies see every resource's outputs with parent, dependency
and property-dependency links resolved to objects. Values behind Pulumi's unknown sentinels raise
``UnknownValueError`` when read; like the analyzer, that turns the policy's verdict into an advisory
"can't run during preview" finding.
"""

from __future__ import annotations

import asyncio
import json
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

__all__ = ["POLICIES", "Finding", "PolicyConfigError", "evaluate", "load_policy_config", "mandatory",
           "validate_policy_config"]

# The levels `pulumi ... --policy-pack-config` accepts; "all" sets every policy's level, as in the CLI.
LEVELS = tuple(level.value for level in EnforcementLevel)
ALL_POLICIES = "all"


class PolicyConfigError(ValueError):
    """A policy pack configuration the CLI would refuse, or that would not do what it says."""


def _check_properties(policy: Policy, where: str, properties: Mapping[str, Any]) -> None:
    schema = policy.config_schema
    known = dict(schema.properties) if schema is not None else {}
    for name, value in properties.items():
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise PolicyConfigError(f"{where}: {policy.name} has no property {name!r} (properties: {allowed})")
        expected = known[name].get("type")
        if expected == "array" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise PolicyConfigError(f"{where}: {policy.name}.{name} must be a list of strings")


def validate_policy_config(config: Any, where: str = "policy configuration",
                           policies: Sequence[Policy] = POLICIES) -> dict[str, Any]:
    """``config`` when it names only known policies, levels and properties; else ``PolicyConfigError``."""
    if not isinstance(config, dict):
        raise PolicyConfigError(f"{where}: expected a JSON object of policy name → level or settings")
    by_name = {policy.name: policy for policy in policies}
    for name, entry in config.items():
        if name != ALL_POLICIES and name not in by_name:
            raise PolicyConfigError(f"{where}: unknown policy {name!r} (see the Policy pack table in README.md)")
        level = entry if isinstance(entry, str) else entry.get("enforcementLevel") if isinstance(entry, dict) else None
        if not isinstance(entry, str | dict):
            raise PolicyConfigError(f"{where}: {name} must be a level ({', '.join(LEVELS)}) or an object")
        if level is not None and level not in LEVELS:
            raise PolicyConfigError(f"{where}: {name} has unknown enforcement level {level!r} "
                                    f"(one of {', '.join(LEVELS)})")
        if isinstance(entry, dict):
            properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
            if name == ALL_POLICIES and properties:
                raise PolicyConfigError(f"{where}: {ALL_POLICIES} takes only an enforcement level")
            if name != ALL_POLICIES:
                _check_properties(by_name[name], where, properties)
    return config


def load_policy_config(file: Path) -> dict[str, Any]:
    """The validated configuration in ``file``; ``PolicyConfigError`` names the file and the problem."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyConfigError(f"{file}: cannot be read: {error.strerror or error}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{file}: invalid JSON at line {error.lineno}, column {error.colno}: "
                                f"{error.msg}") from None
    return validate_policy_config(config, str(file))


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
    if isinstance(overrides.get(ALL_POLICIES), str):
        level = EnforcementLevel(overrides[ALL_POLICIES])
    elif isinstance(overrides.get(ALL_POLICIES), dict) and "enforcementLevel" in overrides[ALL_POLICIES]:
        level = EnforcementLevel(overrides[ALL_POLICIES]["enforcementLevel"])
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
