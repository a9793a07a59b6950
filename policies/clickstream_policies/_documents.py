"""Reading IAM-style policy documents (key policies, bucket, topic and queue policies, identity policies)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

# Condition keys that tie a grant to "everyone" back to known accounts, organizations, services or networks.
NARROWING_CONDITION_KEYS = frozenset(key.lower() for key in (
    "aws:SourceAccount", "aws:SourceArn", "aws:SourceOwner", "aws:SourceOrgID", "aws:SourceOrgPaths",
    "aws:PrincipalAccount", "aws:PrincipalArn", "aws:PrincipalOrgID", "aws:PrincipalOrgPaths",
    "aws:SourceVpc", "aws:SourceVpce", "kms:CallerAccount", "kms:ViaService",
))


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse(document: Any) -> dict[str, Any]:
    """A policy document given as JSON text or as a mapping; an unreadable one reads as empty."""
    if isinstance(document, Mapping):
        return dict(document)
    if isinstance(document, str) and document:
        try:
            parsed = json.loads(document)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def statements(document: Any) -> Iterator[dict[str, Any]]:
    for statement in as_list(parse(document).get("Statement")):
        if isinstance(statement, dict):
            yield statement


def allows(document: Any) -> Iterator[dict[str, Any]]:
    return (s for s in statements(document) if s.get("Effect") == "Allow")


def names_everyone(statement: Mapping[str, Any]) -> bool:
    """The statement's principal is anyone: ``"*"``, ``{"AWS": "*"}`` (or a list holding it), or any NotPrincipal."""
    if "NotPrincipal" in statement:
        return True
    principal = statement.get("Principal")
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS"))


def is_narrowed(statement: Mapping[str, Any]) -> bool:
    """A condition limits the statement to fixed accounts, organizations, services or networks.

    ``...IfExists`` operators and values with wildcards do not narrow: a request without the key, or any value,
    passes them.
    """
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return False
    for operator, entries in condition.items():
        if str(operator).endswith("IfExists") or not isinstance(entries, Mapping):
            continue
        for key, value in entries.items():
            values = [str(v) for v in as_list(value)]
            if str(key).lower() in NARROWING_CONDITION_KEYS and values and not any("*" in v for v in values):
                return True
    return False


def public_grants(document: Any) -> list[dict[str, Any]]:
    """Allow statements that grant to everyone without a narrowing condition."""
    return [s for s in allows(document) if names_everyone(s) and not is_narrowed(s)]


def sid(statement: Mapping[str, Any]) -> str:
    return str(statement.get("Sid", "?"))
