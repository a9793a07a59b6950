"""``python -m tools.sandbox`` end to end: it starts everything, says where, carries a beacon to Personalize and
leaves nothing behind on SIGTERM.

GIVEN the sandbox started as a user would, WHEN ``.sandbox/urls.json``-style output appears, THEN a beacon-shaped
POST reaches the Personalize stand-in's PutEvents through LocalStack, the stream and the real event processor, and
SIGTERM stops every process it started.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser_fixtures import alive, descendants, free_port
from tools.sandbox import __main__ as sandbox
from tools.sandbox import localstack

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240
PR_SET_CHILD_SUBREAPER = 36


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


@contextlib.contextmanager
def adopting_orphans() -> Iterator[Callable[[], list[str]]]:
    """Make this process the subreaper of everything started inside, so an orphaned grandchild stays visible as our
    descendant; yields a function listing the living ones (pid and command line) that were not there before."""
    libc = ctypes.CDLL(None, use_errno=True)
    before = descendants(os.getpid())
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is not available")

    def survivors() -> list[str]:
        return [f"{pid}: {command_line(pid)}" for pid in sorted(descendants(os.getpid()) - before) if alive(pid)]

    try:
        yield survivors
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def wait_gone(survivors: Callable[[], list[str]], timeout: float = 10) -> list[str]:
    """Processes killed a moment ago may still be exiting: poll until none is left or the time is up."""
    deadline = time.monotonic() + timeout
    while (left := survivors()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def get_json(url: str, **headers: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def run_sandbox(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tools.sandbox", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=env or dict(os.environ))


def kill_group(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@dataclass
class Running:
    process: subprocess.Popen[str]
    urls: dict[str, Any]
    urls_file: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    urls_file = tmp_path_factory.mktemp("sandbox") / "urls.json"
    process = run_sandbox("--faults", "--site-port", str(free_port()), "--port", str(free_port()),
                          "--urls-file", str(urls_file))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not urls_file.exists():
            if process.poll() is not None:
                stderr = process.stderr.read() if process.stderr else ""
                pytest.fail(f"the sandbox exited with {process.returncode}: {stderr[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the sandbox did not write its URLs in time")
            time.sleep(0.2)
        yield Running(process, json.loads(urls_file.read_text()), urls_file)
    finally:
        kill_group(process)  # only if a test failed before SIGTERM did its work


def test_the_urls_file_names_everything_a_site_and_the_tests_need(running: Running) -> None:
    urls = running.urls

    assert urls["site"].startswith("http://localhost:") and urls["collectUrl"].endswith("/v1/events")
    assert urls["servingApiKey"] and urls["collectApiKey"] is None
    assert urls["posts"] >= 30
    status, page = 0, b""
    with urllib.request.urlopen(urls["site"], timeout=10) as response:
        status, page = response.status, response.read()
    assert status == 200 and b"clickstream.min.js" in page
    assert get_json(f"{urls['personalizeUrl']}/_sandbox/health") == (200, {"status": "ok"})


def test_the_posts_were_registered_through_the_items_handler(running: Running) -> None:
    _, calls = get_json(f"{running.urls['personalizeUrl']}/_sandbox/calls")

    registered = {item["itemId"] for call in calls["putItems"] for item in call["items"]}
    assert len(registered) == running.urls["posts"]


def put_events_of(urls: dict[str, Any], event_id: str) -> list[dict[str, Any]]:
    _, calls = get_json(f"{urls['personalizeUrl']}/_sandbox/calls")
    return [e for call in calls["putEvents"] for e in call["eventList"] if e["eventId"] == event_id]


@pytest.mark.parametrize("through", ["collectUrl", "upstreamCollectUrl"], ids=["fault proxy", "LocalStack"])
def test_a_beacon_reaches_personalize_put_events(running: Running, through: str) -> None:
    urls = running.urls
    event: dict[str, Any] = {"eventId": f"e-{time.time_ns()}", "eventType": "click", "sessionId": "s-sandbox-test",
                             "itemId": "post-x", "timestamp": int(time.time() * 1000)}
    beacon = urllib.request.Request(urls[through], data=json.dumps({"events": [event]}).encode(),
                                    method="POST", headers={"Content-Type": "text/plain",
                                                            "Origin": urls["site"].rstrip("/")})
    with urllib.request.urlopen(beacon, timeout=20) as response:
        assert json.loads(response.read()) == {"accepted": 1, "failed": 0, "failures": []}
        assert response.headers["Access-Control-Allow-Origin"] == urls["site"].rstrip("/")

    deadline = time.monotonic() + 30
    sent: list[dict[str, Any]] = []
    while not sent and time.monotonic() < deadline:
        sent = put_events_of(urls, event["eventId"])
        time.sleep(0.1)
    assert sent == [{"eventId": event["eventId"], "eventType": "click", "itemId": "post-x",
                     "sentAt": event["timestamp"] // 1000}]


def test_with_faults_the_site_posts_through_the_switchable_proxy(running: Running) -> None:
    urls = running.urls
    assert urls["collectUrl"] != urls["upstreamCollectUrl"]
    control = urllib.request.Request(urls["faultsUrl"], method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"mode": "503", "retryAfter": 2, "times": 1}).encode())
    urllib.request.urlopen(control, timeout=10).read()
    event_id = f"e-fault-{time.time_ns()}"
    body = json.dumps({"events": [{"eventId": event_id, "eventType": "view", "sessionId": "s-fault", "itemId": "p",
                                   "timestamp": int(time.time() * 1000)}]}).encode()

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(urls["collectUrl"], data=body, method="POST",
                                                      headers={"Content-Type": "text/plain"}), timeout=10)

    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "2"


def test_recommendations_answer_with_the_key_and_refuse_without(running: Running) -> None:
    urls = running.urls

    status, reply = get_json(f"{urls['recommendationsUrl']}/s-sandbox-test?numResults=3",
                             **{"x-api-key": urls["servingApiKey"]})
    refused, _ = get_json(f"{urls['recommendationsUrl']}/s-sandbox-test")

    assert status == 200 and len(reply["items"]) == 3 and reply["recommendationId"]
    assert refused == 403


def test_sigterm_stops_every_process_it_started(running: Running) -> None:
    children = descendants(running.process.pid)
    assert len(children) >= 4  # LocalStack (and kinesis-local), the event processor and the serving functions

    running.process.send_signal(signal.SIGTERM)
    code = running.process.wait(60)

    assert code == 0
    assert wait_gone(lambda: [str(pid) for pid in children if alive(pid)]) == []
    assert not running.urls_file.exists()


@pytest.mark.parametrize("moment", ["starting LocalStack", "starting the functions", "starting the serving API"])
def test_sigterm_during_start_up_leaves_no_process_behind(tmp_path: Path, moment: str) -> None:
    urls_file = tmp_path / "urls.json"
    with adopting_orphans() as survivors:
        process = run_sandbox("--site-port", str(free_port()), "--port", str(free_port()),
                              "--urls-file", str(urls_file))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")) if process.stderr
                                  else None, daemon=True)
        reader.start()
        try:
            # GIVEN the sandbox half-way through its start-up
            deadline = time.monotonic() + START_TIMEOUT
            while not any(moment in line for line in lines):
                assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
                time.sleep(0.05)

            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
        finally:
            kill_group(process)
        left = wait_gone(survivors)

    assert code == 0
    assert left == []
    assert not urls_file.exists()


def test_sigkill_of_the_sandboxs_process_group_takes_localstack_down_too(tmp_path: Path) -> None:
    # A harness that kills the whole group (no clean-up runs) must not leave LocalStack or kinesis-local running.
    with adopting_orphans() as survivors:
        process = run_sandbox("--site-port", str(free_port()), "--port", str(free_port()),
                              "--urls-file", str(tmp_path / "urls.json"))
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")) if process.stderr else None,
                         daemon=True).start()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not any("creating the collection API" in line for line in lines):
                assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
                time.sleep(0.05)
            assert any("localstack.runtime.main" in command_line(pid) for pid in descendants(process.pid))
        finally:
            kill_group(process)
        left = wait_gone(survivors)

    assert left == []


# --- refusing to start ------------------------------------------------------------------------------------------------

def test_a_busy_port_is_one_clear_error_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = run_sandbox("--site-port", str(port))
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            kill_group(process)

    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1] == f"error: port {port} on 127.0.0.1 is busy: choose another one " \
                                              "(--site-port, --port)"
    assert "Traceback" not in stderr


def test_missing_python_313_is_one_clear_error_line(tmp_path: Path) -> None:
    process = run_sandbox("--site-port", str(free_port()), "--port", str(free_port()),
                          env={**os.environ, "PYENV_ROOT": str(tmp_path)})
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        kill_group(process)

    assert process.returncode == 1
    assert stderr.strip().splitlines()[-1].startswith("error: Python 3.13.0 is missing")
    assert "Traceback" not in stderr


def test_a_missing_tracker_build_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sandbox, "TRACKER_DIR", tmp_path)

    with pytest.raises(sandbox.SandboxError, match="npm run build"):
        sandbox.check_tracker()


# --- helpers ----------------------------------------------------------------------------------------------------------

def test_synthesized_values_become_local_ones() -> None:
    queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/cp-dlq"
    replacements = {queue: "http://sqs.eu-west-1.127.0.0.1:4566/000000000000/cp-dlq"}

    assert sandbox.localize(queue, replacements) == replacements[queue]
    assert sandbox.localize("arn:aws:sqs:eu-west-1:123456789012:q", {}) == "arn:aws:sqs:eu-west-1:000000000000:q"
    assert sandbox.localize("/cp/personalize/tracking-id", replacements) == "/cp/personalize/tracking-id"


class FakeSsm:
    def __init__(self) -> None:
        self.parameters: dict[str, str] = {}

    def put_parameter(self, *, Name: str, Value: str, Type: str, Overwrite: bool) -> None:  # noqa: N803
        self.parameters[Name] = Value


def test_only_parameters_the_functions_read_and_the_stand_in_knows_are_published() -> None:
    ssm = FakeSsm()
    names = {"/cp/personalize/tracking-id", "/cp/personalize/campaign-arn", "/cp/other/thing"}

    published = sandbox.publish_parameters(ssm, names, {"tracking-id": "t-1", "campaign-arn": "arn:c", "x": "y"})

    assert ssm.parameters == published == {"/cp/personalize/tracking-id": "t-1",
                                           "/cp/personalize/campaign-arn": "arn:c"}


def test_the_urls_file_is_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "urls.json"
    target.write_text("old")

    sandbox.write_atomically(target, {"site": "http://localhost:1/"})

    assert json.loads(target.read_text()) == {"site": "http://localhost:1/"}
    assert [p.name for p in tmp_path.iterdir()] == ["urls.json"]


def test_clean_up_continues_after_a_failing_step(capsys: pytest.CaptureFixture[str]) -> None:
    stopped: list[str] = []
    cleanup = sandbox.Cleanup()
    cleanup.add("first", lambda: stopped.append("first"))
    cleanup.add("broken", lambda: (_ for _ in ()).throw(RuntimeError("boom")))
    cleanup.add("last", lambda: stopped.append("last"))

    cleanup.run()

    assert stopped == ["last", "first"]
    assert "stopping broken failed: boom" in capsys.readouterr().err


# --- the LocalStack bootstrap -----------------------------------------------------------------------------------------

def fake_localstack_venv(root: Path, script: str) -> Path:
    """A venv whose ``python`` is a shell script, stamped as installed, to drive the start-up's failure paths."""
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    (venv / ".requirements.sha256").write_text(localstack._requirements_digest() + "\n")
    return venv


