"""Benchmark of the sandbox's serving side (run on demand, not part of the tests):

    .venv/bin/python -m benchmarks.sandbox_serving [--requests 200] [--interactions 20000]

Starts the real recommendations and items handlers in ``LambdaHost``s behind the local gateway (moto's server for
S3/SSM, the Personalize stand-in over HTTP), then prints: the hosts' start time (package build + import + health),
the latency of ``GET /recommendations/{userId}`` end to end (HTTP → gateway → proxy event → handler → stand-in →
reply), and the stand-in's own ``GetRecommendations`` time in-process with a given number of interactions, which
is what grows with a long sandbox session. No targets: the figures say where the time of a changed recommendation
goes on this side of the stream.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handlers")]

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from common.contract import Env  # noqa: E402
from tools.fake_personalize import serve  # noqa: E402
from tools.sandbox.gateway import Serving  # noqa: E402
from tools.sandbox.lambda_host import FunctionSpec  # noqa: E402
from tools.sandbox.personalize import PersonalizeStandIn  # noqa: E402
from tools.synth import synthesize_stack  # noqa: E402

REGION = "eu-west-1"
KEY = "benchmark-key"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def stand_in_latency(interactions: int, calls: int = 20) -> float:
    """Milliseconds per GetRecommendations (unread filter) after ``interactions`` view events over 500 readers."""
    stand_in = PersonalizeStandIn(region=REGION)
    rng = random.Random(1)  # noqa: S311 (test data)
    items = [f"p{i}" for i in range(300)]
    now = time.time()
    for n in range(interactions // 10):
        events = [{"eventId": f"e{n}-{k}", "eventType": "view", "itemId": rng.choice(items), "sentAt": now}
                  for k in range(10)]
        stand_in.handle("POST", "/events", json.dumps({"trackingId": stand_in.tracking_id, "sessionId": f"s{n % 500}",
                                                       "userId": f"u{n % 500}", "eventList": events}).encode())
    body = json.dumps({"campaignArn": stand_in.campaign_arn, "userId": "u3", "numResults": 10,
                       "filterArn": stand_in.filter_arns["unread"]}).encode()
    started = time.perf_counter()
    for _ in range(calls):
        stand_in.handle("POST", "/recommendations", body)
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--interactions", type=int, default=20000)
    args = parser.parse_args()
    synthesis = synthesize_stack("dev", preview=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    stand_in = PersonalizeStandIn(region=REGION, prefix="cp-dev-euw1")
    try:
        aws = {"endpoint_url": endpoint, "region_name": REGION, "aws_access_key_id": "t", "aws_secret_access_key": "t"}
        env = FunctionSpec.from_synthesis(synthesis, "recommendations").environment
        boto3.client("s3", **aws).create_bucket(Bucket=env[Env.DATA_BUCKET],
                                                CreateBucketConfiguration={"LocationConstraint": REGION})
        ssm = boto3.client("ssm", **aws)
        for variable in (Env.CAMPAIGN_ARN_PARAMETER, Env.FILTER_ARNS_PARAMETER):
            ssm.put_parameter(Name=env[variable], Value=stand_in.parameters()[env[variable].rsplit("/", 1)[1]],
                              Type="String")
        with serve(stand_in) as personalize, tempfile.TemporaryDirectory() as workdir:
            endpoints = {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL_SSM": endpoint,
                         "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS": personalize,
                         "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME": personalize}
            began = time.perf_counter()
            serving = Serving.start(synthesis, Path(workdir), endpoints=endpoints, region=REGION, api_keys={KEY},
                                    allowed_origins=[])
            started = time.perf_counter() - began
            try:
                latencies = []
                for n in range(args.requests):
                    url = f"{serving.url}/recommendations/reader-{n % 20}?numResults=10"
                    request = urllib.request.Request(url, headers={"x-api-key": KEY})  # noqa: S310 (loopback)
                    t = time.perf_counter()
                    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 (loopback)
                        reply.read()
                    latencies.append((time.perf_counter() - t) * 1000)
            finally:
                serving.stop()
    finally:
        moto.stop()
    print(f"hosts started (recommendations + items, in parallel): {started:.2f} s")
    print(f"GET /recommendations through the gateway, {args.requests} requests: "
          f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms "
          f"(first, cold: {latencies[0]:.1f} ms)")
    for count in (1000, args.interactions):
        print(f"stand-in GetRecommendations in-process with {count} interactions: {stand_in_latency(count):.1f} ms")


if __name__ == "__main__":
    main()
