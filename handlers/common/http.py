"""Replies of API Gateway Lambda proxy integrations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False)}


def bad_request(message: str, request_id: str | None = None) -> dict[str, Any]:
    return reply(400, {"message": message, "requestId": request_id})


def cors_headers(event: dict[str, Any], allowed_origins: Sequence[str]) -> dict[str, str]:
    """``Access-Control-Allow-Origin`` for a request from one of ``allowed_origins`` (always ``Vary: Origin``)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    origin = headers.get("origin", "")
    return {"Vary": "Origin", **({"Access-Control-Allow-Origin": origin} if origin in allowed_origins else {})}
