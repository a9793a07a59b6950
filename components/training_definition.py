"""The training state machines' definitions (Amazon States Language), generated from small builders.

Pure Python with plain values, so the component deploys, and the tests validate and execute, the same definition.
Every create is idempotent: "already exists" continues with the resource of the same (stack-derived) name, so a
re-run after a failure at any step creates nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.contract import Key, Parameter, Surface

INTERACTIONS_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "RECOMMENDATION_ID", "type": ["null", "string"]},
        {"name": "IMPRESSION", "type": ["null", "string"]},
    ],
}
ITEMS_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
        {"name": "TAGS", "type": ["null", "string"], "categorical": True},
        # Unstructured text (max 20,000 characters): the recipes that use text learn from the post's title.
        {"name": "TITLE", "type": ["null", "string"], "textual": True},
        # Neither categorical nor textual: not trained on, kept for metadata with recommendations.
        {"name": "URL", "type": ["null", "string"]},
    ],
}
# Schemas cannot change: a new items schema gets a new name, and an existing items dataset is moved onto it.
ITEMS_SCHEMA_VERSION = "items-v2"
# The recipe of each surface (for-you's is configurable) and the offline metric its gate compares by default.
# Trending-Now finds new trends without new versions (Personalize's docs): no gate, it is trained once.
SURFACE_RECIPES = {Surface.RELATED: "aws-similar-items", Surface.TRENDING: "aws-trending-now",
                   Surface.RANKING: "aws-personalized-ranking-v2"}
DEFAULT_SURFACE_METRICS: dict[str, str | None] = {
    Surface.FOR_YOU: "normalized_discounted_cumulative_gain_at_25",
    Surface.RELATED: "normalized_discounted_cumulative_gain_at_10",
    Surface.TRENDING: None,
    Surface.RANKING: "normalized_discounted_cumulative_gain_at_10",
}
GATED, AUTOMATIC = "gated", "automatic"
# User segments: batch-only solutions (no campaign), a new version each run, keyed as the segments step names them.
SEGMENT_RECIPES = {"itemAffinity": "aws-item-affinity", "itemAttributeAffinity": "aws-item-attribute-affinity"}
# Errors worth retrying: throttling and contention surface as these in Step Functions' SDK integrations.
RETRYABLE = ["Personalize.PersonalizeException", "Personalize.ResourceInUseException",
             "Personalize.LimitExceededException", "Lambda.TooManyRequestsException", "Lambda.ServiceException",
             "Lambda.SdkClientException", "Lambda.AWSLambdaException", "States.Timeout"]
ALREADY_EXISTS = "Personalize.ResourceAlreadyExistsException"
NOT_FOUND = "Personalize.ResourceNotFoundException"


@dataclass(frozen=True)
class SurfacePlan:
    """One trained surface: its recipe, the metric its gate compares (None: no gate, trained once), and whether its
    campaign returns item metadata with recommendations."""

    surface: str
    recipe_arn: str
    metric: str | None
    metadata: bool = False

    @property
    def slot(self) -> str:
        """Where this surface's results live in the execution's state (a JSONPath-safe name)."""
        return self.surface.replace("-", "_")


@dataclass(frozen=True)
class TrainingConfig:
    prefix: str
    region: str
    account: str
    partition: str
    bucket: str
    steps_function_arn: str
    personalize_role_arn: str
    key_arn: str
    topic_arn: str
    recipe_arn: str
    metric: str
    tolerance: float
    min_provisioned_tps: int
    shards: int
    filters: Mapping[str, str]
    parameters: Mapping[str, str]  # PUBLISHED_PARAMETERS → SSM names
    poll_seconds: int = 60
    map_concurrency: int = 10
    retry_seconds: int = 5
    # Empty: the for-you surface alone, with ``recipe_arn`` and ``metric``.
    surfaces: tuple[SurfacePlan, ...] = ()
    mode: str = GATED
    auto_training_days: int = 7
    segments: bool = False

    def segment_solution_arn(self, kind: str) -> str:
        return self.arn(f"solution/{self.segment_solution_name(kind)}")

    def segment_solution_name(self, kind: str) -> str:
        return f"{self.prefix}-{SEGMENT_RECIPES[kind].removeprefix('aws-')}-solution"

    @property
    def plans(self) -> tuple[SurfacePlan, ...]:
        return self.surfaces or (SurfacePlan(Surface.FOR_YOU, self.recipe_arn, self.metric),)

    def solution_arn_of(self, surface: str) -> str:
        return self.arn(f"solution/{self.name_of(surface, 'solution')}")

    def campaign_arn_of(self, surface: str) -> str:
        return self.arn(f"campaign/{self.name_of(surface, 'campaign')}")

    def name_of(self, surface: str, kind: str) -> str:
        """The name of a surface's solution or campaign. for-you keeps the names it had before there were surfaces,
        so an upgrade re-uses its solution and campaign."""
        return f"{self.prefix}-{kind}" if surface == Surface.FOR_YOU else f"{self.prefix}-{surface}-{kind}"

    @property
    def retry(self) -> list[dict[str, Any]]:
        return [{"ErrorEquals": RETRYABLE, "IntervalSeconds": self.retry_seconds, "BackoffRate": 2.0,
                 "MaxAttempts": 6, "JitterStrategy": "FULL"}]

    def arn(self, resource: str) -> str:
        return f"arn:{self.partition}:personalize:{self.region}:{self.account}:{resource}"

    @property
    def dataset_group_arn(self) -> str:
        return self.arn(f"dataset-group/{self.prefix}")

    def dataset_arn(self, kind: str) -> str:
        return self.arn(f"dataset/{self.prefix}/{kind.upper()}")

    def schema_arn(self, kind: str) -> str:
        return self.arn(f"schema/{self.prefix}-{kind}")

    def filter_arn(self, name: str) -> str:
        return self.arn(f"filter/{self.prefix}-{name}")


def sdk(service: str, action: str, partition: str = "aws") -> str:
    return f"arn:{partition}:states:::aws-sdk:{service}:{action}"


@dataclass
class Machine:
    """Accumulates states; the builders below add the repeated shapes."""

    retry: list[dict[str, Any]]
    partition: str
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sdk(self, service: str, action: str) -> str:
        return sdk(service, action, self.partition)

    def add(self, name: str, state: dict[str, Any]) -> str:
        if name in self.states:
            raise ValueError(f"duplicate state {name}")
        self.states[name] = state
        return name

    def task(self, name: str, resource: str, parameters: Mapping[str, Any], next_state: str | None, *,
             result_path: str | None = "$.last", result_selector: Mapping[str, Any] | None = None,
             catches: Sequence[Mapping[str, Any]] = ()) -> str:
        """A Task with retries for transient errors, and a catch-all that notifies which state failed and why."""
        failed = self.failure(name)
        state: dict[str, Any] = {
            "Type": "Task", "Resource": resource, "Parameters": dict(parameters), "ResultPath": result_path,
            "Retry": self.retry,
            "Catch": [*catches, {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": failed}],
        }
        if result_selector:
            state["ResultSelector"] = dict(result_selector)
        if next_state is None:
            state["End"] = True
        else:
            state["Next"] = next_state
        return self.add(name, state)

    def failure(self, name: str) -> str:
        """The state a catch-all of ``name`` goes to: it records the state's name and the error, then notifies."""
        return self.add(f"{name} failed", {
            "Type": "Pass", "Parameters": {"state": name, "error.$": "$.error.Error", "cause.$": "$.error.Cause"},
            "ResultPath": "$.failure", "Next": "Notify failure"})

    def catch_all(self, name: str) -> list[dict[str, Any]]:
        return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": self.failure(name)}]

    def notify_failure_and_fail(self, config: TrainingConfig, what: str, error: str, cause: str) -> None:
        """The shared end of every failure path: notify which state failed and why (retried), then fail."""
        self.add("Notify failure", {
            "Type": "Task", "Resource": f"arn:{self.partition}:states:::sns:publish",
            "Parameters": {"TopicArn": config.topic_arn, "Subject": f"Personalize {what.lower()} failed",
                           "Message.$": f"States.Format('{what} failed in state {{}}: {{}} ({{}})', $.failure.state, "
                                        "$.failure.error, $.failure.cause)"},
            "ResultPath": None,
            "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "BackoffRate": 2.0, "MaxAttempts": 3}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": "Failed"}],
            "Next": "Failed"})
        self.add("Failed", {"Type": "Fail", "Error": error, "Cause": cause})

    def ensure(self, name: str, action: str, parameters: Mapping[str, Any], next_state: str) -> str:
        """Create, or carry on with the existing resource of the same name."""
        return self.task(name, self.sdk("personalize", action), parameters, next_state, result_path=None,
                         catches=[{"ErrorEquals": [ALREADY_EXISTS], "ResultPath": None, "Next": next_state}])

    def poll(self, name: str, action: str, parameters: Mapping[str, Any], status_path: str, next_state: str,
             poll_seconds: int) -> str:
        # ``status_path`` points into the Describe result; the Choice reads its copy under $.status.value.
        """Describe until ACTIVE (continue) or a FAILED status (notify and fail); wait between looks."""
        check, wait = f"{name}?", f"{name} (waiting)"
        failed = self.add(f"{name} ended failed", {
            "Type": "Pass", "Parameters": {"state": name, "error": "ResourceFailed",
                                           "cause.$": "States.Format('status {}', $.status.value)"},
            "ResultPath": "$.failure", "Next": "Notify failure"})
        self.task(name, self.sdk("personalize", action), parameters, check, result_path="$.status",
                  result_selector={"value.$": status_path})
        self.add(check, {"Type": "Choice", "Choices": [
            {"Variable": "$.status.value", "StringEquals": "ACTIVE", "Next": next_state},
            {"Or": [{"Variable": "$.status.value", "StringEquals": "CREATE FAILED"},
                    {"Variable": "$.status.value", "StringEquals": "FAILED"}], "Next": failed},
        ], "Default": wait})
        self.add(wait, {"Type": "Wait", "Seconds": poll_seconds, "Next": name})
        return name

    def publish(self, name: str, config: TrainingConfig, key: str, value: Mapping[str, Any], next_state: str) -> str:
        return self.task(name, self.sdk("ssm", "putParameter"),
                         {"Name": config.parameters[key], "Type": "String", "Overwrite": True, **value}, next_state,
                         result_path=None)

    def notify(self, name: str, config: TrainingConfig, subject: str, message: Mapping[str, Any],
               next_state: str) -> str:
        return self.task(name, f"arn:{self.partition}:states:::sns:publish",
                         {"TopicArn": config.topic_arn, "Subject": subject, **message}, next_state, result_path=None)


