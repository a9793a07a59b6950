"""The fault-injecting proxy in front of the collection API (tools/sandbox/faults.py), against a fake API.

GIVEN a fake collection API that answers like the template (CORS, ``{"accepted", "failed", "failures"}``) and a
proxy in front of it, WHEN a fault is set (in Python or through the control endpoint), THEN clients get exactly that
fault, with the headers the real API would send, and the API receives only what the fault lets through.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tools.sandbox import faults
from tools.sandbox.faults import Fault, FaultError, FaultProxy

ORIGIN = "http://localhost:8000"
PATH = "/_aws/execute-api/abc/v1/events"


@dataclass
class FakeApi:
    """Answers POST like the collection API (failing the eventIds in ``fail``) and OPTIONS like its CORS preflight."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    preflights: int = 0
    fail: set[str] = field(default_factory=set)
    server: ThreadingHTTPServer | None = None

    def start(self) -> FakeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: dict[str, Any], extra: dict[str, str]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)),
                                   "Access-Control-Allow-Origin": self.headers.get("Origin", ""),
                                   "Access-Control-Expose-Headers": "Retry-After", **extra}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_OPTIONS(self) -> None:
                api.preflights += 1
                self._send(200, {}, {"Access-Control-Allow-Methods": "POST,OPTIONS",
                                     "Access-Control-Allow-Headers": "content-type,x-api-key"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                api.raw.append(raw)
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(400, {"message": "Invalid request body"}, {})
                    return
                api.bodies.append(body)
                api.headers.append(dict(self.headers.items()))
                failures = [{"index": n, "errorCode": "InternalFailure"} for n, e in enumerate(body["events"])
                            if e["eventId"] in api.fail]
                self._send(200, {"accepted": len(body["events"]) - len(failures), "failed": len(failures),
                                 "failures": failures}, {"X-Upstream": "yes"})

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def received(self) -> list[str]:
        return [e["eventId"] for body in self.bodies for e in body["events"]]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def proxy(api: FakeApi) -> Iterator[FaultProxy]:
    with FaultProxy(api.url, allowed_origins=[ORIGIN]) as running:
        yield running


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def batch(*ids: str, session: str = "s") -> bytes:
    return json.dumps({"events": [{"eventId": i, "eventType": "view", "itemId": "p", "sessionId": session,
                                   "timestamp": 1} for i in ids]}).encode()


def request(url: str, body: bytes | None = None, method: str = "POST", origin: str = ORIGIN,
            content_type: str = "application/json") -> Answer:
    headers = {"Origin": origin, "Content-Type": content_type}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return Answer(response.status, dict(response.headers.items()), json.loads(response.read() or b"null"))
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers.items()), json.loads(error.read() or b"null"))


def control(proxy: FaultProxy, route: str = "", document: Any = None) -> Answer:
    url = proxy.control_url + route
    if document is None and not route.endswith("reset"):
        return request(url, method="GET")
    return request(url, json.dumps(document or {}).encode())


# --- pass -------------------------------------------------------------------------------------------------------------

def test_pass_forwards_the_body_and_answers_what_the_api_answered(api: FakeApi, proxy: FaultProxy) -> None:
    answer = request(proxy.collect_url, batch("e1", "e2"), content_type="text/plain")

    assert answer.status == 200 and answer.body == {"accepted": 2, "failed": 0, "failures": []}
    assert answer.headers["X-Upstream"] == "yes" and answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert api.received() == ["e1", "e2"]
    assert api.headers[0]["Origin"] == ORIGIN and api.headers[0]["Content-Type"] == "text/plain"
    [exchange] = proxy.exchanges()
    assert (exchange.mode, exchange.status, exchange.content_type) == ("pass", 200, "text/plain")
    assert exchange.received == exchange.forwarded == exchange.accepted == ["e1", "e2"]
    assert exchange.sessions == ["s"]


def test_the_collect_url_keeps_the_api_path_on_the_proxy_port(proxy: FaultProxy) -> None:
    assert proxy.collect_url == f"http://127.0.0.1:{proxy.port}{PATH}"
    assert proxy.control_url.endswith("/_faults") and str(proxy.port) not in proxy.control_url


def test_what_the_api_reports_failed_is_not_counted_as_accepted(api: FakeApi, proxy: FaultProxy) -> None:
    api.fail = {"e2"}

    answer = request(proxy.collect_url, batch("e1", "e2"))

    assert answer.body["failures"] == [{"index": 1, "errorCode": "InternalFailure"}]
    assert proxy.exchanges()[0].accepted == ["e1"]


@pytest.mark.parametrize("fault", [Fault(), Fault("503", retry_after=1), Fault("partial", indexes=(0,)),
                                   Fault("reset")], ids=lambda f: f.mode)
