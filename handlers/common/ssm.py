"""SSM parameters read through a small TTL cache: what training publishes (tracking id, campaign ARN, ...) reaches
warm functions within the TTL without a call per event."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class CachedParameter:
    """The value of one SSM parameter, or None while it does not exist; both answers are cached for ``ttl_seconds``."""

    def __init__(self, client: Any, name: str, ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._name = name
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._expires = float("-inf")

    @property
    def name(self) -> str:
        return self._name

    def get(self) -> str | None:
        with self._lock:
            now = self._clock()
            if now >= self._expires:
                self._value = self._fetch()
                self._expires = now + self._ttl
            return self._value

    def invalidate(self) -> None:
        with self._lock:
            self._expires = float("-inf")

    def _fetch(self) -> str | None:
        try:
            response = self._client.get_parameter(Name=self._name)
        except self._client.exceptions.ParameterNotFound:
            return None
        value: str = response["Parameter"]["Value"]
        return value
