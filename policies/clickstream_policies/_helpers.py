"""Small helpers shared by the rules; they read properties the way the analyzer hands them over."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ReportViolation, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.proxy import UnknownValueError

ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]


def is_set(props: Mapping[str, Any], key: str) -> bool:
    """True when ``key`` holds a value, or a value only known after deploy (an input wired to another resource).

    Iterating the keys does not touch values, so a presence check stays decisive during preview.
    """
    if key not in list(props):
        return False
    try:
        value = props[key]
    except UnknownValueError:
        return True
    return value not in (None, "", [], {})


def resource_policy(name: str, description: str, resource_type: str, check: ResourceCheck) -> ResourceValidationPolicy:
    """A resource policy that runs ``check`` on resources of one type only."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type == resource_type:
            check(args, report_violation)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)