def test_an_exchange_is_logged_before_its_answer_goes_out(api: FakeApi, proxy: FaultProxy, fault: Fault,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN logging that takes a while (a busy machine), WHEN the client has its answer, THEN the log has it.
    record = proxy._record

    def slow_record(exchange: faults.Exchange) -> None:
        time.sleep(0.2)
        record(exchange)

    monkeypatch.setattr(proxy, "_record", slow_record)
    proxy.set(fault)

    try:
        request(proxy.collect_url, batch("e1", "e2"))
    except (ConnectionError, urllib.error.URLError, http.client.HTTPException):
        assert fault.mode == "reset"

    assert [e.mode for e in proxy.exchanges()] == [fault.mode]


def test_the_sessions_of_a_batch_are_logged_once_each_in_order() -> None:
    body = json.dumps({"events": [{"eventId": "a", "sessionId": "s2"}, {"eventId": "b", "sessionId": "s1"},
                                  {"eventId": "c", "sessionId": "s2"}, {"eventId": "d"}, {"sessionId": "s3"},
                                  "junk"]}).encode()

    assert faults.session_ids(body) == ["s2", "s1", "s3"]
    assert faults.event_ids(body) == ["a", "b", "c", "d", "", ""]
    assert faults.session_ids(b"[]") == [] and faults.event_ids(b'{"events": {}}') is None


# --- status faults ----------------------------------------------------------------------------------------------------

def test_503_carries_retry_after_and_cors_and_forwards_nothing(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("503", retry_after=2))

    answer = request(proxy.collect_url, batch("e1"))

    assert answer.status == 503 and answer.headers["Retry-After"] == "2"
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert answer.headers["Access-Control-Expose-Headers"] == "Retry-After"
    assert api.bodies == []
    assert proxy.exchanges()[0].forwarded == [] and proxy.exchanges()[0].received == ["e1"]


def test_a_fault_answer_gives_no_cors_headers_to_an_origin_not_allowed(proxy: FaultProxy) -> None:
    proxy.set(Fault("503", retry_after=1))

    answer = request(proxy.collect_url, batch("e1"), origin="https://evil.example")

    assert answer.status == 503 and "Access-Control-Allow-Origin" not in answer.headers


def test_429_without_retry_after_sends_no_such_header(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("429"))

    answer = request(proxy.collect_url, batch("e1"))

    assert answer.status == 429 and "Retry-After" not in answer.headers and api.bodies == []


def test_preflights_pass_in_a_status_fault_and_do_not_use_up_its_times(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("429", times=1))

    preflight = request(proxy.collect_url, method="OPTIONS")
    refused = request(proxy.collect_url, batch("e1"))
    passed = request(proxy.collect_url, batch("e2"))

    assert preflight.status == 200 and preflight.headers["Access-Control-Allow-Methods"] == "POST,OPTIONS"
    assert api.preflights == 1
    assert (refused.status, passed.status) == (429, 200)
    assert api.received() == ["e2"]
    assert proxy.fault() == Fault()


# --- partial failures -------------------------------------------------------------------------------------------------

def test_partial_reports_the_chosen_indexes_failed_and_forwards_only_the_others(api: FakeApi,
                                                                                proxy: FaultProxy) -> None:
    proxy.set(Fault("partial", indexes=(0, 2)))

    answer = request(proxy.collect_url, batch("e0", "e1", "e2", "e3"))

    assert answer.status == 200
    assert answer.body == {"accepted": 2, "failed": 2, "failures": [
        {"index": 0, "errorCode": faults.PARTIAL_ERROR}, {"index": 2, "errorCode": faults.PARTIAL_ERROR}]}
    assert api.received() == ["e1", "e3"]
    exchange = proxy.exchanges()[0]
    assert exchange.forwarded == ["e1", "e3"] and exchange.accepted == ["e1", "e3"]


def test_partial_maps_the_apis_own_failures_back_to_the_batchs_indexes(api: FakeApi, proxy: FaultProxy) -> None:
    api.fail = {"e3"}  # index 1 of the forwarded [e1, e3], index 3 of the batch
    proxy.set(Fault("partial", indexes=(0, 2)))

    answer = request(proxy.collect_url, batch("e0", "e1", "e2", "e3"))

    assert [f["index"] for f in answer.body["failures"]] == [0, 2, 3]
    assert answer.body["accepted"] == 1 and answer.body["failed"] == 3
    assert proxy.exchanges()[0].accepted == ["e1"]


def test_partial_ignores_indexes_beyond_the_batch(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("partial", indexes=(1, 7)))

    answer = request(proxy.collect_url, batch("e0", "e1"))

    assert answer.body["failures"] == [{"index": 1, "errorCode": faults.PARTIAL_ERROR}]
    assert api.received() == ["e0"]


def test_partial_failing_every_event_is_a_503_like_the_apis(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("partial", indexes=(0, 1)))

    answer = request(proxy.collect_url, batch("e0", "e1"))

    assert answer.status == 503 and answer.headers["Retry-After"] == "1" and api.bodies == []


def test_partial_forwards_a_body_that_is_not_a_batch_untouched(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("partial", indexes=(0,)))

    answer = request(proxy.collect_url, b"not json")

    assert answer.status == 400 and api.raw == [b"not json"]
    assert proxy.exchanges()[0].received == []


# --- connection faults ------------------------------------------------------------------------------------------------

def test_down_refuses_connections_and_pass_reopens_the_same_port(api: FakeApi, proxy: FaultProxy) -> None:
    port = proxy.port
    proxy.set(Fault("down"))

    with pytest.raises(urllib.error.URLError) as refused:
        request(proxy.collect_url, batch("e1"))
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    assert control(proxy).body["mode"] == "down"  # the control endpoint stays up

    proxy.set(Fault())
    answer = request(proxy.collect_url, batch("e2"))

    assert proxy.port == port and answer.status == 200 and api.received() == ["e2"]


def test_reset_resets_the_connection_after_reading_the_request(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("reset"))
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)

    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        connection.request("POST", PATH, body=batch("e1"), headers={"Content-Type": "application/json"})
        connection.getresponse().read()
    connection.close()

    assert api.bodies == [] and proxy.exchanges()[0].status == 0


