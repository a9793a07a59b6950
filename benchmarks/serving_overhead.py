"""Benchmark of the recommendations function's own overhead, Personalize excluded (run on demand, not in the tests):

    .venv/bin/python -m benchmarks.serving_overhead [--requests 3000]

Calls the real Lambda handler (Powertools logging, metrics and tracing included; their output goes to /dev/null) for
each surface, warm, with in-process clients that answer at once: Personalize Runtime (25 items, or the candidates
ranked), SSM (the published campaign and filter ARNs) and S3 (the items store, for metadata). What is measured is
therefore everything the function does around Personalize: parsing, the deadline's worker hand-off, the fresh-post
promotion, metadata from the cached store documents, the reply and the metrics. Target: p99 ≤ 5 ms per surface.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handlers")]

import boto3  # noqa: E402

from common.contract import SURFACES, Env  # noqa: E402
from tests.conftest import FakeLambdaContext  # noqa: E402
from tests.deployed import function_environment  # noqa: E402

TARGET_P99_MS = 5.0
ITEMS = [f"post-{n}" for n in range(200)]
CAMPAIGNS = {s: f"arn:aws:personalize:eu-west-1:123456789012:campaign/cp-dev-euw1-{s}" for s in SURFACES}
FILTERS = {"unread": "arn:aws:personalize:eu-west-1:123456789012:filter/cp-dev-euw1-unread",
           "fresh": "arn:aws:personalize:eu-west-1:123456789012:filter/cp-dev-euw1-fresh"}


class InstantRuntime:
    def get_recommendations(self, **call: Any) -> dict[str, Any]:
        return {"itemList": [{"itemId": i, "score": 0.01} for i in ITEMS[:call["numResults"]]],
                "recommendationId": "RID-bench"}

    def get_personalized_ranking(self, **call: Any) -> dict[str, Any]:
        return {"personalizedRanking": [{"itemId": i, "score": 0.01} for i in call["inputList"]],
                "recommendationId": "RID-bench"}


class InstantSsm:
    class exceptions:  # noqa: N801 (boto3's attribute name)
        ParameterNotFound = KeyError

    def get_parameter(self, Name: str) -> dict[str, Any]:  # noqa: N803 (boto3's argument name)
        if Name.endswith("/campaign-arns"):
            return {"Parameter": {"Value": json.dumps(CAMPAIGNS)}}
        if Name.endswith("/filter-arns"):
            return {"Parameter": {"Value": json.dumps(FILTERS)}}
        if Name.endswith("/campaign-arn"):
            return {"Parameter": {"Value": CAMPAIGNS["for-you"]}}
        raise KeyError(Name)


class InstantS3:
    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        item_id = Key.rsplit("/", 1)[-1].removesuffix(".json")
        document = {"itemId": item_id, "creationTimestamp": 1_764_000_000, "category": "news",
                    "title": f"Title of {item_id}", "url": f"https://blog.example.com/{item_id}"}
        return {"Body": io.BytesIO(json.dumps(document).encode())}

    def list_objects_v2(self, **_: Any) -> dict[str, Any]:
        return {"Contents": []}


def events() -> dict[str, dict[str, Any]]:
    query = {"numResults": "25", "sessionId": "s-1"}
    base = {"requestContext": {"requestId": "r"}, "multiValueQueryStringParameters": None}
    return {
        "for-you": {**base, "httpMethod": "GET", "resource": "/recommendations/{userId}",
                    "pathParameters": {"userId": "reader-1"}, "queryStringParameters": {"numResults": "25"}},
        "related": {**base, "httpMethod": "GET", "resource": "/items/{itemId}/related",
                    "pathParameters": {"itemId": "post-1"}, "queryStringParameters": query},
        "trending": {**base, "httpMethod": "GET", "resource": "/trending", "queryStringParameters": query},
        "ranking": {**base, "httpMethod": "POST", "resource": "/rank",
                    "requestContext": {"requestId": "r", "authorizer": {"principalId": "reader-1"}},
                    "body": json.dumps({"userId": "reader-1", "itemIds": ITEMS[:50]})},
    }


def load_handler() -> Any:
    environment = {**function_environment("recommendations"), Env.SERVED_SURFACES: json.dumps(list(SURFACES)),
                   Env.METADATA_SURFACES: "[]", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "t",
                   "AWS_SECRET_ACCESS_KEY": "t", "POWERTOOLS_SERVICE_NAME": "recommendations",
                   "POWERTOOLS_TRACE_DISABLED": "true"}
    os.environ.update(environment)
    fakes = {"personalize-runtime": InstantRuntime(), "ssm": InstantSsm(), "s3": InstantS3()}
    boto3.client = lambda name, **_: fakes[name]
    return importlib.import_module("recommendations")


def measure(module: Any, event: dict[str, Any], requests: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (all threads of the process) milliseconds per request."""
    context = FakeLambdaContext()
    wall, cpu = [], []
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for _ in range(200):  # warm: caches filled, code paths hot
            module.handler(event, context)
        for _ in range(requests):
            started, started_cpu = time.perf_counter(), time.process_time()
            result = module.handler(event, context)
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
            assert result["statusCode"] == 200 and '"source":"personalize"' in result["body"], result
    return sorted(wall), sorted(cpu)


def percentile(values: list[float], share: float) -> float:
    return values[max(0, int(len(values) * share) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args(argv)
    module = load_handler()
    failed = False
    print(f"handler overhead per request, Personalize excluded ({args.requests} warm requests per surface; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    for surface, event in events().items():
        wall, cpu = measure(module, event, args.requests)
        ok = percentile(wall, 0.99) <= TARGET_P99_MS
        failed |= not ok
        print(f"  {surface:9} wall p50 {statistics.median(wall):6.3f}  p99 {percentile(wall, 0.99):6.3f}  "
              f"max {wall[-1]:6.3f} ms | CPU p50 {statistics.median(cpu):6.3f}  p99 {percentile(cpu, 0.99):6.3f} ms"
              f"   {'ok' if ok else 'OVER'} (target: wall p99 <= {TARGET_P99_MS} ms)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