def test_localstack_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    venv = fake_localstack_venv(tmp_path, "echo 'cannot bind the gateway'; exit 3")

    with pytest.raises(localstack.LocalStackError, match=r"exited with 3:\n.*cannot bind the gateway"):
        localstack.start(venv=venv, timeout=30)


def test_localstack_that_never_answers_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    venv = fake_localstack_venv(tmp_path, f"echo $$ > {tmp_path}/pid; exec sleep 60")

    with pytest.raises(localstack.LocalStackError, match="did not become ready in 1 s"):
        localstack.start(venv=venv, timeout=1)

    assert not alive(int((tmp_path / "pid").read_text()))


def test_localstack_refuses_a_busy_port_and_a_missing_venv(tmp_path: Path) -> None:
    venv = fake_localstack_venv(tmp_path, "exit 0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        with pytest.raises(localstack.LocalStackError, match="is busy"):
            localstack.start(busy.getsockname()[1], venv=venv)

    with pytest.raises(localstack.LocalStackError, match="is not installed"):
        localstack.start(venv=tmp_path / "nothing")


def test_a_changed_requirements_file_means_not_installed(tmp_path: Path) -> None:
    venv = fake_localstack_venv(tmp_path, "exit 0")
    assert localstack.is_installed(venv)

    (venv / ".requirements.sha256").write_text("stale\n")

    assert not localstack.is_installed(venv)


@pytest.mark.parametrize(("report", "ready"), [
    ({"services": {"kinesis": "running", "s3": "available"}}, True),
    ({"services": {"kinesis": "initializing", "s3": "available"}}, False),
    ({"services": {"s3": "available"}}, False),
    (None, False),
])
def test_readiness_needs_every_requested_service(report: dict[str, Any] | None, ready: bool) -> None:
    assert localstack.services_ready(report, ["kinesis", "s3"]) is ready
