"""The training and teardown definitions: valid ASL (asl-validator), every SDK task valid for botocore's model, and
the shape every task must have (retries, and a catch that names the failed state before failing)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.training_definition import (
    RETRYABLE,
    TrainingConfig,
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
        parameters={k: f"/cp-dev-euw1/personalize/{k}" for k in ("tracking-id", "campaign-arn", "filter-arns",
                                                                 "items-dataset-arn", "metrics")})
    values.update(overrides)
    return TrainingConfig(**values)


DEFINITIONS = {"training": training_definition(config()), "teardown": teardown_definition(config())}


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
    (lambda s: s["Train"]["Parameters"].update(TrainingMode="PARTIAL"), "is not one of"),
    (lambda s: s["First campaign"]["Parameters"].update(MinProvisionedTPS="1"), "expected integer"),
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
        "create") and n not in ("Import interactions", "Import items", "Train")]

    assert set(creates) >= {"Dataset group", "Interactions schema", "Items schema", "Interactions dataset",
                            "Items dataset", "Event tracker", "Solution", "First campaign"}
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
        if name.startswith("Delete ") and ":" not in name and "(" not in name:
            order.append(name)
        state = states[name]
        name = (state.get("Choices", [{}])[0].get("Next") if state["Type"] == "Choice" else
                next((c["Next"] for c in state.get("Catch", [])
                      if "Personalize.ResourceNotFoundException" in c["ErrorEquals"]), None)
                if name.endswith("gone?") else state["Next"])

    assert order == ["Delete campaign", "Delete filters", "Delete event tracker", "Delete solution",
                     "Delete items dataset", "Delete interactions dataset", "Delete items schema",
                     "Delete interactions schema", "Delete dataset group"]
