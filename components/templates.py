"""API Gateway mapping templates and models, read from ``components/templates/`` and filled with server-side values.

The component deploys exactly what these functions return, and the tests render exactly the same text, so the
tested template is the deployed template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# The schemas live with the handler code: the handlers validate with the same files the API models are made from.
SCHEMAS_DIR = TEMPLATES_DIR.parent.parent / "handlers" / "common" / "schemas"
EVENTS_SCHEMA = SCHEMAS_DIR / "collect_events.schema.json"
ITEMS_SCHEMA = SCHEMAS_DIR / "items.schema.json"
_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")
# What may be pasted into a template: origins and stream names are validated to these shapes before.
_SAFE_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:[0-9]{1,5})?$")
_SAFE_STREAM = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")


def _read(name: str) -> str:
    return (TEMPLATES_DIR / name).read_text(encoding="utf-8")


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    leftover = _PLACEHOLDER.findall(text)
    if leftover:
        raise ValueError(f"template placeholders left unfilled: {sorted(set(leftover))}")
    return text


def events_schema(event_types: Sequence[str]) -> dict[str, Any]:
    """The JSON Schema (draft 4, as API Gateway models require) of a POST /events body."""
    schema: dict[str, Any] = json.loads(EVENTS_SCHEMA.read_text(encoding="utf-8"))
    event = schema["properties"]["events"]["items"]["properties"]
    if event["eventType"]["enum"] != ["@@EVENT_TYPES@@"]:
        raise ValueError("collect_events.schema.json must list eventType as the @@EVENT_TYPES@@ placeholder")
    event["eventType"]["enum"] = list(event_types)
    return schema


def items_schema() -> dict[str, Any]:
    """The JSON Schema (draft 4) of a POST /items body."""
    schema: dict[str, Any] = json.loads(ITEMS_SCHEMA.read_text(encoding="utf-8"))
    return schema


def cors_prelude(allowed_origins: Sequence[str]) -> str:
    for origin in allowed_origins:
        if not _SAFE_ORIGIN.match(origin):
            raise ValueError(f"CORS origin {origin!r} must look like https://host[:port]")
    return _fill(_read("cors.vtl"), ALLOWED_ORIGINS=",".join(f'"{o}"' for o in allowed_origins))


def put_records_request(stream_name: str, include_client_details: bool, verify_readers: bool = False) -> str:
    """With ``verify_readers`` every record names its reader as the authorizer's principal (empty: anonymous)."""
    if not _SAFE_STREAM.match(stream_name):
        raise ValueError(f"stream name {stream_name!r} is not a valid Kinesis stream name")
    return _fill(_read("collect_put_records.request.vtl"), STREAM_NAME=stream_name,
                 INCLUDE_CLIENT_DETAILS="true" if include_client_details else "false",
                 VERIFY_READERS="true" if verify_readers else "false")


def put_records_response(allowed_origins: Sequence[str]) -> str:
    return cors_prelude(allowed_origins) + _read("collect_put_records.response.vtl")


def kinesis_error_response(allowed_origins: Sequence[str]) -> str:
    return cors_prelude(allowed_origins) + _read("collect_kinesis_error.response.vtl")


def cors_preflight_response(allowed_origins: Sequence[str]) -> str:
    return cors_prelude(allowed_origins) + _read("cors_preflight.response.vtl")


def gateway_error_response() -> str:
    return _read("gateway_error.response.vtl")


def gateway_bad_request_body_response() -> str:
    return _read("gateway_bad_request_body.response.vtl")
