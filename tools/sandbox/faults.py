"""A fault-injecting HTTP proxy in front of the collection API, for the browser tests (and by hand).

The site's tracker posts to the proxy, which forwards to the real (LocalStack) collection API unless a fault is set.
Faults are switched at run time, through Python or through a control endpoint on the proxy's *own* port (it stays
reachable while the collection side is "down"):

    proxy = FaultProxy(upstream_collect_url, allowed_origins=["http://localhost:8000"]).start()
    proxy.collect_url          # the upstream URL with the proxy's origin: what the site posts to
    proxy.control_url          # http://127.0.0.1:<port>/_faults
    proxy.set(Fault("503", retry_after=2, times=1))
    proxy.exchanges()          # what came in and what was done with it (see ``Exchange``)
    proxy.stop()
    python -m tools.sandbox.faults --upstream URL [--allow-origin O ...]   # prints {"collectUrl", "controlUrl"}

Modes (``Fault.mode``), applied to POSTs; preflights (OPTIONS) are always forwarded, except by ``down``/``reset``,
which act on the connection as a real outage would:

- ``pass``: forward, answer what the API answered;
- ``down``: the listener is closed, so connections are refused (it is reopened on the same port by the next mode);
- ``reset``: the request is read, then the connection is reset (TCP RST), nothing forwarded;
- ``503``: answered ``503`` with ``Retry-After: <retry_after>`` (the template's answer when Kinesis throttles);
- ``429``: answered ``429`` (API Gateway's throttling), with ``Retry-After`` only when ``retry_after`` is set;
- ``partial``: the events at ``indexes`` of the batch are reported failed in a 200 reply (``failures[].index``,
  as the template reports Kinesis' failed records) and are NOT forwarded; only the others reach the API, and failures
  the API itself reports are mapped back to the batch's own indexes;
- ``delay``: forwarded after ``delay_ms`` (a request still in flight when the page closes).

``times`` bounds how many POSTs a fault applies to; it then falls back to ``pass`` (``None``: until changed).
The proxy's own answers carry the CORS headers the API's would (the request's Origin echoed when allowed,
``Access-Control-Expose-Headers: Retry-After``), so the page can read them exactly as it reads the API's.

Control HTTP (JSON): ``GET /_faults`` the current fault; ``POST /_faults`` set one (``{"mode", "retryAfter",
"indexes", "delayMs", "times"}``; 400 for a bad one); ``GET /_faults/exchanges`` the log; ``POST /_faults/reset``
back to ``pass`` with an empty log; ``GET /_faults/health``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("pass", "down", "reset", "503", "429", "partial", "delay")
PARTIAL_ERROR = "ProvisionedThroughputExceededException"
# Headers that describe one connection, not the message (RFC 9110 7.6.1), plus what the proxy recomputes.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "host", "content-length"}


class FaultError(ValueError):
    """A fault the proxy cannot apply."""


@dataclass(frozen=True)
class Fault:
    mode: str = "pass"
    retry_after: int | None = None
    indexes: tuple[int, ...] = ()
    delay_ms: int = 0
    times: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise FaultError(f"unknown mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.retry_after is not None and (isinstance(self.retry_after, bool) or not isinstance(
                self.retry_after, int) or self.retry_after < 0):
            raise FaultError("retryAfter must be a whole number of seconds >= 0")
        if self.mode == "partial" and not self.indexes:
            raise FaultError("partial needs at least one index")
        if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.indexes):
            raise FaultError("indexes must be integers >= 0")
        if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, int) or not 0 <= self.delay_ms <= 60000:
            raise FaultError("delayMs must be an integer 0-60000")
        if self.times is not None and (isinstance(self.times, bool) or not isinstance(self.times, int)
                                       or self.times < 1):
            raise FaultError("times must be an integer >= 1 (or null: until changed)")

    @classmethod
    def from_json(cls, document: Any) -> Fault:
        if not isinstance(document, dict):
            raise FaultError("a fault is a JSON object")
        known = {"mode", "retryAfter", "indexes", "delayMs", "times"}
        if unknown := set(document) - known:
            raise FaultError(f"unknown fields {sorted(unknown)}")
        indexes = document.get("indexes", [])
        if not isinstance(indexes, list):
            raise FaultError("indexes must be a list")
        return cls(mode=document.get("mode", "pass"), retry_after=document.get("retryAfter"),
                   indexes=tuple(indexes), delay_ms=document.get("delayMs", 0), times=document.get("times"))

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "retryAfter": self.retry_after, "indexes": list(self.indexes),
                "delayMs": self.delay_ms, "times": self.times}


@dataclass
class Exchange:
    """One request the proxy answered (not recorded: connections refused while ``down``)."""

    at: float  # epoch seconds, when the request was read
    method: str
    path: str
    mode: str  # the fault applied
    status: int  # what the client got (0: connection reset)
    content_type: str = ""
    origin: str = ""
    user_agent: str = ""
    received: list[str] = field(default_factory=list)  # eventIds in the request
    sessions: list[str] = field(default_factory=list)  # their distinct sessionIds, in order (whose request it was)
    forwarded: list[str] = field(default_factory=list)  # eventIds sent on to the API
    accepted: list[str] = field(default_factory=list)  # eventIds the client was told were accepted
    upstream_status: int | None = None
    answered_at: float = 0.0


def _events(body: bytes) -> list[Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    events = document.get("events") if isinstance(document, dict) else None
    return events if isinstance(events, list) else None


def event_ids(body: bytes) -> list[str] | None:
    """The eventIds of a collection request body, or None when it is not one."""
    events = _events(body)
    return None if events is None else [str(e.get("eventId", "")) if isinstance(e, dict) else "" for e in events]


def session_ids(body: bytes) -> list[str]:
    """The distinct sessionIds of a collection request body, in order. (A beacon sent while a page closes carries
    the browser's own User-Agent, not an emulated one: the session tells whose request it was.)"""
    sessions = [str(e["sessionId"]) for e in _events(body) or [] if isinstance(e, dict) and "sessionId" in e]
    return list(dict.fromkeys(sessions))


def partial_request(body: bytes, indexes: Sequence[int]) -> tuple[bytes, list[int], list[int]] | None:
    """The body without the events at ``indexes``; with the kept events' original indexes and the failed ones."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    events = document.get("events") if isinstance(document, dict) else None
    if not isinstance(events, list):
        return None
    failed = sorted({i for i in indexes if i < len(events)})
    kept = [i for i in range(len(events)) if i not in failed]
    forwarded = {**document, "events": [events[i] for i in kept]}
    return json.dumps(forwarded, separators=(",", ":")).encode(), kept, failed


def merge_reply(upstream: Any, kept: Sequence[int], failed: Sequence[int], total: int) -> dict[str, Any]:
    """The API's reply for the forwarded events, as a reply for the whole batch: our failures added, the API's own
    failures (indexes into the forwarded events) mapped back to the batch's indexes."""
    theirs = upstream.get("failures", []) if isinstance(upstream, dict) else []
    failures = [{"index": i, "errorCode": PARTIAL_ERROR} for i in failed]
    for failure in theirs:
        index = failure.get("index") if isinstance(failure, dict) else None
        if isinstance(index, int) and 0 <= index < len(kept):
            failures.append({**failure, "index": kept[index]})
    failures.sort(key=lambda f: int(str(f["index"])))
    return {"accepted": total - len(failures), "failed": len(failures), "failures": failures}


class FaultProxy:
    def __init__(self, upstream: str, *, allowed_origins: Sequence[str] = (), port: int = 0,
                 control_port: int = 0, timeout: float = 30) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise FaultError(f"the upstream must be an http URL, got {upstream!r}")
        self.upstream = upstream
        self._host, self._port_up = parts.hostname, parts.port or 80
        self._path = parts.path or "/"
        self.allowed_origins = set(allowed_origins)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._fault = Fault()
        self._remaining: int | None = None
        self._log: list[Exchange] = []
        self._port = port
        self._data: ThreadingHTTPServer | None = None
        self._control: ThreadingHTTPServer | None = None
        self._control_port = control_port
        self._threads: list[threading.Thread] = []

    # --- life cycle -------------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._open()
        self._control = self._serve(self._control_port, _control_handler(self))
        return self

    def stop(self) -> None:
        self._close()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
            self._control = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def collect_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self._path}"

    @property
    def control_url(self) -> str:
        if self._control is None:
            raise FaultError("the proxy is not started")
        return f"http://127.0.0.1:{self._control.server_address[1]}/_faults"

    def _serve(self, port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._threads.append(thread)
        return server

    def _open(self) -> None:
        if self._data is None:
            self._data = self._serve(self._port, _data_handler(self))
            self._port = int(self._data.server_address[1])

    def _close(self) -> None:
        if self._data is not None:
            self._data.shutdown()
            self._data.server_close()
            self._data = None

    # --- faults -----------------------------------------------------------------------------------------------------

    def set(self, fault: Fault) -> None:
        with self._lock:
            self._fault, self._remaining = fault, fault.times
            down = fault.mode == "down"
        if down:
            self._close()
        else:
            self._open()

    def fault(self) -> Fault:
        with self._lock:
            return self._fault

    def reset(self) -> None:
        self.set(Fault())
        with self._lock:
            self._log.clear()

    def exchanges(self) -> list[Exchange]:
        with self._lock:
            return list(self._log)

    def _take(self) -> Fault:
        """The fault for this POST; counts it against ``times``."""
        with self._lock:
            fault = self._fault
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._fault, self._remaining = Fault(), None
            return fault

    def _record(self, exchange: Exchange) -> None:
        exchange.answered_at = time.time()
        with self._lock:
            self._log.append(exchange)

    def cors_headers(self, origin: str) -> dict[str, str]:
        if origin and origin in self.allowed_origins:
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Retry-After",
                    "Vary": "Origin"}
        return {}

    def forward(self, method: str, headers: Mapping[str, str], body: bytes) -> tuple[int, list[tuple[str, str]],
                                                                                   bytes]:
        connection = http.client.HTTPConnection(self._host, self._port_up, timeout=self.timeout)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(method, self._path, body=body if method != "OPTIONS" else None, headers=sent)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        finally:
            connection.close()


