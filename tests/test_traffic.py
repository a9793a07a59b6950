"""Sample traffic: realistic readers, the training minimums met, every batch valid for the collection API, and a
sender that honours the API's replies (partial failures by index, 429/503 Retry-After) and its rate limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from components.templates import events_schema
from tools import traffic
from tools.traffic import Reply

NOW_MS = 1_764_150_000_000


def stack_event_types() -> tuple[str, ...]:
    return traffic.stack_training("dev")[0]


def dry_run(tmp_path: Path, *argv: str) -> list[dict[str, Any]]:
    out = tmp_path / "events.jsonl"
    assert traffic.main(["--stack", "dev", *argv, "--dry-run", str(out)], now_ms=NOW_MS) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_the_dry_run_meets_the_training_minimums_and_the_collection_schema(tmp_path: Path) -> None:
    # GIVEN 200 readers over 7 days WHEN written as a dry run
    bodies = dry_run(tmp_path, "--readers", "200", "--days", "7")

    # THEN every line is a valid POST /events body for the stack's event types
    validator = jsonschema.Draft4Validator(events_schema(stack_event_types()))
    for body in bodies:
        validator.validate(body)
    events = [e for body in bodies for e in body["events"]]
    # AND training's minimums are met by the signed-in readers' events (anonymous ones are not trained on)
    per_user: dict[str, int] = {}
    for e in events:
        if "userId" in e:
            per_user[e["userId"]] = per_user.get(e["userId"], 0) + 1
    assert sum(per_user.values()) >= 1000
    assert sum(1 for n in per_user.values() if n >= 2) >= 25
    # AND the traffic looks like readers: anonymous sessions, several categories, reading depth, recommendations
    assert any("userId" not in e for e in events)
    assert len({e["properties"]["category"] for e in events}) >= 5
    assert {e["eventType"] for e in events} == set(stack_event_types())
    depths = [e["properties"]["scrollDepth"] for e in events if "scrollDepth" in e["properties"]]
    assert min(depths) >= 0 and max(depths) <= 1 and len(set(depths)) > 10
    viewed = {(e["sessionId"], e["itemId"]) for e in events if e["eventType"] == "view"}
    reads = [e for e in events if e["eventType"] == "read"]
    assert reads and all((e["sessionId"], e["itemId"]) in viewed and e["properties"]["scrollDepth"] >= 0.7
                         for e in reads)
    assert any("recommendationId" in e and len(e["impression"]) <= 25 for e in events)
    assert len({e["eventId"] for e in events}) == len(events)
    # AND every event lies in the window of 7 days before now
    assert all(NOW_MS - 7 * 86_400_000 <= e["timestamp"] <= NOW_MS for e in events)


def test_few_readers_over_few_days_are_extended_until_the_minimums_are_met(tmp_path: Path) -> None:
    events = [e for body in dry_run(tmp_path, "--readers", "45", "--days", "1") for e in body["events"]]

    signed_in = [e for e in events if "userId" in e]
    assert len(signed_in) >= 1000


def test_too_few_readers_for_the_minimums_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert traffic.main(["--stack", "dev", "--readers", "20", "--dry-run", str(tmp_path / "x")]) == 2
    assert "cannot give 25 signed-in readers" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--batch-size", "501"], ["--rate", "0"], ["--collect-url", "http://x"]])
def test_bad_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        traffic.main(["--stack", "dev", *argv])
    assert exit_.value.code == 2


def test_without_the_pulumi_cli_and_flags_the_endpoint_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert traffic.main(["--stack", "dev", "--readers", "60", "--days", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot find the collection API of stack dev: the Pulumi CLI is not on PATH")


# --- against a local fake collector -----------------------------------------------------------------------------

@dataclass
class FakeCollector:
    """Answers POST /events like the collection API: scripted replies first, then 200 accepting everything."""

    script: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: dict[str, Any], key: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.received.append(body)
            self.keys.append(key)
            if self.script:
                return self.script.pop(0)
        return 200, {"accepted": len(body["events"]), "failed": 0, "failures": []}, {}


@pytest.fixture
def collector() -> Iterator[tuple[FakeCollector, str]]:
    fake = FakeCollector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, reply, headers = fake.answer(body, self.headers.get("x-api-key", ""))
            data = json.dumps(reply).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}/v1/events"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class FakeTime:
    now: float = 0.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def send(url: str, fake_time: FakeTime, *argv: str) -> int:
    return traffic.main(["--stack", "dev", "--readers", "60", "--days", "1", "--batch-size", "500",
                         "--collect-url", url, "--api-key", "k-123", *argv],
                        clock=fake_time.clock, sleep=fake_time.sleep, now_ms=NOW_MS)


def test_every_event_reaches_the_collector_once_with_the_key(collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector

    assert send(url, FakeTime()) == 0

    sent = [e["eventId"] for body in fake.received for e in body["events"]]
    assert len(sent) == len(set(sent)) >= 1000
    assert set(fake.keys) == {"k-123"}


def test_partial_failures_are_resent_by_index(collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector
    # GIVEN the first call's events 1 and 3 are refused by Kinesis (throttled)
    fake.script.append((200, {"accepted": 498, "failed": 2, "failures": [
        {"index": 1, "errorCode": "ProvisionedThroughputExceededException"},
        {"index": 3, "errorCode": "ProvisionedThroughputExceededException"}]}, {}))

    assert send(url, FakeTime()) == 0

    # THEN the next call resends exactly those two
    first, second = fake.received[0]["events"], fake.received[1]["events"]
    assert [e["eventId"] for e in second] == [first[1]["eventId"], first[3]["eventId"]]
    delivered = [e["eventId"] for body in fake.received for e in body["events"]]
    assert len(set(delivered)) == len(delivered) - 2  # nothing else sent twice


def test_503_and_429_are_retried_after_retry_after(collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector
    fake.script += [(503, {"message": "Slow down"}, {"Retry-After": "3"}),
                    (429, {"message": "Too Many Requests"}, {"Retry-After": "2"})]
    fake_time = FakeTime()

    assert send(url, fake_time, "--rate", "1000") == 0

    assert fake.received[0] == fake.received[1] == fake.received[2]  # the same batch, three times
    assert 3.0 in fake_time.slept and 2.0 in fake_time.slept


def test_a_500_without_retry_after_backs_off_and_retries_run_out(collector: tuple[FakeCollector, str],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = collector
    fake.script += [(500, {"message": "The events could not be accepted; retry later."}, {})] * 8
    fake_time = FakeTime()

    assert send(url, fake_time, "--rate", "1000") == 1

    assert len(fake.received) == 8
    backoffs = [s for s in fake_time.slept if s >= 0.5]
    assert backoffs == sorted(backoffs) and backoffs[0] == 0.5
    assert "still refused after 8 attempts" in capsys.readouterr().err


def test_a_400_is_not_retried(collector: tuple[FakeCollector, str], capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = collector
    fake.script.append((400, {"message": "Invalid request body", "errors": "[object has missing required "
                                                                          "properties ([\"itemId\"])]"}, {}))

    assert send(url, FakeTime()) == 1

    assert len(fake.received) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: the API refused the batch with 400: Invalid request body")


def test_the_rate_limit_is_respected(collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector
    fake_time = FakeTime()

    # GIVEN at most 2 calls a second WHEN every batch of 100 is sent
    assert traffic.main(["--stack", "dev", "--readers", "60", "--days", "1", "--batch-size", "100",
                         "--rate", "2", "--collect-url", url, "--api-key", "k"],
                        clock=fake_time.clock, sleep=fake_time.sleep, now_ms=NOW_MS) == 0

    # THEN the simulated time spent is at least (calls - 1) / rate, and no two calls were closer than 0.5 s
    calls = len(fake.received)
    assert calls > 10
    assert fake_time.now == pytest.approx((calls - 1) / 2)
    assert all(s == pytest.approx(0.5) for s in fake_time.slept)


def test_the_rate_limiter_waits_only_when_calls_come_too_fast() -> None:
    fake_time = FakeTime()
    limiter = traffic.RateLimiter(4, fake_time.clock, fake_time.sleep)

    limiter.wait()
    fake_time.now += 1.0  # a slow caller: no wait needed
    limiter.wait()
    limiter.wait()

    assert fake_time.slept == [pytest.approx(0.25)]


def test_a_reply_without_json_is_reported_not_traced_back() -> None:
    assert traffic._json(b"<html>Bad gateway</html>") == {"message": "<html>Bad gateway</html>"}
    assert Reply(502, {}, None).retry_after is None
