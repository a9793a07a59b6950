"""Reading a function's configuration from its environment, failing loudly at cold start when it is incomplete.

Every variable the program sets is required: a missing or malformed one is a deployment error, reported with its
name, never replaced by a default that hides it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping


class MissingConfigurationError(RuntimeError):
    """The function was deployed without an environment variable it needs, or with a malformed one."""


def required_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of ``name``; raises ``MissingConfigurationError`` naming the variable when unset or blank."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise MissingConfigurationError(f"environment variable {name} is not set; the stack must provide it")
    return value


def required_number(name: str, environ: Mapping[str, str] | None = None) -> float:
    raw = required_env(name, environ)
    try:
        return float(raw)
    except ValueError:
        raise MissingConfigurationError(f"environment variable {name} must be a number, got {raw!r}") from None


def required_int(name: str, environ: Mapping[str, str] | None = None) -> int:
    value = required_number(name, environ)
    if not value.is_integer():
        raise MissingConfigurationError(f"environment variable {name} must be an integer, got {value!r}")
    return int(value)


def required_strings(name: str, environ: Mapping[str, str] | None = None, *, allow_empty: bool = False) -> tuple[
        str, ...]:
    """A JSON list of strings (``[]`` only with ``allow_empty``)."""
    raw = required_env(name, environ)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not (value or allow_empty):
        kind = "a JSON list of strings" if allow_empty else "a non-empty JSON list of strings"
        raise MissingConfigurationError(f"environment variable {name} must be {kind}, got {raw!r}")
    return tuple(value)
