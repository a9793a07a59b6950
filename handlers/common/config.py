"""Reading a function's configuration from its environment, failing loudly at cold start when it is incomplete."""

from __future__ import annotations

import os
from collections.abc import Mapping


class MissingConfigurationError(RuntimeError):
    """The function was deployed without an environment variable it needs."""


def required_env(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of ``name``; raises ``MissingConfigurationError`` naming the variable when unset or blank."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise MissingConfigurationError(f"environment variable {name} is not set; the stack must provide it")
    return value