def _step_per_item(config: TrainingConfig) -> dict[str, Any]:
    """The training steps function on one Map item; the item is the payload, the function's answer the result."""
    return {"Type": "Task", "Resource": f"arn:{config.partition}:states:::lambda:invoke",
            "Parameters": {"FunctionName": config.steps_function_arn, "Payload.$": "$"}, "OutputPath": "$.Payload",
            "Retry": config.retry, "End": True}


def _steps_call(config: TrainingConfig, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"FunctionName": config.steps_function_arn, "Payload": dict(payload)}


def training_definition(config: TrainingConfig) -> dict[str, Any]:
    """Raw clicks → prepared CSV → (enough data?) → Personalize resources → trained, evaluated, maybe promoted."""
    m = Machine(config.retry, config.partition)
    for step in (_prepare, _datasets, _imports, _tracker, _filters, _surfaces):
        step(m, config)
    m.notify_failure_and_fail(config, "Training", "TrainingFailed",
                              "A training step failed; the notification names the state and the cause.")
    return {"Comment": f"Train Amazon Personalize for {config.prefix}", "StartAt": "Start", "States": m.states}


def _lambda(config: TrainingConfig) -> str:
    return f"arn:{config.partition}:states:::lambda:invoke"


def _prepare(m: Machine, config: TrainingConfig) -> None:
    """Raw objects → shards → prepared CSV and counts; too little data ends the run successfully."""
    filters = [{"name": f"{config.prefix}-{name}", "expression": expression}
               for name, expression in sorted(config.filters.items())]
    m.add("Start", {"Type": "Pass", "Result": {"shardIds": list(range(config.shards)), "filters": filters},
                    "ResultPath": "$.plan", "Next": "Prepare raw events"})
    m.add("Prepare raw events", {
        "Type": "Map",
        "ItemReader": {"Resource": f"arn:{config.partition}:states:::s3:listObjectsV2",
                       "Parameters": {"Bucket": config.bucket, "Prefix": Key.EVENTS}},
        # One raw object per iteration (objects are at most the Firehose buffer size).
        "ItemSelector": {"step": "map", "runId.$": "$$.Execution.Name", "shards": config.shards,
                         "key.$": "$$.Map.Item.Value.Key"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Map raw objects",
            "States": {"Map raw objects": _step_per_item(config)},
        },
        "MaxConcurrency": config.map_concurrency,
        "ResultPath": "$.maps",
        "Catch": m.catch_all("Prepare raw events"),
        "Next": "Reduce shards",
    })
    m.add("Reduce shards", {
        "Type": "Map", "ItemsPath": "$.plan.shardIds", "MaxConcurrency": config.map_concurrency,
        "ItemSelector": {"step": "reduce", "runId.$": "$$.Execution.Name", "shard.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Reduce shard",
                          "States": {"Reduce shard": _step_per_item(config)}},
        "ResultPath": "$.shards",
        "Catch": m.catch_all("Reduce shards"),
        "Next": "Summarize",
    })
    m.task("Summarize", _lambda(config), _steps_call(config, {"step": "summarize", "runId.$": "$$.Execution.Name",
                                                  "maps.$": "$.maps", "shards.$": "$.shards"}),
           "Enough data?", result_path="$.totals", result_selector={"value.$": "$.Payload"})
    m.add("Enough data?", {"Type": "Choice", "Choices": [
        {"Variable": "$.totals.value.sufficient", "BooleanEquals": True, "Next": "Dataset group"}],
        "Default": "Notify insufficient data"})
    m.notify("Notify insufficient data", config, "Personalize training: not enough data yet", {
        "Message.$": "States.Format('Not enough data to train: {} interactions, {} users with 2 or more. Nothing "
                     "was created in Personalize.', $.totals.value.interactions, $.totals.value.users_with_two)"},
             "Insufficient data")
    m.add("Insufficient data", {"Type": "Succeed"})


