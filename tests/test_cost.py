"""The cost view: figures follow the price table, the stack's settings and the traffic profile."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import parse_settings
from tools import cost
from tools.cost import DAYS_PER_MONTH, HOURS_PER_MONTH, PRICES, Profile, estimate, trainings_per_month

PRICE_TABLE: dict[str, Any] = json.loads(PRICES.read_text(encoding="utf-8"))
PROFILE = Profile(events_per_day=1_000_000, recommendations_per_day=86_400 * 3, items_per_day=100)


def settings(**values: str) -> Any:
    return parse_settings({"environment": "dev", **values}, region="eu-west-1", stack="dev")


def test_request_priced_services_follow_the_profile() -> None:
    costs = estimate(settings(), PROFILE, PRICE_TABLE)

    requests = (1_000_000 / 10 + 86_400 * 3 + 100) * DAYS_PER_MONTH
    assert costs["API Gateway"] == pytest.approx(requests / 1e6 * 3.50)
    assert costs["AWS WAF"] == pytest.approx(5.00 + 6 * 1.00 + requests / 1e6 * 0.60)
    # 3 TPS on average is above the campaign's minimum of 1: billed on the average.
    assert costs["Personalize: campaign (provisioned TPS)"] == pytest.approx(3 * HOURS_PER_MONTH * 0.20)


def test_the_campaign_minimum_is_a_floor() -> None:
    quiet = Profile(events_per_day=10_000, recommendations_per_day=1_000)

    low = estimate(settings(), quiet, PRICE_TABLE)["Personalize: campaign (provisioned TPS)"]
    high = estimate(settings(campaignMinProvisionedTps="4"), quiet, PRICE_TABLE)[
        "Personalize: campaign (provisioned TPS)"]

    assert low == pytest.approx(1 * HOURS_PER_MONTH * 0.20)
    assert high == pytest.approx(4 * low)


def test_settings_change_the_estimate() -> None:
    base = estimate(settings(), PROFILE, PRICE_TABLE)

    anonymous = estimate(settings(wafBlockAnonymousIps="true"), PROFILE, PRICE_TABLE)
    provisioned = estimate(settings(streamMode="PROVISIONED", streamShardCount="2"), PROFILE, PRICE_TABLE)
    expiring = estimate(settings(rawDataTransitionDays="0", rawDataExpirationDays="90"), PROFILE, PRICE_TABLE)

    assert anonymous["AWS WAF"] == pytest.approx(base["AWS WAF"] + 1.00)
    assert provisioned["Kinesis Data Streams"] != base["Kinesis Data Streams"]
    assert provisioned["Kinesis Data Streams"] >= 2 * HOURS_PER_MONTH * 0.015
    assert expiring["S3 (raw store, steady state)"] < base["S3 (raw store, steady state)"]


@pytest.mark.parametrize(("schedule", "runs"), [("rate(7 days)", DAYS_PER_MONTH / 7), ("rate(12 hours)",
                                                                                      DAYS_PER_MONTH * 2),
                                                ("cron(0 3 ? * SUN *)", 4.3), ("", 1.0)])
def test_trainings_per_month_come_from_the_schedule(schedule: str, runs: float) -> None:
    if schedule:
        assert trainings_per_month(schedule) == pytest.approx(runs)
    training = estimate(settings(trainingSchedule=schedule), PROFILE, PRICE_TABLE)["Personalize: training"]
    assert training == pytest.approx(runs * 2.0 * 0.24)


def test_the_price_table_is_dated_and_sourced() -> None:
    assert PRICE_TABLE["date"] and PRICE_TABLE["source"] and PRICE_TABLE["currency"] == "USD"


def test_the_command_prints_a_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(["--stack", "prod-eu", "--events-per-day", "1000", "--recommendations-per-day", "10"]) == 0
    printed = capsys.readouterr().out
    assert "Estimated monthly cost of stack 'prod-eu'" in printed and "total" in printed

    assert cost.main(["--stack", "dev", "--events-per-day", "1000", "--recommendations-per-day", "10",
                      "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["total"] == pytest.approx(sum(document["monthly"].values()))


@pytest.mark.parametrize(("argv", "message"), [
    (["--stack", "dev", "--events-per-day", "-1", "--recommendations-per-day", "10"], "must not be negative"),
    (["--stack", "nope", "--events-per-day", "1", "--recommendations-per-day", "1"], "no stack file"),
])
def test_bad_input_is_an_error(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main(argv) == 2
    assert message in capsys.readouterr().err
