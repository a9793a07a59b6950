"""Checks of generated state machine definitions, offline:

- ``asl_validator(definition)``: the npm ``asl-validator`` (pinned in package-lock.json) on the definition;
- ``sdk_task_problems(definition)``: every ``aws-sdk`` task (and the optimized SNS/Lambda/S3 integrations) against
  botocore's service model: the action exists, parameter names (Pascal case, as Step Functions takes them) are
  members, required members are present, and static values have the right type, enum value, length and pattern.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session
from botocore.model import ListShape, Shape, StructureShape

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZED = {"arn:aws:states:::sns:publish": ("sns", "Publish"),
             "arn:aws:states:::lambda:invoke": ("lambda", "Invoke"),
             "arn:aws:states:::s3:listObjectsV2": ("s3", "ListObjectsV2")}
_SESSION = botocore.session.get_session()


def asl_validator(definition: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(definition, file)
    try:
        return subprocess.run([str(ROOT / "node_modules" / ".bin" / "asl-validator"), "--json-path", file.name],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        Path(file.name).unlink()


def tasks(states: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(state name, service resource, parameters) of every task, nested Map processors and item readers included."""
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield name, state["Resource"], state.get("Parameters", {})
        if "ItemReader" in state:
            yield f"{name} (item reader)", state["ItemReader"]["Resource"], state["ItemReader"].get("Parameters", {})
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from tasks(processor["States"])


def _operation(resource: str) -> tuple[str, str] | None:
    if resource in OPTIMIZED:
        return OPTIMIZED[resource]
    match = re.fullmatch(r"arn:[a-z-]+:states:::aws-sdk:([a-z0-9]+):([a-zA-Z0-9]+)", resource)
    if match is None:
        return None
    return match.group(1), match.group(2)[0].upper() + match.group(2)[1:]


def _member(shape: StructureShape, pascal: str) -> tuple[str, Shape] | None:
    for member, member_shape in shape.members.items():
        if member[0].upper() + member[1:] == pascal:
            return member, member_shape
    return None


def _check(value: Any, shape: Shape, where: str) -> Iterator[str]:
    if isinstance(shape, StructureShape):
        if not isinstance(value, Mapping):
            yield f"{where}: expected a structure"
            return
        given = set()
        for key, item in value.items():
            dynamic = key.endswith(".$")
            name = key[:-2] if dynamic else key
            found = _member(shape, name)
            if found is None:
                yield f"{where}.{name}: not a member of {shape.name} (members: {sorted(shape.members)})"
                continue
            given.add(found[0])
            if not dynamic:
                yield from _check(item, found[1], f"{where}.{name}")
        for required in shape.required_members:
            if required not in given:
                yield f"{where}: required member {required} is missing"
        return
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            yield f"{where}: expected a list"
            return
        for index, item in enumerate(value):
            yield from _check(item, shape.member, f"{where}[{index}]")
        return
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str, "integer": int, "long": int, "boolean": bool, "float": (int, float), "double": (int, float),
        "blob": (str, bytes, Mapping), "timestamp": str, "map": Mapping}
    expected = kinds.get(shape.type_name)
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        yield f"{where}: expected {shape.type_name}, got {type(value).__name__}"
        return
    if shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            yield f"{where}: {value!r} is not one of {shape.enum}"
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            yield f"{where}: longer than {shape.metadata['max']}"
        if "min" in shape.metadata and len(value) < shape.metadata["min"]:
            yield f"{where}: shorter than {shape.metadata['min']}"
        pattern = shape.metadata.get("pattern")
        try:
            mismatch = bool(pattern) and re.fullmatch(pattern, value) is None
        except re.error:  # a Java-only regex construct: not checkable here
            mismatch = False
        if mismatch:
            yield f"{where}: {value!r} does not match {pattern}"


def sdk_task_problems(definition: Mapping[str, Any]) -> list[str]:
    problems = []
    for state, resource, parameters in tasks(definition["States"]):
        operation = _operation(resource)
        if operation is None:
            problems.append(f"{state}: unknown resource {resource}")
            continue
        service, action = operation
        model = _SESSION.get_service_model(service)
        if action not in model.operation_names:
            problems.append(f"{state}: {service} has no action {action}")
            continue
        problems += [f"{state}: {p}" for p in _check(parameters, model.operation_model(action).input_shape,
                                                     f"{service}.{action}")]
    return problems
