"""Benchmark of the real-time event processor (run on demand, not part of the tests):

    .venv/bin/python -m benchmarks.event_processor [--events 1000] [--sessions 50] [--latency-ms 20]

Drives the processor with N events over S sessions against a local fake Personalize endpoint (HTTP on 127.0.0.1,
every call delayed by the latency), side by side with a naive baseline that sends one PutEvents per event in order,
then measures the processor's own CPU per event with a zero-latency in-process client, and the handler's import time
next to a bare ``import boto3``. Targets: ≤ 100 calls for 1000 events, ≥ 5x faster than naive, ≤ 50 µs CPU per event.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handlers")]

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from common.events import decode_record  # noqa: E402
from common.putevents import EventProcessor, Outcome, put_events_event  # noqa: E402
from components.function import HANDLERS_ROOT  # noqa: E402
from tools.fake_personalize import FakePersonalize, serve  # noqa: E402
from tools.lambda_sandbox import LAYER_PACKAGES, RUNTIME_PACKAGES, build_package, site_dir  # noqa: E402

TYPES = ("view", "click", "read", "share")


class StaticParameter:
    def get(self) -> str:
        return "benchmark-tracker"

    def invalidate(self) -> None:
        pass


class NoDeadLetters:
    def send(self, letters: Any) -> set[str]:
        return set()


class InstantClient:
    def put_events(self, **_: Any) -> dict[str, Any]:
        return {}


def records(events: int, sessions: int) -> list[dict[str, Any]]:
    import base64
    import json

    out = []
    for i in range(events):
        event = {"eventId": f"e-{i}", "eventType": TYPES[i % 4], "sessionId": f"s-{i % sessions}",
                 "userId": f"u-{i % sessions}", "itemId": f"post-{i % 97}", "timestamp": 1_764_150_000_000 + i,
                 "properties": {"section": "engineering"}}
        data = base64.b64encode(json.dumps({"v": 1, "event": event, "server": {"requestId": "r"}}).encode())
        out.append({"kinesis": {"sequenceNumber": str(i), "partitionKey": event["sessionId"],
                                "data": data.decode()}})
    return out


def processor(client: Any, workers: int = 8) -> EventProcessor:
    return EventProcessor(events_client=client, tracking_id=StaticParameter(),  # type: ignore[arg-type]
                          dead_letters=NoDeadLetters(), event_types=TYPES,  # type: ignore[arg-type]
                          executor=ThreadPoolExecutor(max_workers=workers))


def import_seconds(statement: str, paths: list[Path]) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-S", "-c", code], env={"PYTHONPATH": os.pathsep.join(map(
        str, paths))}, capture_output=True, text=True, check=True).stdout) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    batch = records(args.events, args.sessions)
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "benchmark")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "benchmark")

    results = {}
    for name in ("processor", "naive"):
        fake = FakePersonalize(latency_seconds=args.latency_ms / 1000)
        with serve(fake) as endpoint:
            client = boto3.client("personalize-events", endpoint_url=endpoint,
                                  config=Config(retries={"total_max_attempts": 1}, max_pool_connections=32))
            started = time.perf_counter()
            if name == "processor":
                report = processor(client).process(batch, budget_seconds=300)
                assert report.count(Outcome.SENT) == args.events, "the benchmark lost events"
            else:
                for record in batch:  # the usual sample: one call per event, in order
                    event = decode_record(record["kinesis"]["data"], TYPES)
                    request = {"trackingId": "benchmark-tracker", "sessionId": event.session_id,
                               "eventList": [put_events_event(event)]}
                    if event.user_id:
                        request["userId"] = event.user_id
                    client.put_events(**request)
            results[name] = (len(fake.calls), time.perf_counter() - started)

    cpu_runs = []
    for _ in range(5):
        started = time.process_time()
        processor(InstantClient(), workers=1).process(batch, budget_seconds=300)
        cpu_runs.append((time.process_time() - started) / args.events * 1e6)

    with tempfile.TemporaryDirectory() as tmp:
        package = build_package(HANDLERS_ROOT, "event_processor", Path(tmp) / "package")
        layer, runtime = site_dir(Path(tmp) / "layer", LAYER_PACKAGES), site_dir(Path(tmp) / "runtime",
                                                                                 RUNTIME_PACKAGES)
        handler_import = import_seconds("import event_processor", [package, layer, runtime])
        boto3_import = import_seconds("import boto3", [runtime])

    (calls, wall), (naive_calls, naive_wall) = results["processor"], results["naive"]
    print(f"events: {args.events} over {args.sessions} sessions, fake endpoint latency {args.latency_ms:.0f} ms/call")
    print(f"processor: {calls} PutEvents calls, {wall:.2f} s wall")
    print(f"naive:     {naive_calls} PutEvents calls, {naive_wall:.2f} s wall")
    print(f"speed-up:  {naive_wall / wall:.1f}x (target >= 5x); calls {calls} (target <= {args.events // 10})")
    print(f"CPU per event, zero latency: {statistics.median(cpu_runs):.1f} µs (target <= 50 µs; median of 5)")
    print(f"import time: event_processor {handler_import * 1000:.0f} ms, bare boto3 {boto3_import * 1000:.0f} ms "
          "(median of 5, fresh interpreters)")


if __name__ == "__main__":
    main()
