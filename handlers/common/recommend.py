"""The for-you request and the popular-or-newest fallback list (``common.surfaces`` serves them)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from common.catalog import BY_TIME_PREFIX, POPULAR_KEY, newest_from_keys, popular_from_document

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[!#-\[\]-~]{1,128}$")  # the ids the collection schema accepts
CONTEXT_KEY = re.compile(r"^[A-Za-z0-9_]{1,150}$")
DEFAULT_RESULTS = 25
MAX_RESULTS = 100
MAX_CONTEXT = 10


class BadRequestError(ValueError):
    """The request's parameters are invalid; the message tells the client which and why."""


@dataclass(frozen=True)
class RecommendationRequest:
    user_id: str
    num_results: int = DEFAULT_RESULTS
    filter_name: str | None = None
    session_id: str | None = None
    context: Mapping[str, str] = field(default_factory=dict)


def parse_request(event: Mapping[str, Any], filter_names: Sequence[str]) -> RecommendationRequest:
    """Validate an API Gateway proxy event for ``GET /recommendations/{userId}``."""
    user_id = (event.get("pathParameters") or {}).get("userId") or ""
    if not ID_PATTERN.match(user_id):
        raise BadRequestError("userId must be 1-128 printable ASCII characters without spaces, quotes or backslashes")
    query = event.get("queryStringParameters") or {}
    unknown = sorted(set(query) - {"numResults", "filter", "sessionId", "context"})
    if unknown:
        raise BadRequestError(f"unknown query parameters: {', '.join(unknown)}")
    raw_results = query.get("numResults", str(DEFAULT_RESULTS))
    if not raw_results.isdigit() or not 1 <= int(raw_results) <= MAX_RESULTS:
        raise BadRequestError(f"numResults must be an integer from 1 to {MAX_RESULTS}, got {raw_results!r}")
    filter_name = query.get("filter")
    if filter_name is not None and filter_name not in filter_names:
        known = ", ".join(filter_names) or "none configured"
        raise BadRequestError(f"unknown filter {filter_name!r}; filters: {known}")
    session_id = query.get("sessionId")
    if session_id is not None and not ID_PATTERN.match(session_id):
        raise BadRequestError("sessionId must be 1-128 printable ASCII characters without spaces or quotes")
    context: dict[str, str] = {}
    for entry in (event.get("multiValueQueryStringParameters") or {}).get("context", []):
        key, sep, value = entry.partition(":")
        if not sep or not CONTEXT_KEY.match(key) or not 1 <= len(value) <= 1000:
            raise BadRequestError(f"context entries must be KEY:value (KEY of letters, digits, _), got {entry!r}")
        context[key] = value
    if len(context) > MAX_CONTEXT:
        raise BadRequestError(f"at most {MAX_CONTEXT} context entries")
    return RecommendationRequest(user_id, int(raw_results), filter_name, session_id, context)


class Fallback:
    """The popular items training publishes, else the newest items of the store; cached, and never raising."""

    def __init__(self, s3_client: Any, bucket: str, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._s3, self._bucket, self._ttl, self._clock = s3_client, bucket, ttl_seconds, clock
        self._lock = threading.Lock()
        self._cached: list[str] = []
        self._expires = float("-inf")

    def items(self, limit: int) -> list[str]:
        with self._lock:
            if self._clock() >= self._expires:
                self._cached = self._load()
                self._expires = self._clock() + self._ttl
            return self._cached[:limit]

    def _load(self) -> list[str]:
        try:
            popular = popular_from_document(json.loads(
                self._s3.get_object(Bucket=self._bucket, Key=POPULAR_KEY)["Body"].read()), MAX_RESULTS)
            if popular:
                return popular
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                logger.warning("cannot read the popular items: %s", error)
        except (BotoCoreError, ValueError) as error:
            logger.warning("cannot read the popular items: %s", error)
        try:
            listing = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=BY_TIME_PREFIX, MaxKeys=MAX_RESULTS * 2)
        except (ClientError, BotoCoreError) as error:
            logger.warning("cannot list the newest items: %s", error)
            return []
        return newest_from_keys([o["Key"] for o in listing.get("Contents", [])], MAX_RESULTS)
