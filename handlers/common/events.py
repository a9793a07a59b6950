"""Click events as they travel the stream: decoding Kinesis records and validating them with the collection API's
own JSON Schema (the file API Gateway's model is made from), so a record from any producer meets the same rules."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "collect_events.schema.json"
ENVELOPE_VERSION = 1


class InvalidRecordError(ValueError):
    """A record that can never be delivered: it is dead-lettered with its payload, never retried."""


@dataclass(frozen=True)
class ClickEvent:
    event_id: str
    event_type: str
    session_id: str
    item_id: str
    timestamp_ms: int
    user_id: str | None = None
    recommendation_id: str | None = None
    impression: tuple[str, ...] = ()
    properties: Mapping[str, Any] | None = None


def event_schema(event_types: Sequence[str]) -> dict[str, Any]:
    """The schema of one event, with the deployment's event types."""
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    event: dict[str, Any] = schema["properties"]["events"]["items"]
    event["properties"]["eventType"]["enum"] = list(event_types)
    return event


@lru_cache(maxsize=8)
def _validator(event_types: tuple[str, ...]) -> Any:
    return fastjsonschema.compile(event_schema(event_types))


def parse_event(event: Any, event_types: tuple[str, ...]) -> ClickEvent:
    try:
        _validator(event_types)(event)
    except fastjsonschema.JsonSchemaValueException as error:
        raise InvalidRecordError(f"event does not match the schema: {error.message}") from None
    return ClickEvent(
        event_id=event["eventId"],
        event_type=event["eventType"],
        session_id=event["sessionId"],
        item_id=event["itemId"],
        timestamp_ms=event["timestamp"],
        user_id=event.get("userId"),
        recommendation_id=event.get("recommendationId"),
        impression=tuple(event.get("impression", ())),
        properties=event.get("properties"),
    )


def decode_record(data: str, event_types: tuple[str, ...]) -> ClickEvent:
    """Decode a Kinesis record's base64 data: ``{"v": 1, "event": {...}, "server": {...}}``."""
    try:
        envelope = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as error:
        raise InvalidRecordError(f"record data is not base64-encoded JSON: {error}") from None
    if not isinstance(envelope, dict) or envelope.get("v") != ENVELOPE_VERSION or "event" not in envelope:
        raise InvalidRecordError(f"record is not a version {ENVELOPE_VERSION} event envelope")
    return parse_event(envelope["event"], event_types)