def _datasets(m: Machine, config: TrainingConfig) -> None:
    """Dataset group, schemas and datasets: created once, then re-used."""
    m.ensure("Dataset group", "createDatasetGroup", {"Name": config.prefix, "RoleArn": config.personalize_role_arn,
                                                     "KmsKeyArn": config.key_arn}, "Dataset group ready")
    m.poll("Dataset group ready", "describeDatasetGroup", {"DatasetGroupArn": config.dataset_group_arn},
           "$.DatasetGroup.Status", "Interactions schema", config.poll_seconds)
    m.ensure("Interactions schema", "createSchema", {"Name": f"{config.prefix}-interactions",
                                                     "Schema": json.dumps(INTERACTIONS_SCHEMA)}, "Items schema")
    m.ensure("Items schema", "createSchema", {"Name": f"{config.prefix}-{ITEMS_SCHEMA_VERSION}",
                                              "Schema": json.dumps(ITEMS_SCHEMA)}, "Interactions dataset")
    m.ensure("Interactions dataset", "createDataset", {
        "Name": f"{config.prefix}-interactions", "DatasetGroupArn": config.dataset_group_arn,
        "DatasetType": "Interactions", "SchemaArn": config.schema_arn("interactions")}, "Interactions dataset ready")
    m.poll("Interactions dataset ready", "describeDataset", {"DatasetArn": config.dataset_arn("interactions")},
           "$.Dataset.Status", "Items dataset", config.poll_seconds)
    m.ensure("Items dataset", "createDataset", {
        "Name": f"{config.prefix}-items", "DatasetGroupArn": config.dataset_group_arn, "DatasetType": "Items",
        "SchemaArn": config.schema_arn(ITEMS_SCHEMA_VERSION)}, "Items dataset ready")
    m.poll("Items dataset ready", "describeDataset", {"DatasetArn": config.dataset_arn("items")},
           "$.Dataset.Status", "Items dataset schema", config.poll_seconds)
    # An items dataset made with an older schema (without TITLE and URL) moves onto the current one.
    m.task("Items dataset schema", m.sdk("personalize", "describeDataset"), {"DatasetArn": config.dataset_arn("items")},
           "Items schema current?", result_path="$.itemsDataset", result_selector={"schema.$": "$.Dataset.SchemaArn"})
    m.add("Items schema current?", {"Type": "Choice", "Choices": [
        {"Variable": "$.itemsDataset.schema", "StringEquals": config.schema_arn(ITEMS_SCHEMA_VERSION),
         "Next": "Publish items dataset"}], "Default": "Update items schema"})
    m.task("Update items schema", m.sdk("personalize", "updateDataset"), {
        "DatasetArn": config.dataset_arn("items"), "SchemaArn": config.schema_arn(ITEMS_SCHEMA_VERSION)},
        "Publish items dataset", result_path=None)
    m.publish("Publish items dataset", config, Parameter.ITEMS_DATASET_ARN, {"Value": config.dataset_arn("items")},
              "Import interactions")


