"""What a stack would cost a month, before deploying it: from the stack's settings, an expected traffic profile and
the dated price table ``tools/prices.json``, by service, at the stack's own region (and its replica's).

    python -m tools.cost --stack dev --events-per-day 2000000 --recommendations-per-day 500000

An estimate of the main usage-driven and fixed charges (free tiers ignored, data transfer out of AWS ignored). Every
price carries its pricing page and whether it was confirmed there; a line priced with an unconfirmed figure, an
assumed regional multiplier or an estimated size is marked "unconfirmed".
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from components.observability import Observed, alarm_specs
from components.settings import StackSettings, load_settings_from_values
from components.training_definition import SURFACE_RECIPES
from components.waf import REQUIRED_MANAGED_GROUPS
from tools.synth import ROOT, stack_config

PRICES = ROOT / "tools" / "prices.json"
HOURS_PER_MONTH = 730
DAYS_PER_MONTH = 30.4
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
GB = 1024**3  # AWS bills data in GB of 1024³ bytes
V2_RECIPES = ("aws-user-personalization-v2",)
V2_SURFACE_RECIPES = ("aws-personalized-ranking-v2",)  # billed like User-Personalization-v2
# Interactions a training considers at most (Personalize quotas page: 3 billion for v2 recipes, 500 million else).
MAX_TRAINING_INTERACTIONS = {"v2": 3e9, "v1": 5e8}


@dataclass(frozen=True)
class Profile:
    events_per_day: int
    recommendations_per_day: int
    items_per_day: int = 50
    event_bytes: int = 400
    events_per_request: int = 10
    training_hours: float | None = None  # default: from the history's size
    trainings_per_month: float | None = None  # default: from the stack's schedule, else 1
    # Where readers are verified: sessions of signed-in readers (default: a third of the recommendation requests,
    # i.e. three pages a session) and how long one lasts; each costs authorizer calls per token cache period.
    signed_in_sessions_per_day: int | None = None
    session_minutes: int = 10

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.events_per_request < 1 or self.event_bytes < 1:
            raise ValueError("events_per_request and event_bytes must be at least 1")


@dataclass(frozen=True)
class Price:
    key: str
    value: float
    unit: str
    source: str
    confirmed: bool


@dataclass
class PriceTable:
    """The price table at one region's rates: base prices x the region's multiplier (or the region's own figure)."""

    raw: Mapping[str, Any]
    region: str
    used: dict[str, Price] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.region not in self.raw["regions"]:
            raise ValueError(f"no prices for region {self.region} in {PRICES.name}: add it to 'regions'")

    @property
    def region_entry(self) -> Mapping[str, Any]:
        entry: Mapping[str, Any] = self.raw["regions"][self.region]
        return entry

    @property
    def region_confirmed(self) -> bool:
        return bool(self.region_entry.get("confirmed"))

    def __getitem__(self, key: str) -> float:
        entry = self.raw["prices"][key]
        own = self.region_entry.get("prices", {}).get(key)
        if own is not None:  # a figure checked for this very region
            price = Price(key, float(own["value"]), entry["unit"], own["source"], bool(own.get("confirmed")))
        else:
            multiplier = float(self.region_entry["multiplier"])
            price = Price(key, float(entry["value"]) * multiplier, entry["unit"], entry["source"],
                          bool(entry.get("confirmed")) and self.region_confirmed)
        self.used[key] = price
        return price.value

    def rule(self, key: str) -> float:
        return float(self.raw["rules"][key]["value"])

    def assumption(self, key: str) -> float:
        return float(self.raw["assumptions"][key]["value"])


@dataclass(frozen=True)
class Line:
    cost: float
    prices: tuple[str, ...]
    confirmed: bool
    note: str = ""


def trainings_per_month(schedule: str) -> float:
    """How often the schedule runs in a month: rate(n unit) exactly, a cron expression as weekly."""
    match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", schedule)
    if match is None:
        return 4.3 if schedule.startswith("cron(") else 1.0
    minutes = int(match.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[match.group(2).rstrip("s")]
    return DAYS_PER_MONTH * 1440 / minutes


def alarm_metric_count(settings: StackSettings) -> int:
    """Metrics the stack's alarms read (CloudWatch bills each alarm per metric; a math alarm reads several)."""
    placeholder = Observed(**{f.name: "x" for f in fields(Observed)})
    specs = alarm_specs(placeholder, settings.alarms).values()
    return sum(1 if spec.metric is not None else len(spec.inputs) for spec in specs)


def history_months(settings: StackSettings) -> float:
    """Months of raw history kept: until expiry, or a planning year when it never expires."""
    days = settings.ingestion.raw_expiration_days
    return days / DAYS_PER_MONTH if days else 12.0


def xray_traces(requests_per_month: float) -> float:
    """Traces X-Ray's default rule records: 1 request a second, then 5 % of the rest (an even rate assumed)."""
    reservoir = min(requests_per_month, SECONDS_PER_MONTH * 1.0)
    return reservoir + 0.05 * (requests_per_month - reservoir)


class _Estimator:
    def __init__(self, settings: StackSettings, profile: Profile, table: PriceTable,
                 replica: PriceTable | None) -> None:
        self.s, self.p, self.t, self.replica = settings, profile, table, replica
        self.lines: dict[str, Line] = {}
        self.objects = 0.0

    def add(self, name: str, cost: float, *, table: PriceTable | None = None, estimated: bool = False,
            note: str = "") -> None:
        table = table or self.t
        keys = tuple(sorted(table.used))
        confirmed = not estimated and all(table.used[k].confirmed for k in keys)
        self.lines[name] = Line(cost, keys, confirmed, note)
        table.used.clear()

    def run(self) -> dict[str, Line]:
        s, p, t = self.s, self.p, self.t
        t.used.clear()
        events = p.events_per_day * DAYS_PER_MONTH
        record_bytes = p.event_bytes + t.assumption("record_envelope_bytes")
        collect_requests = events / p.events_per_request
        serving_requests = (p.recommendations_per_day + p.items_per_day) * DAYS_PER_MONTH
        requests = collect_requests + serving_requests
        runs = p.trainings_per_month
        if runs is None:
            runs = trainings_per_month(s.training.schedule) if s.training.schedule else 1.0

        self.add("API Gateway", requests / 1e6 * t["apigateway_rest_per_million"])
        waf_rules = (2 + len(REQUIRED_MANAGED_GROUPS) + (1 if s.waf.block_anonymous_ips else 0)
                     + (1 if s.waf.bot_control else 0))
        self.add("AWS WAF", t["waf_web_acl_per_month"] + waf_rules * t["waf_rule_per_month"]
                 + requests / 1e6 * t["waf_per_million_requests"])
        if s.waf.bot_control:  # its subscription and inspection on top of the rule it counts as (free tier ignored)
            self.add("AWS WAF Bot Control (common)", t["waf_bot_control_per_month"]
                     + requests / 1e6 * t["waf_bot_control_per_million_requests"])
        self._kinesis(events, record_bytes)
        firehose_step = t.rule("firehose_record_rounding_bytes")
        firehose_gb = events * math.ceil(record_bytes / firehose_step) * firehose_step / GB
        self.add("Data Firehose", firehose_gb * t["firehose_ingest_per_gb"])
        compressed_gb = events * record_bytes / GB * 0.25  # GZIP keeps about a quarter of the JSON
        self.objects = self._objects(events * record_bytes / GB)
        self._storage(compressed_gb)
        self._lambda(events, serving_requests)
        authorizer_invocations = self._reader_authorizer()
        self._personalize(events, record_bytes, runs)
        transitions = runs * (120 + 6 * s.training.shards)
        self.add("Step Functions", transitions / 1000 * t["stepfunctions_per_thousand_transitions"])
        processor_invocations = events / max(1, s.realtime.batch_size)
        self.add("KMS", t["kms_key_per_month"] + (processor_invocations + collect_requests / 100) / 10_000
                 * t["kms_per_10k_requests"])
        self._logs(requests, processor_invocations + serving_requests + authorizer_invocations)
        alarm_metrics = alarm_metric_count(s)
        self.add("CloudWatch (dashboard, alarms)", t["cloudwatch_dashboard_per_month"]
                 + alarm_metrics * t["cloudwatch_alarm_metric_per_month"])
        # API stages and functions trace with X-Ray; the stream processor's invocations start their own traces.
        self.add("X-Ray (traces recorded)", (xray_traces(requests) + xray_traces(processor_invocations)) / 1e6
                 * t["xray_per_million_traces_recorded"], estimated=True, note="default sampling rule")
        if self.replica is not None:
            self._replica(compressed_gb)
        # The audit trail (components/audit.py) bills every data event on readers' data: Firehose's writes (and their
        # replicas), and each training's reads of the whole history (the audit bucket's storage is negligible).
        writes = self.objects * (2 if self.replica is not None else 1)
        data_events = writes + runs * self.objects * history_months(s)
        self.add("CloudTrail: audit of data access", data_events / 100_000 * t["cloudtrail_data_events_per_100k"],
                 estimated=True, note="data events")
        return self.lines

    def _kinesis(self, events: float, record_bytes: float) -> None:
        s, t = self.s, self.t
        extra_hours = max(0, s.ingestion.stream_retention_hours - 24)
        if s.ingestion.stream_mode == "ON_DEMAND":
            step = t.rule("kinesis_record_rounding_bytes")  # every record counts as at least 1 KiB
            billed_gb = events * math.ceil(record_bytes / step) * step / GB
            # Firehose and the event processor each read every record.
            cost = (HOURS_PER_MONTH * t["kinesis_on_demand_stream_hour"] + billed_gb
                    * (t["kinesis_on_demand_ingest_per_gb"] + 2 * t["kinesis_on_demand_retrieval_per_gb"]))
            self.add("Kinesis Data Streams", cost)
            if extra_hours:
                stored_gb = billed_gb / (DAYS_PER_MONTH * 24) * min(extra_hours, 144)
                long_term_gb = billed_gb / (DAYS_PER_MONTH * 24) * max(0, extra_hours - 144)
                self.add("Kinesis: extended retention", stored_gb * t["kinesis_on_demand_extended_retention_gb_month"]
                         + (long_term_gb * t["kinesis_long_term_retention_gb_month"] if long_term_gb else 0.0),
                         note=f"{s.ingestion.stream_retention_hours} h")
        else:
            units = events * math.ceil(record_bytes / t.rule("kinesis_put_payload_unit_bytes"))
            shard_hours = s.ingestion.stream_shard_count * HOURS_PER_MONTH
            self.add("Kinesis Data Streams", shard_hours * t["kinesis_shard_hour"]
                     + units / 1e6 * t["kinesis_put_payload_units_per_million"])
            if extra_hours:
                self.add("Kinesis: extended retention", shard_hours * t["kinesis_extended_retention_shard_hour"],
                         note=f"{s.ingestion.stream_retention_hours} h")

    def _objects(self, raw_gb: float) -> float:
        """Objects Firehose writes a month: one per full buffer, by time or by size, whichever fills first."""
        ingestion = self.s.ingestion
        by_time = SECONDS_PER_MONTH / max(1, ingestion.firehose_buffer_seconds)
        by_size = raw_gb * 1024 / max(1, ingestion.firehose_buffer_mib)
        return max(by_time, by_size)

    def _storage(self, compressed_gb: float) -> None:
        s, t = self.s, self.t
        months_kept = history_months(s)
        transition = s.ingestion.raw_transition_days
        months_standard = min(months_kept, transition / DAYS_PER_MONTH) if transition else months_kept
        self.add("S3 (raw store, steady state)", compressed_gb * months_standard * t["s3_standard_gb_month"]
                 + compressed_gb * (months_kept - months_standard) * t["s3_standard_ia_gb_month"]
                 + self.objects / 1000 * t["s3_put_per_thousand"], estimated=True, note="GZIP ≈ 25 %")

    def _lambda(self, events: float, serving_requests: float) -> None:
        s, t = self.s, self.t
        memory = s.realtime.memory_mb / 1024
        gb_second = t["lambda_arm_gb_second" if s.lambda_architecture == "arm64" else "lambda_x86_gb_second"]
        invocations = events / max(1, s.realtime.batch_size)
        self.add("Lambda", (invocations * 0.5 * memory + serving_requests * 0.05 * 0.5) * gb_second
                 + (invocations + serving_requests) / 1e6 * t["lambda_per_million_requests"], estimated=True,
                 note="durations estimated")

    def _reader_authorizer(self) -> float:
        """The reader authorizer's invocations a month (0 without reader verification), and their cost line."""
        s, p, t = self.s, self.p, self.t
        if not s.sites.verify_readers:
            return 0.0
        sessions = (p.recommendations_per_day / 3 if p.signed_in_sessions_per_day is None
                    else p.signed_in_sessions_per_day) * DAYS_PER_MONTH
        # API Gateway caches the answer per token and API: a session calls it once per API and cache period.
        periods = math.ceil(p.session_minutes * 60 / s.sites.reader_token_cache_seconds)
        invocations = sessions * 2 * periods
        gb_second = t["lambda_arm_gb_second" if s.lambda_architecture == "arm64" else "lambda_x86_gb_second"]
        self.add("Lambda: reader authorizer", invocations * 0.02 * 0.25 * gb_second
                 + invocations / 1e6 * t["lambda_per_million_requests"], estimated=True,
                 note=f"{invocations / 1e6:,.2f} M invocations, cached {s.sites.reader_token_cache_seconds} s")
        return invocations

    def _personalize(self, events: float, record_bytes: float, runs: float) -> None:
        s, p, t = self.s, self.p, self.t
        self.add("Personalize: event ingestion", events * record_bytes / GB * t["personalize_ingest_per_gb"])
        v2 = s.training.recipe in V2_RECIPES
        interactions = min(events * history_months(s), MAX_TRAINING_INTERACTIONS["v2" if v2 else "v1"])
        if v2 and p.training_hours is None:
            self.add("Personalize: training", runs * interactions / 1e6
                     * t["personalize_v2_training_per_million_interactions"],
                     note=f"{s.training.recipe}: {interactions / 1e6:,.1f} M interactions a run")
        else:
            hours = p.training_hours
            if hours is None:
                hours = max(1.0, interactions / 1e6 * t.assumption("v1_training_hours_per_million_interactions"))
            price = t["personalize_training_hour"]
            self.add("Personalize: training", runs * hours * price, estimated=p.training_hours is None,
                     note=f"{s.training.recipe}: {hours:,.1f} training h a run")
        floor_tps = s.training.min_provisioned_tps
        if v2:
            recommendations = max(p.recommendations_per_day * DAYS_PER_MONTH, floor_tps * SECONDS_PER_MONTH)
            self.add("Personalize: recommendations", recommendations / 1000
                     * t["personalize_v2_per_thousand_recommendations"], note=f"{s.training.recipe}, per request")
        else:
            campaign_tps = max(floor_tps, p.recommendations_per_day / 86_400)
            self.add("Personalize: campaign (provisioned TPS)", campaign_tps * HOURS_PER_MONTH
                     * t["personalize_tps_hour"], note=f"{campaign_tps:.1f} TPS")
        for surface in s.published.surfaces:
            if surface != "for-you":
                self._surface(surface, events, runs)
        if s.training.user_segments:  # two batch-only solutions, a version each run, no campaign
            per_million = t.assumption("v1_training_hours_per_million_interactions")
            hours = max(1.0, events * history_months(s) / 1e6 * per_million)
            self.add("Personalize: segments training", 2 * runs * hours * t["personalize_training_hour"],
                     estimated=True, note=f"Item-Affinity + Item-Attribute-Affinity, {hours:,.1f} h each a run; "
                                          "batch segment jobs extra")

    def _surface(self, surface: str, events: float, runs: float) -> None:
        """Another surface's campaign (at its minimum TPS: its traffic is not in the profile) and its trainings
        (Trending-Now: trained once, nothing recurring)."""
        s, t = self.s, self.t
        floor_tps = s.training.min_provisioned_tps
        recipe = SURFACE_RECIPES[surface]
        if recipe in V2_SURFACE_RECIPES:
            self.add(f"Personalize: {surface} campaign", floor_tps * SECONDS_PER_MONTH / 1000
                     * t["personalize_v2_per_thousand_recommendations"], note=f"{recipe}, at its minimum TPS")
            interactions = min(events * history_months(s), MAX_TRAINING_INTERACTIONS["v2"])
            self.add(f"Personalize: {surface} training", runs * interactions / 1e6
                     * t["personalize_v2_training_per_million_interactions"], note=f"{recipe}, per run")
            return
        self.add(f"Personalize: {surface} campaign", floor_tps * HOURS_PER_MONTH * t["personalize_tps_hour"],
                 note=f"{recipe}, {floor_tps} TPS minimum")
        if surface != "trending":
            interactions = min(events * history_months(s), MAX_TRAINING_INTERACTIONS["v1"])
            hours = max(1.0, interactions / 1e6 * t.assumption("v1_training_hours_per_million_interactions"))
            self.add(f"Personalize: {surface} training", runs * hours * t["personalize_training_hour"],
                     estimated=True, note=f"{recipe}, {hours:,.1f} training h a run")

    def _logs(self, requests: float, invocations: float) -> None:
        t = self.t
        waf_gb = requests * t.assumption("waf_log_bytes_per_request") / GB
        self.add("CloudWatch Logs: WAF logs", waf_gb * t["cloudwatch_vended_logs_ingest_per_gb"], estimated=True)
        api_gb = requests * (t.assumption("access_log_bytes_per_request")
                             + t.assumption("execution_log_bytes_per_request")) / GB
        self.add("CloudWatch Logs: API Gateway access and execution logs", api_gb * t["cloudwatch_logs_ingest_per_gb"],
                 estimated=True, note="execution logs at INFO")
        lambda_gb = invocations * t.assumption("lambda_log_bytes_per_invocation") / GB
        self.add("CloudWatch Logs: Lambda", lambda_gb * t["cloudwatch_logs_ingest_per_gb"], estimated=True)

    def _replica(self, compressed_gb: float) -> None:
        assert self.replica is not None
        r, t, s = self.replica, self.t, self.s
        months_kept = history_months(s)
        # Every source object is copied: its bytes cross regions (billed by the source region) and are stored there.
        self.add("S3 replication: transfer", compressed_gb * t["s3_replication_transfer_per_gb"],
                 note=f"{s.region} → {s.replica_region}")
        self.add("S3 replica (storage, requests)", compressed_gb * months_kept * r["s3_standard_gb_month"]
                 + self.objects / 1000 * r["s3_put_per_thousand"], table=r, estimated=True,
                 note=s.replica_region)
        # Each replicated object is decrypted with the source key and encrypted with the replica's.
        self.add("KMS: replica key", r["kms_key_per_month"] + self.objects * 2 / 10_000 * r["kms_per_10k_requests"],
                 table=r, note=s.replica_region)


def estimate(settings: StackSettings, profile: Profile, prices: Mapping[str, Any]) -> dict[str, Line]:
    """The monthly cost by line of ``settings`` under ``profile``, at the stack's region's (and replica's) rates."""
    profile.validate()
    table = PriceTable(prices, settings.region)
    replica = PriceTable(prices, settings.replica_region) if settings.replica_region else None
    return _Estimator(settings, profile, table, replica).run()


def _price_lines(prices: Mapping[str, Any], costs: Mapping[str, Line]) -> list[str]:
    used = sorted({k for line in costs.values() for k in line.prices})
    lines = []
    for key in used:
        entry = prices["prices"][key]
        status = "confirmed" if entry.get("confirmed") else "unconfirmed"
        lines.append(f"  {key} = {entry['value']} {entry['unit']} [{status}] {entry['source']}")
    return lines


def render(stack: str, region: str, costs: Mapping[str, Line], prices: Mapping[str, Any]) -> str:
    width = max(map(len, costs))
    base = prices["baseRegion"]
    regional = prices["regions"][region]
    lines = [f"Estimated monthly cost of stack '{stack}' in {region} ({prices['currency']}, price table of "
             f"{prices['date']}):", ""]
    for name, line in sorted(costs.items(), key=lambda i: -i[1].cost):
        flag = "" if line.confirmed else "  unconfirmed"
        note = f"  ({line.note})" if line.note else ""
        lines.append(f"  {name:<{width}}  {line.cost:>10,.2f}{flag}{note}")
    total = sum(line.cost for line in costs.values())
    lines += [f"  {'total':<{width}}  {total:>10,.2f}"
              + ("" if all(x.confirmed for x in costs.values()) else "  unconfirmed"), ""]
    if region != base:
        status = "confirmed" if regional.get("confirmed") else "unconfirmed"
        lines.append(f"Regional rates: {base} prices x {regional['multiplier']} for {region} [{status}: "
                     f"{regional.get('note', '')}]")
    lines += ["'unconfirmed': a price not checked against its pricing page on the table's date, an assumed regional "
              "multiplier, or an estimated size or duration (tools/prices.json says which).",
              "Prices used (base region):", *_price_lines(prices, costs)]
    return "\n".join(lines)


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    try:
        prices: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path.name}: invalid JSON at line {error.lineno}: {error.msg}") from None
    for key, entry in prices.get("prices", {}).items():
        missing = {"value", "unit", "source", "confirmed"} - set(entry)
        if missing:
            raise ValueError(f"{path.name}: price {key} lacks {', '.join(sorted(missing))}")
    return prices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--events-per-day", type=int, required=True)
    parser.add_argument("--recommendations-per-day", type=int, required=True)
    parser.add_argument("--items-per-day", type=int, default=50)
    parser.add_argument("--event-bytes", type=int, default=400)
    parser.add_argument("--events-per-request", type=int, default=10)
    parser.add_argument("--training-hours", type=float,
                        help="billed training hours a run (default: derived from the history's size)")
    parser.add_argument("--trainings-per-month", type=float)
    parser.add_argument("--signed-in-sessions-per-day", type=int,
                        help="sessions of signed-in readers (default: a third of the recommendations)")
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_settings_from_values(stack_config(args.stack), args.stack)
        profile = Profile(args.events_per_day, args.recommendations_per_day, args.items_per_day, args.event_bytes,
                          args.events_per_request, args.training_hours, args.trainings_per_month,
                          args.signed_in_sessions_per_day)
        prices = load_prices()
        costs = estimate(settings, profile, prices)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"stack": args.stack, "region": settings.region, "pricesDate": prices["date"],
                          "monthly": {name: {"cost": line.cost, "confirmed": line.confirmed, "prices": line.prices,
                                             "note": line.note} for name, line in costs.items()},
                          "total": sum(line.cost for line in costs.values()),
                          "confirmed": all(line.confirmed for line in costs.values())}, indent=2))
    else:
        print(render(args.stack, settings.region, costs, prices))
    return 0


if __name__ == "__main__":
    sys.exit(main())