def _data_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so "down" really refuses the browser's next request instead of
        # it reusing a kept-alive connection.
        protocol_version = "HTTP/1.0"

        exchange: Exchange | None = None

        def _log(self) -> None:
            # Before the answer goes out: a client that has its answer must find the exchange in the log.
            if self.exchange is not None:
                proxy._record(self.exchange)
                self.exchange = None

        def _reply(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
            self._log()
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def _json(self, status: int, document: Any, origin: str, extra: Mapping[str, str] | None = None) -> None:
            headers = {"Content-Type": "application/json", **proxy.cors_headers(origin), **(extra or {})}
            self._reply(status, list(headers.items()), json.dumps(document).encode())

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            self._log()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def do_OPTIONS(self) -> None:
            exchange = self.exchange = Exchange(
                at=time.time(), method="OPTIONS", path=self.path, mode=proxy.fault().mode, status=0,
                origin=self.headers.get("Origin", ""), user_agent=self.headers.get("User-Agent", ""))
            if exchange.mode == "reset":
                self._reset()
                return
            status, headers, payload = self._upstream("OPTIONS", b"", exchange)
            exchange.status = status
            self._reply(status, headers, payload)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy._take()
            origin = self.headers.get("Origin", "")
            ids = event_ids(body)
            exchange = self.exchange = Exchange(
                at=time.time(), method="POST", path=self.path, mode=fault.mode, status=0,
                content_type=self.headers.get("Content-Type", ""), origin=origin,
                user_agent=self.headers.get("User-Agent", ""), received=list(ids or []), sessions=session_ids(body))
            try:
                self._post(fault, body, ids, origin, exchange)
            finally:
                self._log()  # when no answer went out (an error on the way)

        def _post(self, fault: Fault, body: bytes, ids: list[str] | None, origin: str, exchange: Exchange) -> None:
            if fault.mode in ("reset", "down"):  # "down": a request on a connection accepted just before
                self._reset()
                return
            if fault.mode in ("503", "429"):
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                message = ("The events could not be accepted; retry later." if fault.mode == "503"
                           else "Too Many Requests")
                exchange.status = int(fault.mode)
                self._json(exchange.status, {"message": message}, origin, extra)
                return
            if fault.delay_ms:
                time.sleep(fault.delay_ms / 1000)
            split = partial_request(body, fault.indexes) if fault.mode == "partial" and ids is not None else None
            if split is None:
                status, headers, payload = self._upstream("POST", body, exchange, ids or [])
                exchange.status = status
                if status == 200:
                    exchange.accepted = _accepted(ids or [], payload, range(len(ids or [])))
                self._reply(status, headers, payload)
                return
            forwarded, kept, failed = split
            assert ids is not None
            if not kept:  # nothing left to forward: what the API answers when every record failed
                exchange.status = 503
                self._json(503, {"message": "The event stream is busy; retry the whole batch after a short delay."},
                           origin, {"Retry-After": "1"})
                return
            status, headers, payload = self._upstream("POST", forwarded, exchange, [ids[i] for i in kept])
            exchange.status = status
            if status != 200:
                self._reply(status, headers, payload)
                return
            try:
                upstream = json.loads(payload)
            except ValueError:
                upstream = {}
            merged = merge_reply(upstream, kept, failed, len(ids))
            exchange.accepted = [ids[i] for i in range(len(ids)) if i not in {f["index"] for f in merged["failures"]}]
            body_out = json.dumps(merged).encode()
            self._reply(200, [(k, v) for k, v in headers if k.lower() != "content-type"]
                        + [("Content-Type", "application/json")], body_out)

        def _upstream(self, method: str, body: bytes, exchange: Exchange,
                      ids: list[str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
            exchange.forwarded = list(ids or [])
            try:
                status, headers, payload = proxy.forward(method, dict(self.headers.items()), body)
            except OSError as error:
                exchange.forwarded = []
                message = {"message": f"the collection API is unreachable: {error}"}
                return 502, [("Content-Type", "application/json"),
                             *proxy.cors_headers(exchange.origin).items()], json.dumps(message).encode()
            exchange.upstream_status = status
            return status, headers, payload

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _accepted(ids: Sequence[str], payload: bytes, positions: range) -> list[str]:
    try:
        reply = json.loads(payload)
    except ValueError:
        return []
    failed = {f.get("index") for f in reply.get("failures", []) if isinstance(f, dict)} if isinstance(
        reply, dict) else set()
    return [ids[i] for i in positions if i not in failed]


def _control_handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _json(self, status: int, document: Any) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            route = self.path.split("?", 1)[0]
            if route == "/_faults":
                self._json(200, proxy.fault().to_json())
            elif route == "/_faults/exchanges":
                self._json(200, [asdict(e) for e in proxy.exchanges()])
            elif route == "/_faults/health":
                self._json(200, {"status": "ok", "collectUrl": proxy.collect_url})
            else:
                self._json(404, {"message": f"no route {route}"})

        def do_POST(self) -> None:
            route = self.path.split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if route == "/_faults/reset":
                proxy.reset()
                self._json(200, proxy.fault().to_json())
                return
            if route != "/_faults":
                self._json(404, {"message": f"no route {route}"})
                return
            try:
                fault = Fault.from_json(json.loads(body or b"{}"))
            except (ValueError, TypeError) as error:
                self._json(400, {"message": str(error)})
                return
            proxy.set(fault)
            self._json(200, fault.to_json())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.sandbox.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the collection API's URL (.../v1/events)")
    parser.add_argument("--allow-origin", action="append", default=[], help="a site origin allowed by CORS")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        proxy = FaultProxy(args.upstream, allowed_origins=args.allow_origin, port=args.port,
                           control_port=args.control_port).start()
    except (FaultError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(json.dumps({"collectUrl": proxy.collect_url, "controlUrl": proxy.control_url}), flush=True)
    stopped.wait()
    proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