def _imports(m: Machine, config: TrainingConfig) -> None:
    """This run's data: one import job per run (the job name carries the execution name)."""
    m.task("Import interactions", m.sdk("personalize", "createDatasetImportJob"), {
        "JobName.$": f"States.Format('{config.prefix}-interactions-{{}}', $$.Execution.Name)",
        "DatasetArn": config.dataset_arn("interactions"), "RoleArn": config.personalize_role_arn,
        "ImportMode": "FULL", "DataSource": {"DataLocation.$": "$.totals.value.interactionsLocation"}},
        "Interactions imported", result_path="$.interactionsImport")
    m.poll("Interactions imported", "describeDatasetImportJob",
           {"DatasetImportJobArn.$": "$.interactionsImport.DatasetImportJobArn"},
           "$.DatasetImportJob.Status", "Any items?", config.poll_seconds)
    m.add("Any items?", {"Type": "Choice", "Choices": [
        {"Variable": "$.totals.value.items", "NumericGreaterThan": 0, "Next": "Import items"}],
        "Default": "Event tracker"})
    m.task("Import items", m.sdk("personalize", "createDatasetImportJob"), {
        "JobName.$": f"States.Format('{config.prefix}-items-{{}}', $$.Execution.Name)",
        "DatasetArn": config.dataset_arn("items"), "RoleArn": config.personalize_role_arn, "ImportMode": "FULL",
        "DataSource": {"DataLocation.$": "$.totals.value.itemsLocation"}},
        "Items imported", result_path="$.itemsImport")
    m.poll("Items imported", "describeDatasetImportJob", {"DatasetImportJobArn.$": "$.itemsImport.DatasetImportJobArn"},
           "$.DatasetImportJob.Status", "Event tracker", config.poll_seconds)


def _tracker(m: Machine, config: TrainingConfig) -> None:
    """Real time: one event tracker per dataset group; its tracking id is what the event processor needs."""
    m.ensure("Event tracker", "createEventTracker", {"Name": f"{config.prefix}-tracker",
                                                     "DatasetGroupArn": config.dataset_group_arn}, "Find tracker")
    m.task("Find tracker", m.sdk("personalize", "listEventTrackers"), {"DatasetGroupArn": config.dataset_group_arn},
           "Tracker ready", result_path="$.tracker",
           result_selector={"first.$": "States.ArrayGetItem($.EventTrackers, 0)"})
    m.task("Tracker ready", m.sdk("personalize", "describeEventTracker"),
           {"EventTrackerArn.$": "$.tracker.first.EventTrackerArn"},
           "Tracker active?", result_path="$.tracker",
           result_selector={"first": {"EventTrackerArn.$": "$.EventTracker.EventTrackerArn"},
                            "trackingId.$": "$.EventTracker.TrackingId", "status.$": "$.EventTracker.Status"})
    m.add("Tracker active?", {"Type": "Choice", "Choices": [
        {"Variable": "$.tracker.status", "StringEquals": "ACTIVE", "Next": "Publish tracking id"}],
        "Default": "Tracker (waiting)"})
    m.add("Tracker (waiting)", {"Type": "Wait", "Seconds": config.poll_seconds, "Next": "Tracker ready"})
    m.publish("Publish tracking id", config, Parameter.TRACKING_ID, {"Value.$": "$.tracker.trackingId"}, "Filters")


def _filters(m: Machine, config: TrainingConfig) -> None:
    """The configured filters, created once and published by name for the recommendations function."""
    m.add("Filters", {
        "Type": "Map", "ItemsPath": "$.plan.filters", "MaxConcurrency": 1,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Filter", "States": {"Filter": {
            "Type": "Task", "Resource": m.sdk("personalize", "createFilter"),
            "Parameters": {"Name.$": "$.name", "FilterExpression.$": "$.expression",
                           "DatasetGroupArn": config.dataset_group_arn},
            "Retry": config.retry,
            "Catch": [{"ErrorEquals": [ALREADY_EXISTS], "ResultPath": None, "Next": "Filter exists"}],
            "End": True}, "Filter exists": {"Type": "Succeed"}}},
        "ResultPath": None,
        "Catch": m.catch_all("Filters"),
        "Next": "Publish filters",
    })
    m.publish("Publish filters", config, Parameter.FILTER_ARNS,
              {"Value": json.dumps({name: config.filter_arn(name) for name in sorted(config.filters)})},
              f"Solution ({config.plans[0].surface})")


