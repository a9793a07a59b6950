"""Who may read whose recommendations, where the stack verifies readers (see handlers/reader_authorizer.py).

API Gateway already refuses a token on another reader's path (the authorizer's policy names the reader's own path);
the function checks again, so a route wired without the authorizer, or a too-broad cached policy, cannot leak a
signed-in reader's recommendations. Anonymous readers use their own route, and only with anonymous ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.contract import ANONYMOUS_ID_PREFIX, ReaderRoute

ANONYMOUS_RESOURCE = f"/recommendations/{ReaderRoute.ANONYMOUS_RECOMMENDATIONS}/{{userId}}"


def forbidden_reason(event: Mapping[str, Any]) -> str | None:
    """Why the request may not read the path's reader (answer 403), or None when it may."""
    user_id = str((event.get("pathParameters") or {}).get("userId") or "")
    if event.get("resource") == ANONYMOUS_RESOURCE:
        if not user_id.startswith(ANONYMOUS_ID_PREFIX):
            return f"this route serves anonymous ids ({ANONYMOUS_ID_PREFIX}...) only; signed-in readers send a token"
        return None
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    if "principalId" in authorizer and authorizer["principalId"] != user_id:
        return "the token does not belong to this reader"
    return None
