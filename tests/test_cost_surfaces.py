"""The cost view counts each trained surface's campaign and trainings, and the segment solutions."""

from __future__ import annotations

import pytest

from tests.test_cost import costs, price
from tools.cost import HOURS_PER_MONTH, SECONDS_PER_MONTH

ALL = '["for-you", "related", "trending", "ranking"]'


def test_the_default_stack_pays_for_one_surface() -> None:
    lines = costs()

    assert not any(name.startswith(("Personalize: related", "Personalize: trending", "Personalize: ranking",
                                    "Personalize: segments")) for name in lines)


def test_each_surface_adds_its_campaign_and_its_trainings() -> None:
    lines = costs(personalizeSurfaces=ALL, campaignMinProvisionedTps="2", trainingSchedule="rate(7 days)")

    # v1-priced recipes: a TPS-hour floor; Personalized-Ranking-v2: requests at the floor, like for-you v2
    assert lines["Personalize: related campaign"] == pytest.approx(2 * HOURS_PER_MONTH * price("personalize_tps_hour"))
    assert lines["Personalize: trending campaign"] == lines["Personalize: related campaign"]
    assert lines["Personalize: ranking campaign"] == pytest.approx(
        2 * SECONDS_PER_MONTH / 1000 * price("personalize_v2_per_thousand_recommendations"))
    assert lines["Personalize: related training"] > 0 and lines["Personalize: ranking training"] > 0
    assert "Personalize: trending training" not in lines  # trained once: Trending-Now finds trends by itself
    weekly, daily = lines["Personalize: related training"], costs(
        personalizeSurfaces=ALL, trainingSchedule="rate(1 day)")["Personalize: related training"]
    assert daily == pytest.approx(weekly * 7, rel=0.05)


def test_user_segments_add_two_trainings_a_run() -> None:
    lines = costs(userSegments="true")

    assert lines["Personalize: segments training"] >= 2 * price("personalize_training_hour")
