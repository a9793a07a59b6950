"""Benchmark of the sandbox's start-up (run on demand, not part of the tests):

    .venv/bin/python -m benchmarks.sandbox_startup [--runs 3] [--cold]

Prints, per run: LocalStack alone (start until every service answers and Kinesis has really started, then stop),
and the whole ``python -m tools.sandbox`` (launch until ``urls.json`` is written, a beacon's PutEvents at the
stand-in, SIGTERM until the process and all its children are gone). ``--cold`` first removes the shared LocalStack
libraries and uses an empty npm cache, so kinesis-local is fetched from npm as on a fresh machine (the venv itself
is not rebuilt: time ``python -m tools.sandbox.localstack --install`` on a machine without it for that).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.sandbox import localstack  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def localstack_once() -> tuple[float, float]:
    began = time.monotonic()
    instance = localstack.start()
    ready = time.monotonic()
    instance.stop()
    return ready - began, time.monotonic() - ready


def sandbox_once(workdir: Path) -> tuple[float, float, float]:
    urls_file = workdir / "urls.json"
    began = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "tools.sandbox", "--site-port", str(free_port()), "--port",
                                str(free_port()), "--urls-file", str(urls_file)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while not urls_file.exists():
            if process.poll() is not None:
                raise SystemExit(f"the sandbox exited with {process.returncode}")
            time.sleep(0.05)
        ready = time.monotonic() - began
        urls = json.loads(urls_file.read_text())
        event_id = f"bench-{time.time_ns()}"
        body = json.dumps({"events": [{"eventId": event_id, "eventType": "click", "sessionId": "bench",
                                       "itemId": "post-1", "timestamp": int(time.time() * 1000)}]}).encode()
        sent = time.monotonic()
        urllib.request.urlopen(urllib.request.Request(urls["collectUrl"], data=body, method="POST",  # noqa: S310
                                                      headers={"Content-Type": "text/plain"}), timeout=10).read()
        while True:
            with urllib.request.urlopen(f"{urls['personalizeUrl']}/_sandbox/calls", timeout=10) as reply:  # noqa: S310
                calls = json.loads(reply.read())
            if any(e["eventId"] == event_id for c in calls["putEvents"] for e in c["eventList"]):
                break
            time.sleep(0.02)
        delivered = time.monotonic() - sent
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        return ready, delivered, time.monotonic() - stopping
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="fetch kinesis-local again with an empty npm cache")
    args = parser.parse_args()
    localstack.install_venv()
    figures: dict[str, list[float]] = {"localstack ready": [], "localstack stop": [], "sandbox ready": [],
                                       "beacon to PutEvents": [], "sandbox stop": []}
    with tempfile.TemporaryDirectory() as scratch:
        for run in range(args.runs):
            if args.cold and run == 0:
                shutil.rmtree(localstack.SHARED_LIBS, ignore_errors=True)
                os.environ["NPM_CONFIG_CACHE"] = str(Path(scratch) / "npm-cache")
            ready, stop = localstack_once()
            os.environ.pop("NPM_CONFIG_CACHE", None)
            sandbox_ready, delivered, sandbox_stop = sandbox_once(Path(scratch))
            for name, value in zip(figures, (ready, stop, sandbox_ready, delivered, sandbox_stop), strict=True):
                figures[name].append(value)
            print(f"run {run + 1}: LocalStack ready {ready:.1f} s (stop {stop:.1f} s); sandbox ready "
                  f"{sandbox_ready:.1f} s, beacon→PutEvents {delivered * 1000:.0f} ms, stop {sandbox_stop:.1f} s")
    for name, values in figures.items():
        print(f"{name:>20}: median {statistics.median(values):.2f} s  (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