def _surfaces(m: Machine, config: TrainingConfig) -> None:
    """One branch per trained surface, one after the other (each ends in the next one's first state), then publish."""
    plans = config.plans
    segments = [f"Segments solution ({kind})" for kind in SEGMENT_RECIPES] if config.segments else []
    entries = [f"Solution ({plan.surface})" for plan in plans] + segments + ["Publish campaigns"]
    for plan, next_state in zip(plans, entries[1:], strict=False):
        _surface(m, config, plan, next_state)
    for kind, name, next_state in zip(SEGMENT_RECIPES, segments, entries[len(plans) + 1:], strict=False):
        _segments_solution(m, config, kind, name, next_state)
    arns = json.dumps({plan.surface: config.campaign_arn_of(plan.surface) for plan in plans})
    serves_for_you = any(plan.surface == Surface.FOR_YOU for plan in plans)
    m.publish("Publish campaigns", config, Parameter.CAMPAIGN_ARNS, {"Value": arns},
              "Publish campaign" if serves_for_you else "Notify trained")
    if serves_for_you:  # functions deployed before the surfaces read this one
        m.publish("Publish campaign", config, Parameter.CAMPAIGN_ARN,
                  {"Value": config.campaign_arn_of(Surface.FOR_YOU)}, "Notify trained")
    m.notify("Notify trained", config, "Personalize training: run finished", {
        "Message": "Training finished for " + ", ".join(plan.surface for plan in plans) + "; each surface's "
                   "notification says whether its new version serves."}, "Trained")
    m.add("Trained", {"Type": "Succeed"})


def _segments_solution(m: Machine, config: TrainingConfig, kind: str, name: str, next_state: str) -> None:
    """A batch-only solution for segment jobs: automatic training off, a new version each run, no campaign (a segment
    job uses the solution's latest version)."""
    arn = config.segment_solution_arn(kind)
    m.ensure(name, "createSolution", {
        "Name": config.segment_solution_name(kind), "DatasetGroupArn": config.dataset_group_arn,
        "RecipeArn": f"arn:{config.partition}:personalize:::recipe/{SEGMENT_RECIPES[kind]}",
        "PerformAutoTraining": False}, f"{name} ready")
    m.poll(f"{name} ready", "describeSolution", {"SolutionArn": arn}, "$.Solution.Status", f"Train segments ({kind})",
           config.poll_seconds)
    m.task(f"Train segments ({kind})", m.sdk("personalize", "createSolutionVersion"),
           {"SolutionArn": arn, "TrainingMode": "FULL"}, f"Segments trained ({kind})", result_path=f"$.{kind}")
    m.poll(f"Segments trained ({kind})", "describeSolutionVersion",
           {"SolutionVersionArn.$": f"$.{kind}.SolutionVersionArn"}, "$.SolutionVersion.Status", next_state,
           config.poll_seconds)


def segments_definition(config: TrainingConfig) -> dict[str, Any]:
    """One batch segment job: input file (posts, a category, or the newest posts) → the job → notified output."""
    m = Machine(config.retry, config.partition)
    m.task("Write segment input", _lambda(config), _steps_call(config, {
        "step": "segments-input", "runId.$": "$$.Execution.Name", "request.$": "$",
        "solutions": {kind: config.segment_solution_arn(kind) for kind in SEGMENT_RECIPES}}),
        "Latest segments version", result_path="$.job", result_selector={"value.$": "$.Payload"})
    m.task("Latest segments version", m.sdk("personalize", "describeSolution"),
           {"SolutionArn.$": "$.job.value.solutionArn"}, "Segments version trained?", result_path="$.solution",
           result_selector={"described.$": "$.Solution"})
    latest = "$.solution.described.LatestSolutionVersion"
    m.add("Segments version trained?", {"Type": "Choice", "Choices": [
        {"And": [{"Variable": latest, "IsPresent": True},
                 {"Variable": f"{latest}.Status", "StringEquals": "ACTIVE"}], "Next": "Segment job"}],
        "Default": "No trained segments version"})
    m.add("No trained segments version", {"Type": "Pass", "Parameters": {
        "state": "Latest segments version", "error": "NotTrained",
        "cause": "the segments solution has no ACTIVE version yet: run the training first"},
        "ResultPath": "$.failure", "Next": "Notify failure"})
    m.task("Segment job", m.sdk("personalize", "createBatchSegmentJob"), {
        "JobName.$": f"States.Format('{config.prefix}-seg-{{}}', $$.Execution.Name)",
        "SolutionVersionArn.$": f"{latest}.SolutionVersionArn", "RoleArn": config.personalize_role_arn,
        "JobInput": {"S3DataSource": {"Path.$": "$.job.value.input"}},
        "JobOutput": {"S3DataDestination": {"Path.$": "$.job.value.output", "KmsKeyArn": config.key_arn}}},
        "Segments written?", result_path="$.segmentJob")
    m.poll("Segments written?", "describeBatchSegmentJob", {"BatchSegmentJobArn.$": "$.segmentJob.BatchSegmentJobArn"},
           "$.BatchSegmentJob.Status", "Notify segments", config.poll_seconds)
    m.notify("Notify segments", config, "Personalize user segments written", {
        "Message.$": "States.Format('{} segment(s) ({}) written under {}', $.job.value.lines, $.job.value.recipe, "
                     "$.job.value.output)"}, "Segments written")
    m.add("Segments written", {"Type": "Succeed"})
    m.notify_failure_and_fail(config, "Segments", "SegmentsFailed", "See the notification.")
    return {"Comment": f"User segments of {config.prefix}", "StartAt": "Write segment input", "States": m.states}


def _gated(config: TrainingConfig, plan: SurfacePlan) -> bool:
    """Whether our metric gate decides what this surface serves (else: trained once, or Personalize's own cycle)."""
    return config.mode == GATED and plan.metric is not None


