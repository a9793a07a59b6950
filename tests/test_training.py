"""The training orchestration component: state machines, roles, topic, schedule."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.settings import parse_settings
from components.training import TrainingArgs, TrainingOrchestration
from tests.conftest import REGION, Synthesize, assert_policy_pack_passes
from tools.policy_eval import evaluate
from tools.synth import ACCOUNT_ID, Synthesis

KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/0000"
BUCKET = f"cp-dev-euw1-raw-{ACCOUNT_ID}"


def run(synth: Synthesize, preview: bool = False, **values: str) -> Synthesis:
    settings = parse_settings({"environment": "dev", **values}, region=REGION, stack="dev")
    return synth(lambda: TrainingOrchestration("trn", TrainingArgs(
        stack=settings, training=settings.training, published=settings.published,
        event_types=settings.ingestion.event_types, key_arn=KEY_ARN, data_bucket_name=BUCKET,
        data_bucket_arn=f"arn:aws:s3:::{BUCKET}")),
        preview=preview)


def machines(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in synthesis.of_type("aws:sfn/stateMachine:StateMachine")}


def statements(synthesis: Synthesis, name: str) -> dict[str, dict[str, Any]]:
    policy = synthesis.find("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"]
    return {s["Sid"]: s for s in json.loads(policy)["Statement"]}


def test_both_machines_are_encrypted_logged_and_traced(synth: Synthesize) -> None:
    synthesis = run(synth)

    found = machines(synthesis)
    assert set(found) == {"cp-dev-euw1-training", "cp-dev-euw1-training-teardown"}
    for machine in found.values():
        assert machine["type"] == "STANDARD"
        assert machine["encryptionConfiguration"]["type"] == "CUSTOMER_MANAGED_KMS_KEY"
        assert machine["encryptionConfiguration"]["kmsKeyId"] == KEY_ARN
        assert machine["loggingConfiguration"]["level"] == "ALL"
        assert machine["loggingConfiguration"]["logDestination"].endswith(":*")
        assert machine["tracingConfiguration"] == {"enabled": True}


def test_the_deployed_definition_is_the_builders_for_the_stack(synth: Synthesize) -> None:
    synthesis = run(synth, trainingShards="6", trainingMetricTolerance="0.02", campaignMinProvisionedTps="3")

    definition = json.loads(machines(synthesis)["cp-dev-euw1-training"]["definition"])
    assert definition["States"]["Start"]["Result"]["shardIds"] == list(range(6))
    compare = definition["States"]["Compare (for-you)"]["Parameters"]["Payload"]
    assert (compare["metric"], compare["tolerance"]) == ("normalized_discounted_cumulative_gain_at_25", 0.02)
    assert definition["States"]["First campaign (for-you)"]["Parameters"]["MinProvisionedTPS"] == 3
    # the default trains for-you alone (each surface is a campaign billed every hour)
    assert [n for n in definition["States"] if n.startswith("Solution (") and n.endswith(")")] == ["Solution (for-you)"]
    assert definition["States"]["Dataset group"]["Parameters"]["Name"] == "cp-dev-euw1"
    assert definition["States"]["Prepare raw events"]["ItemReader"]["Parameters"]["Bucket"] == BUCKET


def test_the_machine_role_is_scoped_to_this_stack(synth: Synthesize) -> None:
    by_sid = statements(run(synth), "trn-machine-policy")

    personalize = by_sid["ManageThisStacksPersonalize"]
    assert all(a.startswith("personalize:") and "*" not in a for a in personalize["Action"])
    assert all(f":{ACCOUNT_ID}:" in r and ("cp-dev-euw1" in r or r.endswith("event-tracker/*"))
               for r in personalize["Resource"])
    assert by_sid["PassRoleToPersonalize"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}}
    assert sorted(by_sid["PublishForHandlers"]["Resource"]) == sorted(
        f"arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/cp-dev-euw1/personalize/{k}"
        for k in ("tracking-id", "campaign-arn", "campaign-arns", "filter-arns", "items-dataset-arn", "metrics"))


def test_the_configured_surfaces_mode_metrics_and_metadata_reach_the_definition(synth: Synthesize) -> None:
    synthesis = run(synth, personalizeSurfaces='["for-you", "related", "trending", "ranking"]',
                    personalizeMetadataSurfaces='["ranking"]', trainingSurfaceMetrics='["related=precision_at_10"]')

    states = json.loads(machines(synthesis)["cp-dev-euw1-training"]["definition"])["States"]
    assert [n for n in states if n.startswith("Solution (") and n.endswith(")")] == [
        "Solution (for-you)", "Solution (related)", "Solution (trending)", "Solution (ranking)"]
    assert states["Compare (related)"]["Parameters"]["Payload"]["metric"] == "precision_at_10"
    ranking = states["Compare (ranking)"]["Parameters"]["Payload"]["metric"]
    assert ranking == "normalized_discounted_cumulative_gain_at_10"
    assert states["First campaign (ranking)"]["Parameters"]["CampaignConfig"]["EnableMetadataWithRecommendations"]
    assert not states["First campaign (for-you)"]["Parameters"]["CampaignConfig"]["EnableMetadataWithRecommendations"]
    teardown = json.loads(machines(synthesis)["cp-dev-euw1-training-teardown"]["definition"])["States"]
    assert {n for n in teardown if n.startswith("Delete campaign (") and n.endswith(")") and "waiting" not in n} == {
        "Delete campaign (for-you)", "Delete campaign (related)", "Delete campaign (trending)",
        "Delete campaign (ranking)"}

    automatic = json.loads(machines(run(synth, trainingMode="automatic", autoTrainingDays="14"))[
        "cp-dev-euw1-training"]["definition"])["States"]
    assert automatic["Solution (for-you)"]["Parameters"]["SolutionConfig"] == {
        "AutoTrainingConfig": {"SchedulingExpression": "rate(14 days)"}}


@pytest.mark.parametrize(("values", "problem"), [
    ({"personalizeSurfaces": '["for-you", "popular"]'}, "personalizeSurfaces = 'popular'"),
    ({"personalizeSurfaces": "[]"}, "personalizeSurfaces"),
    ({"personalizeSurfaces": '["related"]'}, "must include for-you"),
    ({"personalizeSurfaces": '["related"]', "personalizeMetadataSurfaces": '["ranking"]'},
     "must be one of personalizeSurfaces"),
    ({"personalizeMetadataSurfaces": '["for-you"]', "trainingRecipe": "aws-user-personalization"},
     "needs trainingRecipe aws-user-personalization-v2"),
    ({"trainingSurfaceMetrics": '["trending=coverage"]'}, "trainingSurfaceMetrics"),
    ({"trainingSurfaceMetrics": '["related=coverage"]'}, "must name one of personalizeSurfaces"),
    ({"trainingMode": "sometimes"}, "trainingMode"),
    ({"autoTrainingDays": "31"}, "autoTrainingDays"),
])
def test_bad_surface_and_mode_settings_are_refused(values: dict[str, str], problem: str) -> None:
    from components.settings import SettingsError

    with pytest.raises(SettingsError) as error:
        parse_settings({"environment": "dev", **values}, region=REGION, stack="dev")

    assert problem in str(error.value)


def test_personalize_may_read_only_prepared_data(synth: Synthesize) -> None:
    synthesis = run(synth)

    by_sid = statements(synthesis, "trn-personalize-policy")
    assert by_sid["ReadPreparedData"]["Resource"] == f"arn:aws:s3:::{BUCKET}/prepared/*"
    trust = json.loads(synthesis.find("aws:iam/role:Role", "trn-personalize-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "personalize.amazonaws.com"}


def test_personalize_may_read_segment_input_and_write_segments_and_only_with_user_segments(
        synth: Synthesize) -> None:
    synthesis = run(synth, userSegments="true", segmentSchedule="rate(1 day)")

    by_sid = statements(synthesis, "trn-personalize-policy")
    assert by_sid["ReadSegmentInput"]["Resource"] == f"arn:aws:s3:::{BUCKET}/segments/input/*"
    assert by_sid["WriteSegments"] == {"Sid": "WriteSegments", "Effect": "Allow", "Action": ["s3:PutObject"],
                                       "Resource": f"arn:aws:s3:::{BUCKET}/segments/output/*"}
    steps = statements(synthesis, "trn-steps-policy")
    assert f"arn:aws:s3:::{BUCKET}/segments/input/*" in steps["WritePreparedData"]["Resource"]
    segments = machines(synthesis)["cp-dev-euw1-segments"]
    assert json.loads(segments["definition"])["StartAt"] == "Write segment input"
    schedules = {s.inputs["name"]: s.inputs for s in synthesis.of_type("aws:scheduler/schedule:Schedule")}
    assert schedules["cp-dev-euw1-segments"]["scheduleExpression"] == "rate(1 day)"
    assert "cp-dev-euw1-segments" not in machines(run(synth))


def test_a_segment_schedule_needs_user_segments() -> None:
    from components.settings import SettingsError

    with pytest.raises(SettingsError, match="segmentSchedule = 'rate\\(1 day\\)' is invalid: needs userSegments"):
        parse_settings({"environment": "dev", "segmentSchedule": "rate(1 day)"}, region=REGION, stack="dev")


def test_notifications_are_encrypted_and_subscribed_from_config(synth: Synthesize) -> None:
    synthesis = run(synth, trainingNotificationEmails='["ml-team@example.com", "oncall@example.com"]')

    [topic] = synthesis.of_type("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == KEY_ARN
    assert sorted(s.inputs["endpoint"] for s in synthesis.of_type("aws:sns/topicSubscription:TopicSubscription")) \
        == ["ml-team@example.com", "oncall@example.com"]


@pytest.mark.parametrize(("schedule", "expected"), [("", 0), ("rate(7 days)", 1)])
def test_retraining_is_scheduled_only_when_configured(synth: Synthesize, schedule: str, expected: int) -> None:
    synthesis = run(synth, trainingSchedule=schedule)

    schedules = synthesis.of_type("aws:scheduler/schedule:Schedule")
    assert len(schedules) == expected
    if schedules:
        assert schedules[0].inputs["scheduleExpression"] == "rate(7 days)"
        assert schedules[0].inputs["kmsKeyArn"] == KEY_ARN


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_training_passes_the_policy_pack(synth: Synthesize, preview: bool) -> None:
    assert_policy_pack_passes(evaluate(run(synth, preview=preview)), preview)


def test_the_machine_role_grants_exactly_the_personalize_actions_the_definitions_call() -> None:
    from components.training import PERSONALIZE_TRAINING_ACTIONS, WILDCARD_ONLY_ACTIONS
    from components.training_definition import segments_definition, teardown_definition, training_definition
    from tests.test_training_definition import ALL, AUTOMATIC, SEGMENTS, config
    from tools.asl_check import tasks

    used = set()
    for definition in (training_definition(config()), teardown_definition(config()), training_definition(ALL),
                       training_definition(AUTOMATIC), teardown_definition(ALL), training_definition(SEGMENTS),
                       teardown_definition(SEGMENTS), segments_definition(SEGMENTS)):
        for _, resource, _ in tasks(definition["States"]):
            if resource.startswith("arn:aws:states:::aws-sdk:personalize:"):
                action = resource.rsplit(":", 1)[1]
                used.add(f"personalize:{action[0].upper()}{action[1:]}")

    granted = set(PERSONALIZE_TRAINING_ACTIONS) | {a for a in WILDCARD_ONLY_ACTIONS if a.startswith("personalize:")}
    assert granted == used
