"""The training and teardown definitions: valid ASL (asl-validator), every SDK task valid for botocore's model, and
the shape every task must have (retries, and a catch that names the failed state before failing)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from common.contract import ITEM_COLUMNS, PUBLISHED_PARAMETERS, SURFACES, ItemColumn
from components.training_definition import (
    DEFAULT_SURFACE_METRICS,
    ITEMS_SCHEMA,
    RETRYABLE,
    SURFACE_RECIPES,
    SurfacePlan,
    TrainingConfig,
    segments_definition,
    teardown_definition,
    training_definition,
)
from tools.asl_check import asl_validator, sdk_task_problems, tasks

ACCOUNT = "123456789012"


def config(**overrides: Any) -> TrainingConfig:
    values: dict[str, Any] = dict(  # noqa: C408 - keyword form mirrors TrainingConfig's fields
        prefix="cp-dev-euw1", region="eu-west-1", account=ACCOUNT, partition="aws", bucket=f"cp-dev-euw1-raw-{ACCOUNT}",
        steps_function_arn=f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:cp-dev-euw1-training-steps",
        personalize_role_arn=f"arn:aws:iam::{ACCOUNT}:role/cp-dev-euw1-personalize",
        key_arn=f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        topic_arn=f"arn:aws:sns:eu-west-1:{ACCOUNT}:cp-dev-euw1-training",
        recipe_arn="arn:aws:personalize:::recipe/aws-user-personalization-v2",
        metric="normalized_discounted_cumulative_gain_at_25", tolerance=0.01, min_provisioned_tps=1, shards=4,
        filters={"unread": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")'},
        parameters={k: f"/cp-dev-euw1/personalize/{k}" for k in PUBLISHED_PARAMETERS})
    values.update(overrides)
    return TrainingConfig(**values)


def plans(*surfaces: str, metadata: tuple[str, ...] = ()) -> tuple[SurfacePlan, ...]:
    """The plans the program makes for ``surfaces`` (default recipes and metrics)."""
    recipes = {"for-you": "aws-user-personalization-v2", **SURFACE_RECIPES}
    return tuple(SurfacePlan(s, f"arn:aws:personalize:::recipe/{recipes[s]}", DEFAULT_SURFACE_METRICS[s],
                             metadata=s in metadata) for s in surfaces)


ALL = config(surfaces=plans(*SURFACES, metadata=("for-you", "ranking")))
AUTOMATIC = config(surfaces=plans(*SURFACES), mode="automatic", auto_training_days=3)
SEGMENTS = config(surfaces=plans("for-you"), segments=True)
DEFINITIONS = {"training": training_definition(ALL), "teardown": teardown_definition(ALL),
               "automatic": training_definition(AUTOMATIC), "for-you only": training_definition(config()),
               "with segments": training_definition(SEGMENTS), "segments": segments_definition(SEGMENTS),
               "teardown with segments": teardown_definition(SEGMENTS)}


@pytest.mark.parametrize("name", DEFINITIONS)
def test_the_definition_passes_asl_validator(name: str) -> None:
    result = asl_validator(DEFINITIONS[name])

    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition() -> None:
    broken = copy.deepcopy(DEFINITIONS["training"])
    broken["States"]["Summarize"]["Next"] = "No such state"

    assert asl_validator(broken).returncode != 0


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_sdk_task_is_valid_for_botocores_model(name: str) -> None:
    assert sdk_task_problems(DEFINITIONS[name]) == []


@pytest.mark.parametrize(("mutate", "problem"), [
    (lambda s: s["Dataset group"]["Parameters"].pop("Name"), "required member name is missing"),
    (lambda s: s["Dataset group"]["Parameters"].update(Colour="blue"), "Colour: not a member"),
    (lambda s: s["Train (related)"]["Parameters"].update(TrainingMode="PARTIAL"), "is not one of"),
    (lambda s: s["First campaign (ranking)"]["Parameters"].update(MinProvisionedTPS="1"), "expected integer"),
    (lambda s: s["First campaign (ranking)"]["Parameters"]["CampaignConfig"].update(Metadata=True),
     "Metadata: not a member"),
    (lambda s: s["Solution (trending)"]["Parameters"].update(PerformAutoTraining="no"), "expected boolean"),
    (lambda s: s["Dataset group"].update(Resource="arn:aws:states:::aws-sdk:personalize:createDataGroup"),
     "personalize has no action CreateDataGroup"),
])
def test_the_botocore_check_catches_bad_parameters(mutate: Any, problem: str) -> None:
    definition = copy.deepcopy(DEFINITIONS["training"])
    mutate(definition["States"])

    assert any(problem in p for p in sdk_task_problems(definition)), sdk_task_problems(definition)


@pytest.mark.parametrize("name", DEFINITIONS)
def test_every_top_level_task_retries_and_reports_its_failure(name: str) -> None:
    states = DEFINITIONS[name]["States"]
    for state_name, state in states.items():
        if state["Type"] != "Task" or state_name == "Notify failure":
            continue
        if name == "training" or state_name != "Notify failure":
            assert any(set(RETRYABLE) <= set(r["ErrorEquals"]) for r in state.get("Retry", [])), state_name
        catch_all = [c for c in state["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
        assert len(catch_all) == 1, state_name
        reporter = states[catch_all[0]["Next"]]
        assert reporter["Parameters"]["state"] == state_name
        assert reporter["Next"] == "Notify failure"
    assert states["Notify failure"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"


def test_creates_tolerate_already_exists_and_reuse_the_stack_named_resource() -> None:
    states = DEFINITIONS["training"]["States"]
    creates = [n for n, _, _ in tasks(states) if states.get(n, {}).get("Resource", "").split(":")[-1].startswith(
        "create") and n not in ("Import interactions", "Import items") and not n.startswith("Train (")]

    assert set(creates) >= {"Dataset group", "Interactions schema", "Items schema", "Interactions dataset",
                            "Items dataset", "Event tracker"} | {f"Solution ({s})" for s in SURFACES} | {
                                f"First campaign ({s})" for s in SURFACES}
    for name in creates:
        assert any("Personalize.ResourceAlreadyExistsException" in c["ErrorEquals"] for c in states[name]["Catch"])
    assert states["Dataset group"]["Parameters"]["Name"] == "cp-dev-euw1"


def test_the_data_prep_maps_over_the_raw_partitions_with_a_distributed_map() -> None:
    prepare = DEFINITIONS["training"]["States"]["Prepare raw events"]

    assert prepare["ItemReader"]["Parameters"] == {"Bucket": f"cp-dev-euw1-raw-{ACCOUNT}", "Prefix": "events/"}
    assert prepare["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert prepare["ItemSelector"] == {"step": "map", "runId.$": "$$.Execution.Name", "shards": 4,
                                       "key.$": "$$.Map.Item.Value.Key"}


def test_teardown_deletes_in_dependency_order() -> None:
    states = DEFINITIONS["teardown"]["States"]
    order, name = [], states["Start"]["Next"]
    while states[name]["Type"] != "Succeed":  # follow the path where each resource exists and then goes away
        if name.startswith("Delete ") and ":" not in name and not name.endswith("(waiting)"):
            order.append(name)
        state = states[name]
        name = (state.get("Choices", [{}])[0].get("Next") if state["Type"] == "Choice" else
                next((c["Next"] for c in state.get("Catch", [])
                      if "Personalize.ResourceNotFoundException" in c["ErrorEquals"]), None)
                if name.endswith("gone?") else state["Next"])

    assert order == [*(f"Delete campaign ({s})" for s in SURFACES), "Delete filters", "Delete event tracker",
                     *(f"Delete solution ({s})" for s in SURFACES), "Delete items dataset",
                     "Delete interactions dataset", "Delete items schema", "Delete first items schema",
                     "Delete interactions schema", "Delete dataset group"]


def test_each_surface_trains_its_recipe_with_automatic_training_explicitly_off() -> None:
    states = DEFINITIONS["training"]["States"]

    recipes = {s: states[f"Solution ({s})"]["Parameters"]["RecipeArn"].rsplit("/", 1)[1] for s in SURFACES}
    assert recipes == {"for-you": "aws-user-personalization-v2", "related": "aws-similar-items",
                       "trending": "aws-trending-now", "ranking": "aws-personalized-ranking-v2"}
    assert {states[f"Solution ({s})"]["Parameters"]["PerformAutoTraining"] for s in SURFACES} == {False}
    assert all("SolutionConfig" not in states[f"Solution ({s})"]["Parameters"] for s in SURFACES)
    # for-you keeps the names it had before surfaces existed; the others are named by surface
    assert states["Solution (for-you)"]["Parameters"]["Name"] == "cp-dev-euw1-solution"
    assert states["First campaign (related)"]["Parameters"]["Name"] == "cp-dev-euw1-related-campaign"


def test_each_gated_surface_compares_its_own_metric_and_trending_has_no_gate() -> None:
    states = DEFINITIONS["training"]["States"]

    metrics = {s: states[f"Compare ({s})"]["Parameters"]["Payload"]["metric"] for s in ("for-you", "related",
                                                                                         "ranking")}
    assert metrics == {"for-you": "normalized_discounted_cumulative_gain_at_25",
                       "related": "normalized_discounted_cumulative_gain_at_10",
                       "ranking": "normalized_discounted_cumulative_gain_at_10"}
    assert "Compare (trending)" not in states and "Existing campaign (trending)" in states


def test_metadata_is_enabled_only_where_configured_and_campaigns_never_sync_in_gated_mode() -> None:
    states = DEFINITIONS["training"]["States"]

    for s in SURFACES:
        for name in (f"First campaign ({s})", f"Update campaign ({s})"):
            assert states[name]["Parameters"]["CampaignConfig"] == {
                "SyncWithLatestSolutionVersion": False,
                "EnableMetadataWithRecommendations": s in ("for-you", "ranking")}, name


def test_automatic_mode_lets_personalize_train_and_campaigns_follow_the_latest_version() -> None:
    states = DEFINITIONS["automatic"]["States"]

    for s in SURFACES:
        solution = states[f"Solution ({s})"]["Parameters"]
        assert solution["PerformAutoTraining"] is True
        assert solution["SolutionConfig"] == {"AutoTrainingConfig": {"SchedulingExpression": "rate(3 days)"}}
        campaign = states[f"First campaign ({s})"]["Parameters"]
        assert campaign["SolutionVersionArn"].endswith("/$LATEST")
        assert campaign["CampaignConfig"]["SyncWithLatestSolutionVersion"] is True
        assert f"Compare ({s})" not in states  # no gate


def test_campaign_arns_name_every_trained_surface_and_campaign_arn_stays_for_you() -> None:
    states = DEFINITIONS["training"]["States"]

    published = states["Publish campaigns"]["Parameters"]
    assert published["Name"] == "/cp-dev-euw1/personalize/campaign-arns"
    assert json.loads(published["Value"]) == {
        s: f"arn:aws:personalize:eu-west-1:{ACCOUNT}:campaign/" + (
            "cp-dev-euw1-campaign" if s == "for-you" else f"cp-dev-euw1-{s}-campaign") for s in SURFACES}
    assert states["Publish campaign"]["Parameters"]["Value"].endswith(":campaign/cp-dev-euw1-campaign")
    without_for_you = training_definition(config(surfaces=plans("related")))["States"]
    assert "Publish campaign" not in without_for_you
    assert without_for_you["Publish campaigns"]["Next"] == "Notify trained"


def test_the_items_schema_has_the_columns_the_replies_show() -> None:
    fields = {f["name"]: f for f in ITEMS_SCHEMA["fields"]}

    assert tuple(fields) == ITEM_COLUMNS
    assert {ItemColumn.TITLE, ItemColumn.URL, ItemColumn.CATEGORY, ItemColumn.CREATION_TIMESTAMP} <= set(fields)
    assert fields["TITLE"].get("textual") is True and "categorical" not in fields["TITLE"]
    assert fields["CATEGORY"]["categorical"] is True
    assert "categorical" not in fields["URL"] and "textual" not in fields["URL"]  # kept, not trained on
    assert fields["CREATION_TIMESTAMP"]["type"] == "long"


def test_segment_solutions_train_each_run_with_automatic_training_off_and_no_campaign() -> None:
    states = DEFINITIONS["with segments"]["States"]

    recipes = {n: st["Parameters"]["RecipeArn"].rsplit("/", 1)[1] for n, st in states.items()
               if n.startswith("Segments solution (") and n.endswith(")") and "waiting" not in n}
    assert recipes == {"Segments solution (itemAffinity)": "aws-item-affinity",
                       "Segments solution (itemAttributeAffinity)": "aws-item-attribute-affinity"}
    assert {states[n]["Parameters"]["PerformAutoTraining"] for n in recipes} == {False}
    assert not any("campaign" in n.lower() and "segment" in n.lower() for n in states)


def test_the_segment_job_reads_and_writes_the_documented_prefixes_with_the_stack_key() -> None:
    states = DEFINITIONS["segments"]["States"]

    job = states["Segment job"]["Parameters"]
    assert job["JobOutput"]["S3DataDestination"]["KmsKeyArn"] == config().key_arn
    assert job["RoleArn"] == config().personalize_role_arn
    assert states["Write segment input"]["Parameters"]["Payload"]["solutions"] == {
        "itemAffinity": f"arn:aws:personalize:eu-west-1:{ACCOUNT}:solution/cp-dev-euw1-item-affinity-solution",
        "itemAttributeAffinity":
            f"arn:aws:personalize:eu-west-1:{ACCOUNT}:solution/cp-dev-euw1-item-attribute-affinity-solution"}