def _solution_parameters(config: TrainingConfig, plan: SurfacePlan) -> dict[str, Any]:
    """Automatic training is always set explicitly: Personalize's default (on, every 7 days) bills trainings that
    our gate would never see."""
    automatic = config.mode == AUTOMATIC
    parameters: dict[str, Any] = {"Name": config.name_of(plan.surface, "solution"),
                                  "DatasetGroupArn": config.dataset_group_arn, "RecipeArn": plan.recipe_arn,
                                  "PerformAutoTraining": automatic}
    if automatic:
        parameters["SolutionConfig"] = {"AutoTrainingConfig": {"SchedulingExpression": _auto_rate(config)}}
    return parameters


def _auto_rate(config: TrainingConfig) -> str:
    return f"rate({config.auto_training_days} {'day' if config.auto_training_days == 1 else 'days'})"


def _campaign_config(config: TrainingConfig, plan: SurfacePlan) -> dict[str, Any]:
    return {"SyncWithLatestSolutionVersion": config.mode == AUTOMATIC,
            "EnableMetadataWithRecommendations": plan.metadata}


def _surface(m: Machine, config: TrainingConfig, plan: SurfacePlan, next_state: str) -> None:
    """Solution (automatic training as configured) → a new version → the gate → the campaign, for one surface."""
    s, slot, poll = plan.surface, plan.slot, config.poll_seconds
    solution_arn = config.solution_arn_of(s)
    m.ensure(f"Solution ({s})", "createSolution", _solution_parameters(config, plan), f"Solution ready ({s})")
    m.poll(f"Solution ready ({s})", "describeSolution", {"SolutionArn": solution_arn}, "$.Solution.Status",
           f"Solution training mode ({s})", poll)
    # A solution created before (by an older version of this program, or in the other mode) is switched over.
    automatic = config.mode == AUTOMATIC
    after_mode = f"Train ({s})" if _gated(config, plan) else f"Existing campaign ({s})"
    m.task(f"Solution training mode ({s})", m.sdk("personalize", "describeSolution"), {"SolutionArn": solution_arn},
           f"Training mode as configured? ({s})", result_path=f"$.{slot}.solution",
           result_selector={"Solution.$": "$.Solution"})
    mode_variable = f"$.{slot}.solution.Solution.PerformAutoTraining"
    m.add(f"Training mode as configured? ({s})", {"Type": "Choice", "Choices": [
        {"And": [{"Variable": mode_variable, "IsPresent": True},
                 {"Variable": mode_variable, "BooleanEquals": automatic}], "Next": after_mode}],
        "Default": f"Set training mode ({s})"})
    update: dict[str, Any] = {"SolutionArn": solution_arn, "PerformAutoTraining": automatic}
    if automatic:
        update["SolutionUpdateConfig"] = {"AutoTrainingConfig": {"SchedulingExpression": _auto_rate(config)}}
    m.task(f"Set training mode ({s})", m.sdk("personalize", "updateSolution"), update, after_mode, result_path=None)

    if not _gated(config, plan):
        # Trained once: Trending-Now finds new trends without new versions; in automatic mode Personalize retrains.
        m.task(f"Existing campaign ({s})", m.sdk("personalize", "describeCampaign"),
               {"CampaignArn": config.campaign_arn_of(s)},
               f"Campaign as configured? ({s})" if automatic else next_state,
               result_path=f"$.{slot}.campaign",
               catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": f"Train ({s})"}])
        if automatic:  # a campaign from gated mode is moved onto the solution's latest version
            sync = f"$.{slot}.campaign.Campaign.CampaignConfig.SyncWithLatestSolutionVersion"
            m.add(f"Campaign as configured? ({s})", {"Type": "Choice", "Choices": [
                {"And": [{"Variable": sync, "IsPresent": True}, {"Variable": sync, "BooleanEquals": True}],
                 "Next": next_state}], "Default": f"Update campaign ({s})"})
    m.task(f"Train ({s})", m.sdk("personalize", "createSolutionVersion"),
           {"SolutionArn": solution_arn, "TrainingMode": "FULL"}, f"Trained ({s})", result_path=f"$.{slot}.version")
    m.poll(f"Trained ({s})", "describeSolutionVersion",
           {"SolutionVersionArn.$": f"$.{slot}.version.SolutionVersionArn"},
           "$.SolutionVersion.Status", f"New metrics ({s})" if _gated(config, plan) else f"First campaign ({s})", poll)
    if _gated(config, plan):
        _gate(m, config, plan, next_state)
    _campaign(m, config, plan, next_state)


def _gate(m: Machine, config: TrainingConfig, plan: SurfacePlan, next_state: str) -> None:
    """The new version against the one the campaign serves, on this surface's metric."""
    s, slot = plan.surface, plan.slot
    version = f"$.{slot}.version.SolutionVersionArn"
    m.task(f"New metrics ({s})", m.sdk("personalize", "getSolutionMetrics"), {"SolutionVersionArn.$": version},
           f"Current campaign ({s})", result_path=f"$.{slot}.newMetrics")
    m.task(f"Current campaign ({s})", m.sdk("personalize", "describeCampaign"),
           {"CampaignArn": config.campaign_arn_of(s)}, f"Current metrics ({s})", result_path=f"$.{slot}.campaign",
           catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": f"First campaign ({s})"}])
    m.task(f"Current metrics ({s})", m.sdk("personalize", "getSolutionMetrics"),
           {"SolutionVersionArn.$": f"$.{slot}.campaign.Campaign.SolutionVersionArn"}, f"Compare ({s})",
           result_path=f"$.{slot}.currentMetrics")
    m.task(f"Compare ({s})", _lambda(config), _steps_call(config, {
        "step": "compare", "metric": plan.metric, "tolerance": config.tolerance,
        "new.$": f"$.{slot}.newMetrics", "current.$": f"$.{slot}.currentMetrics"}), f"Promote? ({s})",
        result_path=f"$.{slot}.gate", result_selector={"value.$": "$.Payload"})
    m.add(f"Promote? ({s})", {"Type": "Choice", "Choices": [
        {"Variable": f"$.{slot}.gate.value.promote", "BooleanEquals": True, "Next": f"Update campaign ({s})"}],
        "Default": f"Notify not promoted ({s})"})
    m.notify(f"Notify not promoted ({s})", config, f"Personalize training: new {s} model not promoted", {
        "Message.$": f"States.Format('The new {s} solution version {{}} was not promoted: {{}}. The campaign keeps "
                     f"serving the current version.', {version}, $.{slot}.gate.value.reason)"}, next_state)


def _campaign(m: Machine, config: TrainingConfig, plan: SurfacePlan, next_state: str) -> None:
    """The campaign created or updated to the promoted version (automatic mode: to the solution's latest), waited
    for, and announced."""
    s, slot = plan.surface, plan.slot
    campaign_arn = config.campaign_arn_of(s)
    automatic = config.mode == AUTOMATIC
    version: dict[str, Any] = ({"SolutionVersionArn": f"{config.solution_arn_of(s)}/$LATEST"} if automatic
                               else {"SolutionVersionArn.$": f"$.{slot}.version.SolutionVersionArn"})
    m.task(f"First campaign ({s})", m.sdk("personalize", "createCampaign"), {
        "Name": config.name_of(s, "campaign"), **version, "MinProvisionedTPS": config.min_provisioned_tps,
        "CampaignConfig": _campaign_config(config, plan)}, f"Campaign ready ({s})", result_path=None,
        catches=[{"ErrorEquals": [ALREADY_EXISTS], "ResultPath": None, "Next": f"Update campaign ({s})"}])
    m.task(f"Update campaign ({s})", m.sdk("personalize", "updateCampaign"), {
        "CampaignArn": campaign_arn, **version, "MinProvisionedTPS": config.min_provisioned_tps,
        "CampaignConfig": _campaign_config(config, plan)}, f"Campaign ready ({s})", result_path=None)
    m.task(f"Campaign ready ({s})", m.sdk("personalize", "describeCampaign"), {"CampaignArn": campaign_arn},
           f"Campaign active? ({s})", result_path=f"$.{slot}.status",
           result_selector={"value.$": "$.Campaign.Status", "serving.$": "$.Campaign.SolutionVersionArn"})
    active = {"Variable": f"$.{slot}.status.value", "StringEquals": "ACTIVE"}
    # Gated: ready when it serves the promoted version. Automatic: Personalize picks the version; ACTIVE is enough.
    ready = active if automatic else {"And": [active, {"Variable": f"$.{slot}.status.serving",
                                                       "StringEqualsPath": f"$.{slot}.version.SolutionVersionArn"}]}
    after = f"Publish metrics ({s})" if s == Surface.FOR_YOU and _gated(config, plan) else f"Notify serving ({s})"
    m.add(f"Campaign active? ({s})", {"Type": "Choice", "Choices": [
        {**ready, "Next": after},
        {"Variable": f"$.{slot}.status.value", "StringEquals": "CREATE FAILED",
         "Next": f"Campaign ended failed ({s})"}],
        "Default": f"Campaign (waiting) ({s})"})
    m.add(f"Campaign (waiting) ({s})", {"Type": "Wait", "Seconds": config.poll_seconds,
                                        "Next": f"Campaign ready ({s})"})
    m.add(f"Campaign ended failed ({s})", {"Type": "Pass", "Parameters": {
        "state": f"Campaign ready ({s})", "error": "ResourceFailed", "cause": "status CREATE FAILED"},
        "ResultPath": "$.failure", "Next": "Notify failure"})
    if after.startswith("Publish metrics"):
        m.publish(after, config, Parameter.METRICS, {"Value.$": f"States.JsonToString($.{slot}.newMetrics.Metrics)"},
                  f"Notify serving ({s})")
    m.notify(f"Notify serving ({s})", config, f"Personalize training: new {s} model serving", {
        "Message.$": f"States.Format('Solution version {{}} now serves {s} ({campaign_arn}).', "
                     f"$.{slot}.status.serving)"}, next_state)


def _delete(m: Machine, name: str, action: str, parameters: Mapping[str, Any], describe: str,
            describe_parameters: Mapping[str, Any], next_state: str, poll_seconds: int) -> str:
    """Delete (already gone is fine; "in use" is retried), then look until the resource is gone."""
    gone = [{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": next_state}]
    m.task(name, m.sdk("personalize", action), parameters, f"{name}: gone?", result_path=None,
           catches=gone)
    m.task(f"{name}: gone?", m.sdk("personalize", describe), describe_parameters, f"{name} (waiting)",
           result_path=None, catches=gone)
    m.add(f"{name} (waiting)", {"Type": "Wait", "Seconds": poll_seconds, "Next": f"{name}: gone?"})
    return name


def teardown_definition(config: TrainingConfig) -> dict[str, Any]:
    """Deletes what training created, in dependency order; safe to run again, and on resources already deleting."""
    m = Machine(config.retry, config.partition)
    poll = config.poll_seconds
    plans = config.plans
    campaigns = [f"Delete campaign ({plan.surface})" for plan in plans] + ["Delete filters"]
    m.task("Unpublish", m.sdk("ssm", "deleteParameters"), {"Names": sorted(config.parameters.values())},
           campaigns[0], result_path=None)
    for plan, name, next_state in zip(plans, campaigns, campaigns[1:], strict=False):
        arn = config.campaign_arn_of(plan.surface)
        _delete(m, name, "deleteCampaign", {"CampaignArn": arn}, "describeCampaign", {"CampaignArn": arn},
                next_state, poll)
    m.add("Delete filters", {
        "Type": "Map", "ItemsPath": "$.filters", "MaxConcurrency": 1,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Delete filter", "States": {
            "Delete filter": {
                "Type": "Task", "Resource": m.sdk("personalize", "deleteFilter"), "Parameters": {"FilterArn.$": "$"},
                "Retry": config.retry,
                "Catch": [{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": "Filter gone"}],
                "End": True},
            "Filter gone": {"Type": "Succeed"}}},
        "ResultPath": None,
        "Catch": m.catch_all("Delete filters"),
        "Next": "Find event tracker"})
    kinds = list(SEGMENT_RECIPES) if config.segments else []
    solutions = ([f"Delete solution ({plan.surface})" for plan in plans]
                 + [f"Delete segments solution ({kind})" for kind in kinds] + ["Delete items dataset"])
    m.task("Find event tracker", m.sdk("personalize", "listEventTrackers"),
           {"DatasetGroupArn": config.dataset_group_arn}, "Any event tracker?", result_path="$.trackers",
           result_selector={"count.$": "States.ArrayLength($.EventTrackers)", "all.$": "$.EventTrackers"},
           catches=[{"ErrorEquals": [NOT_FOUND, "Personalize.InvalidInputException"], "ResultPath": None,
                     "Next": solutions[0]}])
    m.add("Any event tracker?", {"Type": "Choice", "Choices": [
        {"Variable": "$.trackers.count", "NumericGreaterThan": 0, "Next": "Pick event tracker"}],
        "Default": solutions[0]})
    m.add("Pick event tracker", {"Type": "Pass", "Parameters": {"arn.$": "States.ArrayGetItem($.trackers.all, 0)"},
                                 "ResultPath": "$.tracker", "Next": "Delete event tracker"})
    _delete(m, "Delete event tracker", "deleteEventTracker", {"EventTrackerArn.$": "$.tracker.arn.EventTrackerArn"},
            "describeEventTracker", {"EventTrackerArn.$": "$.tracker.arn.EventTrackerArn"}, solutions[0], poll)
    arns = [config.solution_arn_of(plan.surface) for plan in plans] + [config.segment_solution_arn(k) for k in kinds]
    for arn, name, next_state in zip(arns, solutions, solutions[1:], strict=False):
        _delete(m, name, "deleteSolution", {"SolutionArn": arn}, "describeSolution", {"SolutionArn": arn},
                next_state, poll)
    _delete(m, "Delete items dataset", "deleteDataset", {"DatasetArn": config.dataset_arn("items")},
            "describeDataset", {"DatasetArn": config.dataset_arn("items")}, "Delete interactions dataset", poll)
    _delete(m, "Delete interactions dataset", "deleteDataset", {"DatasetArn": config.dataset_arn("interactions")},
            "describeDataset", {"DatasetArn": config.dataset_arn("interactions")}, "Delete items schema", poll)
    m.task("Delete items schema", m.sdk("personalize", "deleteSchema"),
           {"SchemaArn": config.schema_arn(ITEMS_SCHEMA_VERSION)}, "Delete first items schema", result_path=None,
           catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": "Delete first items schema"}])
    # The items schema of stacks trained before TITLE and URL existed.
    m.task("Delete first items schema", m.sdk("personalize", "deleteSchema"), {"SchemaArn": config.schema_arn("items")},
           "Delete interactions schema", result_path=None,
           catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": "Delete interactions schema"}])
    m.task("Delete interactions schema", m.sdk("personalize", "deleteSchema"),
           {"SchemaArn": config.schema_arn("interactions")}, "Delete dataset group", result_path=None,
           catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": "Delete dataset group"}])
    _delete(m, "Delete dataset group", "deleteDatasetGroup", {"DatasetGroupArn": config.dataset_group_arn},
            "describeDatasetGroup", {"DatasetGroupArn": config.dataset_group_arn}, "Notify deleted", poll)
    m.notify("Notify deleted", config, "Personalize resources deleted", {
        "Message": f"Every Personalize resource of {config.prefix} is deleted; `pulumi destroy` may run now."},
        "Deleted")
    m.add("Deleted", {"Type": "Succeed"})
    m.notify_failure_and_fail(config, "Teardown", "TeardownFailed", "See the notification.")
    m.add("Start", {"Type": "Pass", "Result": [config.filter_arn(n) for n in sorted(config.filters)],
                    "ResultPath": "$.filters", "Next": "Unpublish"})
    return {"Comment": f"Delete the Amazon Personalize resources of {config.prefix}", "StartAt": "Start",
            "States": m.states}


def surface_plans(surfaces: Sequence[str], *, partition: str, for_you_recipe: str, for_you_metric: str,
                  metrics: Mapping[str, str], metadata: Sequence[str]) -> tuple[SurfacePlan, ...]:
    """The plan of each configured surface: its recipe, its gate's metric (configured, else the recipe's default),
    and whether its campaign returns metadata."""
    recipes = {Surface.FOR_YOU: for_you_recipe, **SURFACE_RECIPES}
    defaults = {**DEFAULT_SURFACE_METRICS, Surface.FOR_YOU: for_you_metric}
    return tuple(SurfacePlan(surface, f"arn:{partition}:personalize:::recipe/{recipes[surface]}",
                             metrics.get(surface, defaults[surface]), metadata=surface in metadata)
                 for surface in surfaces)
