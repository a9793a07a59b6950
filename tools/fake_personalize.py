"""A local stand-in for the Personalize Events endpoint (PutEvents over rest-json), for fault tests and benchmarks.

It listens on 127.0.0.1 only, validates every request against botocore's model of PutEvents, records it, and can add
latency, throttle a share of calls, or reject calls that carry given event ids, like the real service does.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

_PUT_EVENTS = botocore.session.get_session().get_service_model("personalize-events").operation_model("PutEvents")


@dataclass
class FakePersonalize:
    latency_seconds: float = 0.0
    throttle_probability: float = 0.0
    invalid_event_ids: frozenset[str] = frozenset()
    seed: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)  # accepted PutEvents requests
    attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def answer(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        if path != "/events":
            return 404, {}, b"{}"
        request = json.loads(body)
        params = dict(request)
        params["eventList"] = [dict(e, sentAt=datetime.fromtimestamp(e["sentAt"], tz=UTC))
                               for e in request.get("eventList", [])]
        report = ParamValidator().validate(params, _PUT_EVENTS.input_shape)
        if report.has_errors():
            return self._error(400, "InvalidInputException", report.generate_report())
        time.sleep(self.latency_seconds)
        with self._lock:
            self.attempts += 1
            throttled = self._random.random() < self.throttle_probability
        if throttled:
            return self._error(400, "ThrottlingException", "Rate exceeded")
        rejected = [e["eventId"] for e in request["eventList"] if e["eventId"] in self.invalid_event_ids]
        if rejected:
            return self._error(400, "InvalidInputException", f"invalid event {rejected[0]}")
        with self._lock:
            self.calls.append(request)
        return 200, {}, b"{}"

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"x-amzn-ErrorType": code}, json.dumps({"message": message}).encode()


@contextmanager
def serve(fake: FakePersonalize) -> Iterator[str]:
    """Serve ``fake`` on a free loopback port; yields its endpoint URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, headers, payload = fake.answer(self.path, body)
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json",
                                "Content-Length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
