"""The cost view: figures follow the price table at the stack's own region, the stack's settings (replica, recipe,
retention, stream mode) and the traffic profile; AWS's rounding is applied; every price says where it comes from and
whether it was confirmed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components.settings import parse_settings
from tools import cost
from tools.cost import (
    DAYS_PER_MONTH,
    GB,
    HOURS_PER_MONTH,
    PRICES,
    SECONDS_PER_MONTH,
    Profile,
    estimate,
    load_prices,
    trainings_per_month,
    xray_traces,
)

PRICE_TABLE: dict[str, Any] = json.loads(PRICES.read_text(encoding="utf-8"))
PROFILE = Profile(events_per_day=1_000_000, recommendations_per_day=86_400 * 3, items_per_day=100)
V1 = {"trainingRecipe": "aws-user-personalization"}


def price(key: str) -> float:
    return float(PRICE_TABLE["prices"][key]["value"])


def settings(region: str = "us-east-1", **values: str) -> Any:
    return parse_settings({"environment": "dev", **values}, region=region, stack="dev")


def costs(region: str = "us-east-1", profile: Profile = PROFILE, table: dict[str, Any] | None = None,
          **values: str) -> dict[str, float]:
    return {name: line.cost for name, line in
            estimate(settings(region, **values), profile, table or PRICE_TABLE).items()}


def test_request_priced_services_follow_the_profile() -> None:
    found = costs(**V1)

    requests = (1_000_000 / 10 + 86_400 * 3 + 100) * DAYS_PER_MONTH
    assert found["API Gateway"] == pytest.approx(requests / 1e6 * price("apigateway_rest_per_million"))
    assert found["AWS WAF"] == pytest.approx(5.00 + 6 * 1.00 + requests / 1e6 * 0.60)
    # 3 TPS on average is above the campaign's minimum of 1: billed on the average.
    assert found["Personalize: campaign (provisioned TPS)"] == pytest.approx(3 * HOURS_PER_MONTH * 0.20)


def test_each_stack_is_priced_at_its_own_regions_rates() -> None:
    # GIVEN the same stack in the base region and in eu-central-1 (an assumed multiplier in the table)
    base, frankfurt = costs("us-east-1"), costs("eu-central-1")
    multiplier = PRICE_TABLE["regions"]["eu-central-1"]["multiplier"]

    # THEN each line scales by the region's multiplier
    assert multiplier != 1.0
    assert frankfurt["API Gateway"] == pytest.approx(base["API Gateway"] * multiplier)
    assert frankfurt["Kinesis Data Streams"] == pytest.approx(base["Kinesis Data Streams"] * multiplier)


def test_a_regions_own_figure_wins_over_the_multiplier() -> None:
    table = copy.deepcopy(PRICE_TABLE)
    table["regions"]["eu-west-1"]["prices"] = {"apigateway_rest_per_million": {
        "value": 3.95, "source": "https://aws.amazon.com/api-gateway/pricing/", "confirmed": True}}

    found = estimate(settings("eu-west-1"), PROFILE, table)["API Gateway"]

    requests = (1_000_000 / 10 + 86_400 * 3 + 100) * DAYS_PER_MONTH
    assert found.cost == pytest.approx(requests / 1e6 * 3.95)
    assert found.confirmed


def test_a_region_without_prices_is_an_error() -> None:
    table = copy.deepcopy(PRICE_TABLE)
    del table["regions"]["ap-south-1"]

    with pytest.raises(ValueError, match="no prices for region ap-south-1"):
        estimate(settings("ap-south-1"), PROFILE, table)


def test_the_replica_adds_storage_transfer_and_its_key_at_the_replicas_rates() -> None:
    # GIVEN a stack in us-east-1 replicating to eu-central-1
    without = costs("us-east-1")
    lines = estimate(settings("us-east-1", replicaRegion="eu-central-1"), PROFILE, PRICE_TABLE)

    # THEN three lines appear, the replica's priced in its region
    added = set(lines) - set(without)
    assert added == {"S3 replication: transfer", "S3 replica (storage, requests)", "KMS: replica key"}
    multiplier = PRICE_TABLE["regions"]["eu-central-1"]["multiplier"]
    assert lines["KMS: replica key"].cost >= price("kms_key_per_month") * multiplier
    assert lines["S3 replica (storage, requests)"].cost > 0
    compressed_gb = 1_000_000 * DAYS_PER_MONTH * (400 + 150) / GB * 0.25
    assert lines["S3 replication: transfer"].cost == pytest.approx(
        compressed_gb * price("s3_replication_transfer_per_gb"))


def test_the_campaign_minimum_is_a_floor() -> None:
    quiet = Profile(events_per_day=10_000, recommendations_per_day=1_000)

    low = costs(profile=quiet, **V1)["Personalize: campaign (provisioned TPS)"]
    high = costs(profile=quiet, campaignMinProvisionedTps="4", **V1)["Personalize: campaign (provisioned TPS)"]

    assert low == pytest.approx(1 * HOURS_PER_MONTH * 0.20)
    assert high == pytest.approx(4 * low)


def test_the_default_v2_recipe_is_priced_with_its_own_units() -> None:
    # GIVEN the default recipe (User-Personalization-v2), which AWS prices differently from v1 recipes
    lines = estimate(settings(), PROFILE, PRICE_TABLE)

    assert "Personalize: campaign (provisioned TPS)" not in lines
    recommendations = 86_400 * 3 * DAYS_PER_MONTH
    assert lines["Personalize: recommendations"].cost == pytest.approx(
        recommendations / 1000 * price("personalize_v2_per_thousand_recommendations"))
    interactions = 1_000_000 * DAYS_PER_MONTH * 12  # a planning year of history: the raw data never expires
    assert lines["Personalize: training"].cost == pytest.approx(
        interactions / 1e6 * price("personalize_v2_training_per_million_interactions"))
    assert "personalize_v2_training_per_million_interactions" in lines["Personalize: training"].prices


def test_v1_training_hours_come_from_the_history_size() -> None:
    short = costs(rawDataTransitionDays="0", rawDataExpirationDays="30", **V1)["Personalize: training"]
    long = costs(rawDataExpirationDays="365", **V1)["Personalize: training"]
    tiny = costs(profile=Profile(events_per_day=100, recommendations_per_day=10), **V1)["Personalize: training"]

    assert long > short
    hours = 1_000_000 * DAYS_PER_MONTH * (30 / DAYS_PER_MONTH) / 1e6 * 1.5
    assert short == pytest.approx(hours * price("personalize_training_hour"))
    assert tiny == pytest.approx(1 * price("personalize_training_hour"))  # at least an hour a run


def test_training_hours_given_override_the_derived_ones() -> None:
    given = Profile(events_per_day=1_000_000, recommendations_per_day=1000, training_hours=3.0)

    line = estimate(settings(**V1), given, PRICE_TABLE)["Personalize: training"]

    assert line.cost == pytest.approx(3.0 * price("personalize_training_hour"))


@pytest.mark.parametrize(("event_bytes", "kib"), [(100, 1), (800, 1), (1000, 2), (2000, 3)])
def test_on_demand_kinesis_bills_each_record_as_at_least_one_kib(event_bytes: int, kib: int) -> None:
    profile = Profile(events_per_day=1_000_000, recommendations_per_day=0, event_bytes=event_bytes)

    found = costs(profile=profile)["Kinesis Data Streams"]

    billed_gb = 1_000_000 * DAYS_PER_MONTH * kib * 1024 / GB  # record = event + 150 bytes of envelope
    per_gb = price("kinesis_on_demand_ingest_per_gb") + 2 * price("kinesis_on_demand_retrieval_per_gb")
    assert found == pytest.approx(HOURS_PER_MONTH * price("kinesis_on_demand_stream_hour") + billed_gb * per_gb)


@pytest.mark.parametrize(("event_bytes", "units"), [(400, 1), (25_000, 1), (25_500, 2), (60_000, 3)])
def test_provisioned_kinesis_counts_25_kb_put_payload_units(event_bytes: int, units: int) -> None:
    profile = Profile(events_per_day=1_000_000, recommendations_per_day=0, event_bytes=event_bytes)

    found = costs(profile=profile, streamMode="PROVISIONED", streamShardCount="2")["Kinesis Data Streams"]

    assert found == pytest.approx(2 * HOURS_PER_MONTH * price("kinesis_shard_hour")
                                  + 1_000_000 * DAYS_PER_MONTH * units / 1e6
                                  * price("kinesis_put_payload_units_per_million"))


def test_extended_stream_retention_is_charged_beyond_24_hours() -> None:
    assert "Kinesis: extended retention" not in costs()
    on_demand = costs(streamRetentionHours="72")["Kinesis: extended retention"]
    provisioned = costs(streamRetentionHours="72", streamMode="PROVISIONED", streamShardCount="2")[
        "Kinesis: extended retention"]

    billed_gb = 1_000_000 * DAYS_PER_MONTH * 1024 / GB
    assert on_demand == pytest.approx(billed_gb / (DAYS_PER_MONTH * 24) * 48
                                      * price("kinesis_on_demand_extended_retention_gb_month"))
    assert provisioned == pytest.approx(2 * HOURS_PER_MONTH * price("kinesis_extended_retention_shard_hour"))


def test_logs_and_traces_are_counted_and_follow_the_requests() -> None:
    quiet = costs(profile=Profile(events_per_day=100_000, recommendations_per_day=10_000))
    busy = costs(profile=Profile(events_per_day=1_000_000, recommendations_per_day=100_000))

    for line in ("CloudWatch Logs: WAF logs", "CloudWatch Logs: API Gateway access and execution logs",
                 "CloudWatch Logs: Lambda", "X-Ray (traces recorded)"):
        assert 0 < quiet[line] < busy[line], line
    requests = (100_000 / 10 + 10_000 + 50) * DAYS_PER_MONTH
    assert quiet["CloudWatch Logs: WAF logs"] == pytest.approx(
        requests * 1500 / GB * price("cloudwatch_vended_logs_ingest_per_gb"))


def test_x_ray_records_one_request_a_second_then_five_percent() -> None:
    assert xray_traces(1000) == 1000
    assert xray_traces(SECONDS_PER_MONTH * 3) == pytest.approx(SECONDS_PER_MONTH * (1 + 0.05 * 2))


def test_settings_change_the_estimate() -> None:
    base = costs()

    anonymous = costs(wafBlockAnonymousIps="true")
    expiring = costs(rawDataTransitionDays="0", rawDataExpirationDays="90")

    assert anonymous["AWS WAF"] == pytest.approx(base["AWS WAF"] + 1.00)
    assert expiring["S3 (raw store, steady state)"] < base["S3 (raw store, steady state)"]


@pytest.mark.parametrize(("schedule", "runs"), [("rate(7 days)", DAYS_PER_MONTH / 7), ("rate(12 hours)",
                                                                                      DAYS_PER_MONTH * 2),
                                                ("cron(0 3 ? * SUN *)", 4.3), ("", 1.0)])
def test_trainings_per_month_come_from_the_schedule(schedule: str, runs: float) -> None:
    if schedule:
        assert trainings_per_month(schedule) == pytest.approx(runs)
    given = Profile(events_per_day=1000, recommendations_per_day=10, training_hours=2.0)
    training = costs(profile=given, trainingSchedule=schedule, **V1)["Personalize: training"]
    assert training == pytest.approx(runs * 2.0 * 0.24)


def test_every_price_is_dated_and_sourced_from_a_public_pricing_page() -> None:
    assert PRICE_TABLE["date"] and PRICE_TABLE["currency"] == "USD"
    for key, entry in {**PRICE_TABLE["prices"], **PRICE_TABLE["rules"]}.items():
        assert entry["source"].startswith("https://aws.amazon.com/"), key
        assert isinstance(entry["confirmed"], bool), key
        assert entry["unit"], key


def test_a_line_is_confirmed_only_when_its_prices_and_region_are() -> None:
    # GIVEN a table where every price is marked confirmed
    table = copy.deepcopy(PRICE_TABLE)
    for entry in table["prices"].values():
        entry["confirmed"] = True

    base = estimate(settings("us-east-1"), PROFILE, table)
    frankfurt = estimate(settings("eu-central-1"), PROFILE, table)
    shipped = estimate(settings("us-east-1"), PROFILE, PRICE_TABLE)

    assert base["API Gateway"].confirmed
    assert not base["Lambda"].confirmed  # estimated durations
    assert not frankfurt["API Gateway"].confirmed  # an assumed regional multiplier
    assert not estimate(settings("us-east-2"), PROFILE, table)["API Gateway"].confirmed  # assumed equal: unconfirmed
    assert not shipped["API Gateway"].confirmed  # the shipped figure was not checked on its page


def test_the_command_prints_a_table_that_says_what_is_unconfirmed(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--stack", "prod-eu", "--events-per-day", "1000", "--recommendations-per-day", "10"]) == 0
    printed = capsys.readouterr().out

    assert "Estimated monthly cost of stack 'prod-eu' in eu-central-1" in printed
    api = next(line for line in printed.splitlines() if line.strip().startswith("API Gateway"))
    assert "unconfirmed" in api
    assert "Regional rates: us-east-1 prices x 1.1 for eu-central-1 [unconfirmed" in printed
    assert "S3 replica (storage, requests)" in printed  # prod-eu replicates to eu-west-1
    assert "apigateway_rest_per_million = 3.5 USD per million REST API calls (first 333 M) [unconfirmed] " \
           "https://aws.amazon.com/api-gateway/pricing/" in printed


def test_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--stack", "dev", "--events-per-day", "1000", "--recommendations-per-day", "10",
                      "--json"]) == 0
    document = json.loads(capsys.readouterr().out)

    assert document["region"] == "eu-west-1"
    assert document["total"] == pytest.approx(sum(line["cost"] for line in document["monthly"].values()))
    assert document["confirmed"] is False
    assert document["monthly"]["API Gateway"]["prices"] == ["apigateway_rest_per_million"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--stack", "dev", "--events-per-day", "-1", "--recommendations-per-day", "10"], "must not be negative"),
    (["--stack", "nope", "--events-per-day", "1", "--recommendations-per-day", "1"], "no stack file"),
])
def test_bad_input_is_an_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_price_without_a_source_is_refused(tmp_path: Path) -> None:
    table = copy.deepcopy(PRICE_TABLE)
    del table["prices"]["kms_key_per_month"]["source"]
    file = tmp_path / "prices.json"
    file.write_text(json.dumps(table), encoding="utf-8")

    with pytest.raises(ValueError, match="price kms_key_per_month lacks source"):
        load_prices(file)
