"""Helpers of the browser tests (tests/test_browser.py): the sandbox started once, headless Chromium, readers.

``running_sandbox()`` starts ``python -m tools.sandbox --faults`` (the fault proxy in front of the collection API,
its control URL in ``urls.json`` as ``faultsUrl``) on free ports, waits for ``urls.json``, and on exit sends SIGTERM
and checks that every process it started is gone. ``Sandbox`` reads what arrived where: the proxy's exchanges (what
the browser sent, and what was done with it), the Kinesis stream's records in LocalStack, the PutEvents calls the
Personalize stand-in received.

Everything waits on conditions (``wait_for``) with bounded timeouts; nothing sleeps a fixed time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.sandbox_fixtures import stream_records, wait_for

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]

__all__ = ["CHROMIUM_FLAGS", "Sandbox", "chromium_path", "running_sandbox", "wait_for"]


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise AssertionError("chromium is not installed (make chromium: apt-get install chromium)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read() or b"null")


# --- processes --------------------------------------------------------------------------------------------------------

def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = set(), [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.add(child)
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- the sandbox ------------------------------------------------------------------------------------------------------

@dataclass
class Sandbox:
    urls: dict[str, Any]
    kinesis: Any = field(init=False)

    def __post_init__(self) -> None:
        self.kinesis = boto3.client("kinesis", endpoint_url=self.urls["localstackUrl"], region_name=self.urls["region"],
                                    aws_access_key_id="test", aws_secret_access_key="test")

    @property
    def site(self) -> str:
        return str(self.urls["site"])

    @property
    def origin(self) -> str:
        return self.site.rstrip("/")

    # the fault proxy
    def fault(self, mode: str = "pass", **options: Any) -> None:
        http_json(self.urls["faultsUrl"], {"mode": mode, **options})

    def exchanges(self) -> list[dict[str, Any]]:
        """The proxy's log, by the time each request came in (it logs when it answered)."""
        log: list[dict[str, Any]] = http_json(f"{self.urls['faultsUrl']}/exchanges")
        return sorted(log, key=lambda e: e["at"])

    def posts(self, session: str | None = None) -> list[dict[str, Any]]:
        """The collection requests the proxy answered (of one session's events), oldest first."""
        return [e for e in self.exchanges() if e["method"] == "POST" and (session is None or session in e["sessions"])]

    # the stand-in
    def calls(self) -> dict[str, list[dict[str, Any]]]:
        calls: dict[str, list[dict[str, Any]]] = http_json(f"{self.urls['personalizeUrl']}/_sandbox/calls")
        return calls

    def put_events(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Every (call, event) PutEvents received."""
        return [(call, event) for call in self.calls()["putEvents"] for event in call["eventList"]]

    def put_event_counts(self, ids: set[str]) -> Counter[str]:
        return Counter(event["eventId"] for _, event in self.put_events() if event["eventId"] in ids)

    def wait_in_put_events(self, ids: set[str], timeout: float = 30) -> Counter[str]:
        """Waits until every id reached PutEvents; returns how often each did."""
        counts: Counter[str] = wait_for(lambda: (c := self.put_event_counts(ids)) and set(c) == ids and c,
                                        timeout, f"{len(ids)} events in PutEvents")
        return counts

    # the stream
    def stream(self) -> list[dict[str, Any]]:
        """The stream's records: partition key and decoded data."""
        return [{"partitionKey": r["PartitionKey"], "arrival": r["ApproximateArrivalTimestamp"].timestamp(),
                 "data": json.loads(base64.b64decode(r["Data"]) if isinstance(r["Data"], str) else r["Data"])}
                for r in stream_records(self.kinesis, self.urls["streamName"])]

    def stream_counts(self, ids: set[str]) -> Counter[str]:
        return Counter(r["data"]["event"]["eventId"] for r in self.stream() if r["data"]["event"]["eventId"] in ids)


def _sandbox_command(urls_file: Path) -> list[str]:
    return [sys.executable, "-m", "tools.sandbox", "--faults", "--site-port", str(free_port()),
            "--port", str(free_port()), "--urls-file", str(urls_file)]


def _stop(process: subprocess.Popen[bytes], started: set[int]) -> list[int]:
    """SIGTERM, then the survivors among everything it started (SIGKILLed, so nothing leaks either way)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    deadline = time.monotonic() + 15
    while (left := [pid for pid in started if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def running_sandbox(workdir: Path) -> Iterator[Sandbox]:
    """The sandbox, started once; SIGTERM at the end, failing if any process it started is still alive."""
    urls_file = workdir / "urls.json"
    log = (workdir / "sandbox.log").open("wb")
    process = subprocess.Popen(_sandbox_command(urls_file), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    started: set[int] = set()
    left: list[int] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not urls_file.exists():
            if process.poll() is not None:
                raise AssertionError(f"the sandbox exited with {process.returncode}:\n"
                                     f"{(workdir / 'sandbox.log').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError("the sandbox did not write its URLs in time")
            time.sleep(0.1)
        urls = json.loads(urls_file.read_text())
        assert urls.get("faultsUrl"), "python -m tools.sandbox --faults wrote no faultsUrl"
        started = descendants(process.pid)
        yield Sandbox(urls)
    finally:
        started |= descendants(process.pid)
        left = _stop(process, started)
        log.close()
    assert process.returncode == 0, f"the sandbox exited with {process.returncode} on SIGTERM"
    assert left == [], f"processes left behind by the sandbox: {left}"
