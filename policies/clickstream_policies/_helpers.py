"""Small helpers shared by the rules; they read properties the way the analyzer hands them over."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.policy import StackValidation
from pulumi_policy.proxy import UnknownValueError

from . import _documents

ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]


UNKNOWN = object()
"""What ``peek`` returns for a value that is only known after deploy (an input wired to another resource)."""


def peek(props: Mapping[str, Any], key: str) -> Any:
    """The value at ``key``, None when absent, or ``UNKNOWN``, without raising during preview.

    Iterating the keys does not touch values, so presence checks stay decisive while values are unknown.
    """
    if key not in list(props):
        return None
    try:
        return props[key]
    except UnknownValueError:
        return UNKNOWN


def is_set(props: Mapping[str, Any], key: str) -> bool:
    """True when ``key`` holds a non-empty value or one known only after deploy."""
    value = peek(props, key)
    if value is UNKNOWN:
        return True
    return value is not None and not (isinstance(value, (str, Sequence, Mapping)) and len(value) == 0)


def uses_customer_key(props: Mapping[str, Any], key: str, aws_managed_alias: str) -> bool:
    """``key`` names a KMS key (possibly known only after deploy) other than the service's AWS-managed alias."""
    return is_set(props, key) and peek(props, key) != aws_managed_alias


def resource_policy(name: str, description: str, resource_type: str, check: ResourceCheck) -> ResourceValidationPolicy:
    """A resource policy that runs ``check`` on resources of one type only."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type == resource_type:
            check(args, report_violation)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def attached(resources: Sequence[PolicyResource], target: PolicyResource, resource_type: str,
             prop: str = "bucket") -> list[PolicyResource]:
    """Resources of ``resource_type`` whose ``prop`` is wired to ``target`` (followed through property dependencies,
    so it works while ids are still unknown)."""
    return [r for r in resources
            if r.resource_type == resource_type and any(d is target for d in r.property_dependencies.get(prop, []))]


def stack_policy(name: str, description: str, validate: StackValidation) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate)


def customer_key_rule(name: str, description: str, resource_type: str, prop: str, aws_managed_alias: str,
                      noun: str, argument: str) -> ResourceValidationPolicy:
    """A rule requiring that ``prop`` of ``resource_type`` names a customer-managed KMS key."""

    def check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not uses_customer_key(args.props, prop, aws_managed_alias):
            report_violation(f"{noun} {args.name} is not encrypted with the stack's key: set {argument} to the "
                             "stack's key (EncryptionKey.arn).", None)

    return resource_policy(name, description, resource_type, check)


def no_public_grants(subject: str, fix: str, grant: str = "{action}") -> ResourceCheck:
    """A check reporting each statement of the resource's ``policy`` that grants to everyone without a narrowing
    condition: "<subject> lets anyone <grant> (statement <sid>): <fix>", ``{name}`` in ``subject`` being the
    resource's name and ``{action}`` in ``grant`` the statement's Action."""

    def check(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for statement in _documents.public_grants(args.props.get("policy")):
            report_violation(f"{subject.format(name=args.name)} lets anyone "
                             f"{grant.format(action=statement.get('Action'))} (statement "
                             f"{_documents.sid(statement)}): {fix}", None)

    return check


def items(value: Any) -> list[Any]:
    """The elements of a list-valued property, each one ``UNKNOWN`` when only known after deploy; ``[]`` for None.

    A whole list that is unknown reads as ``[UNKNOWN]``: present, contents unknown."""
    if value is None:
        return []
    if value is UNKNOWN:
        return [UNKNOWN]
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    result: list[Any] = []
    for index in range(len(value)):
        try:
            result.append(value[index])
        except UnknownValueError:
            result.append(UNKNOWN)
    return result


def number(props: Mapping[str, Any], key: str) -> float | None:
    """A numeric property as a float; None when absent, not a number or unknown (callers treat unknown as set)."""
    value = peek(props, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def configured_policy(name: str, description: str, resource_type: str | tuple[str, ...], check: ResourceCheck,
                      properties: dict[str, Any]) -> ResourceValidationPolicy:
    """A resource policy on one or more types with a configuration schema (``properties`` with defaults)."""
    types = (resource_type,) if isinstance(resource_type, str) else resource_type

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type in types:
            check(args, report_violation)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    config_schema=PolicyConfigSchema(properties=properties) if properties else None)


def typed_policy(name: str, description: str, resource_types: tuple[str, ...],
                 check: ResourceCheck) -> ResourceValidationPolicy:
    """A resource policy that runs ``check`` on resources of any of ``resource_types``."""
    return configured_policy(name, description, resource_types, check, {})


def stack_policy_with_config(name: str, description: str, validate: StackValidation,
                             properties: dict[str, Any]) -> StackValidationPolicy:
    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 config_schema=PolicyConfigSchema(properties=properties))