def test_delay_forwards_after_the_delay(api: FakeApi, proxy: FaultProxy) -> None:
    proxy.set(Fault("delay", delay_ms=300))

    began = time.monotonic()
    answer = request(proxy.collect_url, batch("e1"))

    assert answer.status == 200 and time.monotonic() - began >= 0.3 and api.received() == ["e1"]


def test_an_unreachable_api_is_a_502_with_cors() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{port}{PATH}", allowed_origins=[ORIGIN]) as proxy:
        answer = request(proxy.collect_url, batch("e1"))

    assert answer.status == 502 and answer.headers["Access-Control-Allow-Origin"] == ORIGIN


# --- control endpoint -------------------------------------------------------------------------------------------------

def test_the_control_endpoint_sets_shows_logs_and_resets(api: FakeApi, proxy: FaultProxy) -> None:
    set_answer = control(proxy, "", {"mode": "503", "retryAfter": 3, "times": 1})
    shown = control(proxy)
    refused = request(proxy.collect_url, batch("e1"))
    logged = control(proxy, "/exchanges")
    health = control(proxy, "/health")
    reset = control(proxy, "/reset")

    assert set_answer.status == 200 and shown.body == {"mode": "503", "retryAfter": 3, "indexes": [], "delayMs": 0,
                                                       "times": 1}
    assert refused.status == 503 and refused.headers["Retry-After"] == "3"
    assert [(e["mode"], e["status"], e["received"]) for e in logged.body] == [("503", 503, ["e1"])]
    assert health.body == {"status": "ok", "collectUrl": proxy.collect_url}
    assert reset.body["mode"] == "pass" and proxy.exchanges() == []


@pytest.mark.parametrize("document", [
    {"mode": "flood"},
    {"mode": "partial"},
    {"mode": "partial", "indexes": [-1]},
    {"mode": "partial", "indexes": "0"},
    {"mode": "503", "retryAfter": "2"},
    {"mode": "delay", "delayMs": 90000},
    {"mode": "429", "times": 0},
    {"mode": "pass", "colour": "red"},
    [],
])
def test_the_control_endpoint_refuses_a_bad_fault(proxy: FaultProxy, document: Any) -> None:
    answer = request(proxy.control_url, json.dumps(document).encode())

    assert answer.status == 400 and answer.body["message"]
    assert proxy.fault() == Fault()


def test_the_control_endpoint_refuses_a_body_that_is_not_json(proxy: FaultProxy) -> None:
    assert request(proxy.control_url, b"{mode").status == 400


def test_the_control_endpoint_answers_404_for_an_unknown_route(proxy: FaultProxy) -> None:
    assert control(proxy, "/nothing").status == 404
    assert request(proxy.control_url + "/nothing", b"{}").status == 404


@pytest.mark.parametrize("kwargs", [{"mode": "nope"}, {"mode": "503", "retry_after": -1},
                                    {"mode": "503", "retry_after": True}, {"mode": "partial"},
                                    {"mode": "delay", "delay_ms": -5}, {"times": 0}])
def test_a_bad_fault_is_refused_in_python(kwargs: dict[str, Any]) -> None:
    with pytest.raises(FaultError):
        Fault(**kwargs)


def test_only_an_http_upstream_is_accepted() -> None:
    with pytest.raises(FaultError, match="http URL"):
        FaultProxy("https://example.com/v1/events")


def test_the_command_line_refuses_a_bad_upstream(capsys: pytest.CaptureFixture[str]) -> None:
    assert faults.main(["--upstream", "ftp://x/v1/events"]) == 1
    assert capsys.readouterr().err.startswith("error: the upstream must be an http URL")
