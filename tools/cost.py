"""What a stack would cost a month, before deploying it: from the stack's settings, an expected traffic profile and
the dated price table ``tools/prices.json``, by service.

    python -m tools.cost --stack dev --events-per-day 2000000 --recommendations-per-day 500000

An estimate of the main usage-driven and fixed charges (free tiers ignored, data transfer out of AWS ignored); the
price table says where and when its figures come from.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from components.observability import ALARMS
from components.settings import StackSettings, load_settings_from_values
from components.waf import REQUIRED_MANAGED_GROUPS
from tools.synth import ROOT, stack_config

PRICES = ROOT / "tools" / "prices.json"
HOURS_PER_MONTH = 730
DAYS_PER_MONTH = 30.4


@dataclass(frozen=True)
class Profile:
    events_per_day: int
    recommendations_per_day: int
    items_per_day: int = 50
    event_bytes: int = 400
    events_per_request: int = 10
    training_hours: float = 2.0
    trainings_per_month: float | None = None  # default: from the stack's schedule, else 1

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.events_per_request < 1 or self.event_bytes < 1:
            raise ValueError("events_per_request and event_bytes must be at least 1")


def trainings_per_month(schedule: str) -> float:
    """How often the schedule runs in a month: rate(n unit) exactly, a cron expression as weekly."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule)
    if match is None:
        return 4.3 if schedule.startswith("cron(") else 1.0
    minutes = int(match.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[match.group(2).rstrip("s")]
    return DAYS_PER_MONTH * 1440 / minutes


def estimate(settings: StackSettings, profile: Profile, prices: Mapping[str, float]) -> dict[str, float]:
    profile.validate()
    p = prices
    events = profile.events_per_day * DAYS_PER_MONTH
    event_gb = events * profile.event_bytes / 1e9
    collect_requests = events / profile.events_per_request
    serving_requests = (profile.recommendations_per_day + profile.items_per_day) * DAYS_PER_MONTH
    requests = collect_requests + serving_requests
    runs = profile.trainings_per_month
    if runs is None:
        runs = trainings_per_month(settings.training.schedule) if settings.training.schedule else 1.0

    ingestion = settings.ingestion
    waf_rules = 2 + len(REQUIRED_MANAGED_GROUPS) + (1 if settings.waf.block_anonymous_ips else 0)
    if ingestion.stream_mode == "ON_DEMAND":
        kinesis = (HOURS_PER_MONTH * p["kinesis_on_demand_stream_hour"] + event_gb *
                   (p["kinesis_on_demand_ingest_per_gb"] + 2 * p["kinesis_on_demand_retrieval_per_gb"]))
    else:  # two consumers (Firehose, the processor) read each record
        units = events * math.ceil(profile.event_bytes / 25_000)
        kinesis = (ingestion.stream_shard_count * HOURS_PER_MONTH * p["kinesis_shard_hour"]
                   + units / 1e6 * p["kinesis_put_payload_units_per_million"])
    firehose_gb = events * math.ceil(profile.event_bytes / p["firehose_record_rounding_bytes"]) * \
        p["firehose_record_rounding_bytes"] / 1e9
    # Steady state of the raw store: GZIP keeps about a quarter of the JSON; history is kept until it expires, and
    # for planning over one year when it never does; objects move to Standard-IA after the transition.
    months_kept = ingestion.raw_expiration_days / DAYS_PER_MONTH if ingestion.raw_expiration_days else 12.0
    months_standard = min(months_kept, ingestion.raw_transition_days / DAYS_PER_MONTH) \
        if ingestion.raw_transition_days else months_kept
    compressed_gb = event_gb * 0.25
    memory = settings.realtime.memory_mb / 1024
    lambda_gb_second = p["lambda_arm_gb_second" if settings.lambda_architecture == "arm64" else "lambda_x86_gb_second"]
    processor_invocations = events / max(1, settings.realtime.batch_size)
    lambdas = ((processor_invocations * 0.5 * memory + serving_requests * 0.05 * 0.5) * lambda_gb_second
               + (processor_invocations + serving_requests) / 1e6 * p["lambda_per_million_requests"])
    campaign_tps = max(settings.training.min_provisioned_tps, profile.recommendations_per_day / 86_400)
    transitions = runs * (120 + 6 * settings.training.shards)
    alarm_metrics = len(ALARMS) + 3 * 2  # three math alarms read two metrics each
    return {
        "API Gateway": requests / 1e6 * p["apigateway_rest_per_million"],
        "AWS WAF": p["waf_web_acl_per_month"] + waf_rules * p["waf_rule_per_month"]
        + requests / 1e6 * p["waf_per_million_requests"],
        "Kinesis Data Streams": kinesis,
        "Data Firehose": firehose_gb * p["firehose_ingest_per_gb"],
        "S3 (raw store, steady state)": compressed_gb * months_standard * p["s3_standard_gb_month"]
        + compressed_gb * (months_kept - months_standard) * p["s3_standard_ia_gb_month"]
        + events / 1000 / 50 * p["s3_put_per_thousand"],
        "Lambda": lambdas,
        "Personalize: event ingestion": event_gb * p["personalize_ingest_per_gb"],
        "Personalize: training": runs * profile.training_hours * p["personalize_training_hour"],
        "Personalize: campaign (provisioned TPS)": campaign_tps * HOURS_PER_MONTH * p["personalize_tps_hour"],
        "Step Functions": transitions / 1000 * p["stepfunctions_per_thousand_transitions"],
        "KMS": 1 * p["kms_key_per_month"] + (processor_invocations + collect_requests / 100) / 10_000
        * p["kms_per_10k_requests"],
        "CloudWatch (logs, dashboard, alarms)": event_gb * 0.05 * p["cloudwatch_logs_ingest_per_gb"]
        + p["cloudwatch_dashboard_per_month"] + alarm_metrics * p["cloudwatch_alarm_metric_per_month"],
    }


def render(stack: str, costs: Mapping[str, float], prices: Mapping[str, Any]) -> str:
    width = max(map(len, costs))
    lines = [f"Estimated monthly cost of stack '{stack}' ({prices['currency']}, prices of {prices['date']}, "
             f"{prices['region']}):", ""]
    lines += [f"  {name:<{width}}  {value:>10,.2f}" for name, value in sorted(costs.items(), key=lambda i: -i[1])]
    lines += [f"  {'total':<{width}}  {sum(costs.values()):>10,.2f}", "", f"Prices: {prices['source']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--events-per-day", type=int, required=True)
    parser.add_argument("--recommendations-per-day", type=int, required=True)
    parser.add_argument("--items-per-day", type=int, default=50)
    parser.add_argument("--event-bytes", type=int, default=400)
    parser.add_argument("--events-per-request", type=int, default=10)
    parser.add_argument("--training-hours", type=float, default=2.0)
    parser.add_argument("--trainings-per-month", type=float)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings_from_values(stack_config(args.stack), args.stack)
        profile = Profile(args.events_per_day, args.recommendations_per_day, args.items_per_day, args.event_bytes,
                          args.events_per_request, args.training_hours, args.trainings_per_month)
        prices = json.loads(PRICES.read_text(encoding="utf-8"))
        costs = estimate(settings, profile, prices)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"stack": args.stack, "pricesDate": prices["date"], "monthly": costs,
                          "total": sum(costs.values())}, indent=2))
    else:
        print(render(args.stack, costs, prices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
