"""A local stand-in for the Personalize Events endpoint (PutEvents over rest-json), for fault tests and benchmarks.

It listens on 127.0.0.1 only, validates every request against botocore's model of PutEvents, records it, and can add
latency, throttle a share of calls, or reject calls that carry given event ids, like the real service does.

The pieces any rest-json stand-in needs live here too, so the sandbox's Personalize stand-in
(``tools/sandbox/personalize.py``) reuses them: ``validate_request`` (a wire body checked against an operation's
botocore input shape: types, required members, minimum and maximum lengths and values, patterns), ``error_reply``
(the status the model gives the error, the ``x-amzn-ErrorType`` header botocore reads), and ``serve`` /
``LoopbackServer`` (a loopback HTTP server around anything with ``handle(method, path, body)``).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import botocore.session
from botocore.model import OperationModel, Shape
from botocore.validate import ParamValidator

Reply = tuple[int, dict[str, str], bytes]


@cache
def operation_model(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


_PUT_EVENTS = operation_model("personalize-events", "PutEvents")


class RequestRejectedError(Exception):
    """A request the service refuses; ``code`` is the error type botocore turns into the ClientError's code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _to_wire_types(value: Any, shape: Shape) -> Any:
    """The JSON body as botocore's validator expects parameters: epoch-second timestamps as datetimes."""
    if shape.type_name == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _to_wire_types(v, members[k]) if k in members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_to_wire_types(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _to_wire_types(v, shape.value) for k, v in value.items()}
    return value


def _constraint_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """What the service checks beyond botocore's client-side validation: maximum lengths, sizes and patterns."""
    metadata, where = shape.metadata, path or "the request"
    errors: list[str] = []
    if isinstance(value, str | list | dict) and "max" in metadata and len(value) > metadata["max"]:
        errors.append(f"Value at '{where}' failed to satisfy constraint: Member must have length less than or "
                      f"equal to {metadata['max']}")
    elif isinstance(value, int | float) and not isinstance(value, bool) and "max" in metadata \
            and value > metadata["max"]:
        errors.append(f"Value at '{where}' failed to satisfy constraint: Member must be less than or equal to "
                      f"{metadata['max']}")
    pattern = metadata.get("pattern")
    if isinstance(value, str) and pattern and not re.fullmatch(pattern, value):
        errors.append(f"Value at '{where}' failed to satisfy constraint: Member must satisfy regular expression "
                      f"pattern: {pattern}")
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, member in shape.members.items():
            if key in value:
                errors += _constraint_errors(value[key], member, f"{path}.{key}" if path else key)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, entry in enumerate(value):
            errors += _constraint_errors(entry, shape.member, f"{path}.{i + 1}")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, entry in value.items():
            errors += _constraint_errors(key, shape.key, f"{path}.{key}")
            errors += _constraint_errors(entry, shape.value, f"{path}.{key}")
    return errors


def validate_request(operation: OperationModel, body: bytes) -> dict[str, Any]:
    """The request of ``body`` for ``operation``; raises ``RequestRejectedError`` as the service would answer."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        raise RequestRejectedError("SerializationException", "the request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise RequestRejectedError("SerializationException", "the request body must be a JSON object")
    assert operation.input_shape is not None
    report = ParamValidator().validate(_to_wire_types(request, operation.input_shape), operation.input_shape)
    if report.has_errors():
        raise RequestRejectedError("InvalidInputException", report.generate_report())
    constraints = _constraint_errors(request, operation.input_shape, "")
    if constraints:
        raise RequestRejectedError("InvalidInputException", "; ".join(constraints))
    return request


def error_reply(operation: OperationModel | None, code: str, message: str) -> Reply:
    """The error as the service sends it: the modelled status of ``code`` (400 when unmodelled)."""
    status = 400
    for shape in operation.error_shapes if operation is not None else ():
        if shape.name == code:
            status = int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    return status, {"x-amzn-ErrorType": code}, json.dumps({"message": message}).encode()


def json_reply(document: Any, status: int = 200) -> Reply:
    return status, {}, json.dumps(document).encode()


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

    def put_events(self, body: bytes) -> dict[str, Any]:
        """The accepted PutEvents request in ``body``; raises ``RequestRejectedError`` like the service."""
        request = validate_request(_PUT_EVENTS, body)
        time.sleep(self.latency_seconds)
        with self._lock:
            self.attempts += 1
            throttled = self._random.random() < self.throttle_probability
        if throttled:
            raise RequestRejectedError("ThrottlingException", "Rate exceeded")
        rejected = [e["eventId"] for e in request["eventList"] if e["eventId"] in self.invalid_event_ids]
        if rejected:
            raise RequestRejectedError("InvalidInputException", f"invalid event {rejected[0]}")
        with self._lock:
            self.calls.append(request)
        return request

    def answer(self, path: str, body: bytes) -> Reply:
        if path != "/events":
            return 404, {}, b"{}"
        try:
            self.put_events(body)
        except RequestRejectedError as error:
            return error_reply(_PUT_EVENTS, error.code, error.message)
        return 200, {}, b"{}"

    def handle(self, method: str, path: str, body: bytes) -> Reply:
        return self.answer(path, body) if method == "POST" else (404, {}, b"{}")


class Handles(Protocol):
    def handle(self, method: str, path: str, body: bytes) -> Reply: ...


# What a loopback server calls: (method, target, request headers, body) -> (status, reply headers, body).
Handler = Callable[[str, str, Sequence[tuple[str, str]], bytes],
                   tuple[int, Mapping[str, str] | Sequence[tuple[str, str]], bytes]]


class LoopbackServer:
    """``handle`` served on a 127.0.0.1 port (free unless given) in a background thread, until ``stop()``."""

    def __init__(self, handle: Handler, port: int = 0) -> None:
        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                status, headers, payload = handle(self.command, self.path, list(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items() if isinstance(headers, Mapping) else headers:
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _answer  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits for the loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @classmethod
    def for_app(cls, app: Handles, port: int = 0) -> LoopbackServer:
        """A JSON service whose ``handle(method, path, body)`` needs no request headers."""
        def handle(method: str, path: str, _: Sequence[tuple[str, str]], body: bytes) -> Reply:
            status, headers, payload = app.handle(method, path, body)
            return status, {"Content-Type": "application/json", **headers}, payload

        return cls(handle, port)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(app: Handles) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its endpoint URL."""
    server = LoopbackServer.for_app(app)
    try:
        yield server.url
    finally:
        server.stop()
