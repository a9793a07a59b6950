"""Click events as they travel the stream: decoding Kinesis records and validating them with the collection API's
own JSON Schema (the file API Gateway's model is made from), so a record from any producer meets the same rules."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema

SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "collect_events.schema.json"
ENVELOPE_VERSION = 2
# Version 1 (until issue 13) wrote the server block's strings JSON-escaped; its records may still be in the stream
# and in S3, so they stay readable. Version 2 writes every client-influenced string as base64 (``<name>B64``).
READABLE_VERSIONS = (1, 2)
_BASE64_FIELDS = {"requestIdB64": "requestId", "sourceIpB64": "sourceIp", "userAgentB64": "userAgent",
                  "readerB64": "reader"}


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
    # From the server block (collectClientDetails): what bot filtering judges; None when the stack does not record it.
    user_agent: str | None = None


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


@dataclass(frozen=True)
class Envelope:
    """A record's envelope with its server block decoded: ``requestId``, ``receivedAt`` and, when the stack adds
    them, ``sourceIp``, ``userAgent`` and ``reader`` (the verified token's reader id; empty for anonymous)."""

    version: int
    event: Any
    server: Mapping[str, Any]

    @property
    def reader_verified(self) -> bool:
        """The collection API verified readers: the reader is the server's, never the body's ``userId``."""
        return "reader" in self.server


def _base64_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(f"server field {name} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise InvalidRecordError(f"server field {name} is not base64 of UTF-8 text: {error}") from None


def read_envelope(envelope: Any) -> Envelope:
    """Validate a decoded record line of any readable version and decode its server block."""
    if not isinstance(envelope, dict) or envelope.get("v") not in READABLE_VERSIONS or "event" not in envelope:
        raise InvalidRecordError(f"record is not a version {' or '.join(map(str, READABLE_VERSIONS))} event envelope")
    server = envelope.get("server", {})
    if not isinstance(server, dict):
        raise InvalidRecordError("record's server block is not an object")
    if envelope["v"] == 1:
        return Envelope(1, envelope["event"], dict(server))
    decoded: dict[str, Any] = {}
    for key, value in server.items():
        decoded[_BASE64_FIELDS[key] if key in _BASE64_FIELDS else str(key)] = (
            _base64_text(key, value) if key in _BASE64_FIELDS else value)
    return Envelope(2, envelope["event"], decoded)


def envelope_event(envelope: Envelope, event_types: tuple[str, ...]) -> ClickEvent:
    """The envelope's event; where readers are verified, its reader id is the server's (validated like a userId)."""
    event = envelope.event
    if envelope.reader_verified and isinstance(event, dict):
        event = {k: v for k, v in event.items() if k != "userId"}
        if envelope.server["reader"]:
            event["userId"] = envelope.server["reader"]
    user_agent = envelope.server.get("userAgent")
    return dataclasses.replace(parse_event(event, event_types),
                               user_agent=user_agent if isinstance(user_agent, str) else None)


def decode_record(data: str, event_types: tuple[str, ...]) -> ClickEvent:
    """Decode a Kinesis record's base64 data: ``{"v": 2, "event": {...}, "server": {...}}`` (or version 1)."""
    try:
        envelope = json.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as error:
        raise InvalidRecordError(f"record data is not base64-encoded JSON: {error}") from None
    return envelope_event(read_envelope(envelope), event_types)
