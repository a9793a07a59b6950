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

from common.contract import Key, Parameter

INTERACTIONS_SCHEMA = {
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
ITEMS_SCHEMA = {
    "type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema", "version": "1.0",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "CREATION_TIMESTAMP", "type": "long"},
        {"name": "CATEGORY", "type": ["null", "string"], "categorical": True},
        {"name": "TAGS", "type": ["null", "string"], "categorical": True},
    ],
}
# Errors worth retrying: throttling and contention surface as these in Step Functions' SDK integrations.
RETRYABLE = ["Personalize.PersonalizeException", "Personalize.ResourceInUseException",
             "Personalize.LimitExceededException", "Lambda.TooManyRequestsException", "Lambda.ServiceException",
             "Lambda.SdkClientException", "Lambda.AWSLambdaException", "States.Timeout"]
ALREADY_EXISTS = "Personalize.ResourceAlreadyExistsException"
NOT_FOUND = "Personalize.ResourceNotFoundException"


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
    parameters: Mapping[str, str]  # tracking-id, campaign-arn, filter-arns, items-dataset-arn, metrics → SSM names
    poll_seconds: int = 60
    map_concurrency: int = 10
    retry_seconds: int = 5

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

    @property
    def solution_arn(self) -> str:
        return self.arn(f"solution/{self.prefix}-solution")

    @property
    def campaign_arn(self) -> str:
        return self.arn(f"campaign/{self.prefix}-campaign")

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
    for step in (_prepare, _datasets, _imports, _tracker, _filters, _train_and_gate, _campaign):
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
    m.ensure("Items schema", "createSchema", {"Name": f"{config.prefix}-items", "Schema": json.dumps(ITEMS_SCHEMA)},
             "Interactions dataset")
    m.ensure("Interactions dataset", "createDataset", {
        "Name": f"{config.prefix}-interactions", "DatasetGroupArn": config.dataset_group_arn,
        "DatasetType": "Interactions", "SchemaArn": config.schema_arn("interactions")}, "Interactions dataset ready")
    m.poll("Interactions dataset ready", "describeDataset", {"DatasetArn": config.dataset_arn("interactions")},
           "$.Dataset.Status", "Items dataset", config.poll_seconds)
    m.ensure("Items dataset", "createDataset", {
        "Name": f"{config.prefix}-items", "DatasetGroupArn": config.dataset_group_arn, "DatasetType": "Items",
        "SchemaArn": config.schema_arn("items")}, "Items dataset ready")
    m.poll("Items dataset ready", "describeDataset", {"DatasetArn": config.dataset_arn("items")},
           "$.Dataset.Status", "Publish items dataset", config.poll_seconds)
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
              {"Value": json.dumps({name: config.filter_arn(name) for name in sorted(config.filters)})}, "Solution")


def _train_and_gate(m: Machine, config: TrainingConfig) -> None:
    """A new solution version, compared on the configured metric with the one the campaign serves."""
    m.ensure("Solution", "createSolution", {"Name": f"{config.prefix}-solution",
                                            "DatasetGroupArn": config.dataset_group_arn,
                                            "RecipeArn": config.recipe_arn}, "Solution ready")
    m.poll("Solution ready", "describeSolution", {"SolutionArn": config.solution_arn}, "$.Solution.Status",
           "Train", config.poll_seconds)
    m.task("Train", m.sdk("personalize", "createSolutionVersion"), {"SolutionArn": config.solution_arn,
                                                                  "TrainingMode": "FULL"},
           "Trained", result_path="$.version")
    m.poll("Trained", "describeSolutionVersion", {"SolutionVersionArn.$": "$.version.SolutionVersionArn"},
           "$.SolutionVersion.Status", "New metrics", config.poll_seconds)
    m.task("New metrics", m.sdk("personalize", "getSolutionMetrics"),
           {"SolutionVersionArn.$": "$.version.SolutionVersionArn"}, "Current campaign", result_path="$.newMetrics")
    m.task("Current campaign", m.sdk("personalize", "describeCampaign"), {"CampaignArn": config.campaign_arn},
           "Current metrics", result_path="$.campaign",
           catches=[{"ErrorEquals": [NOT_FOUND], "ResultPath": None, "Next": "First campaign"}])
    m.task("Current metrics", m.sdk("personalize", "getSolutionMetrics"),
           {"SolutionVersionArn.$": "$.campaign.Campaign.SolutionVersionArn"}, "Compare",
           result_path="$.currentMetrics")
    m.task("Compare", _lambda(config), _steps_call(config, {
        "step": "compare", "metric": config.metric, "tolerance": config.tolerance,
        "new.$": "$.newMetrics", "current.$": "$.currentMetrics"}), "Promote?", result_path="$.gate",
        result_selector={"value.$": "$.Payload"})
    m.add("Promote?", {"Type": "Choice", "Choices": [
        {"Variable": "$.gate.value.promote", "BooleanEquals": True, "Next": "Update campaign"}],
        "Default": "Notify not promoted"})
    m.notify("Notify not promoted", config, "Personalize training: new model not promoted", {
        "Message.$": "States.Format('The new solution version {} was not promoted: {}. The campaign keeps serving the "
                     "current version.', $.version.SolutionVersionArn, $.gate.value.reason)"}, "Not promoted")
    m.add("Not promoted", {"Type": "Succeed"})


def _campaign(m: Machine, config: TrainingConfig) -> None:
    """The campaign created or updated to the promoted version, waited for, and published."""
    m.task("First campaign", m.sdk("personalize", "createCampaign"), {
        "Name": f"{config.prefix}-campaign", "SolutionVersionArn.$": "$.version.SolutionVersionArn",
        "MinProvisionedTPS": config.min_provisioned_tps}, "Campaign ready", result_path=None,
        catches=[{"ErrorEquals": [ALREADY_EXISTS], "ResultPath": None, "Next": "Update campaign"}])
    m.task("Update campaign", m.sdk("personalize", "updateCampaign"), {
        "CampaignArn": config.campaign_arn, "SolutionVersionArn.$": "$.version.SolutionVersionArn",
        "MinProvisionedTPS": config.min_provisioned_tps}, "Campaign ready", result_path=None)
    m.task("Campaign ready", m.sdk("personalize", "describeCampaign"), {"CampaignArn": config.campaign_arn},
           "Campaign active?", result_path="$.status",
           result_selector={"value.$": "$.Campaign.Status",
                            "serving.$": "$.Campaign.SolutionVersionArn"})
    m.add("Campaign active?", {"Type": "Choice", "Choices": [
        {"And": [{"Variable": "$.status.value", "StringEquals": "ACTIVE"},
                 {"Variable": "$.status.serving", "StringEqualsPath": "$.version.SolutionVersionArn"}],
         "Next": "Publish campaign"},
        {"Variable": "$.status.value", "StringEquals": "CREATE FAILED", "Next": "Campaign ended failed"}],
        "Default": "Campaign (waiting)"})
    m.add("Campaign (waiting)", {"Type": "Wait", "Seconds": config.poll_seconds, "Next": "Campaign ready"})
    m.add("Campaign ended failed", {"Type": "Pass", "Parameters": {"state": "Campaign ready", "error": "ResourceFailed",
                                                                   "cause": "status CREATE FAILED"},
                                    "ResultPath": "$.failure", "Next": "Notify failure"})
    m.publish("Publish campaign", config, Parameter.CAMPAIGN_ARN, {"Value": config.campaign_arn}, "Publish metrics")
    m.publish("Publish metrics", config, Parameter.METRICS, {"Value.$": "States.JsonToString($.newMetrics.Metrics)"},
              "Notify success")
    m.notify("Notify success", config, "Personalize training: new model serving", {
        "Message.$": "States.Format('Solution version {} now serves {}.', $.version.SolutionVersionArn, "
                     f"'{config.campaign_arn}')"}, "Trained and promoted")
    m.add("Trained and promoted", {"Type": "Succeed"})


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
    m.task("Unpublish", m.sdk("ssm", "deleteParameters"), {"Names": sorted(config.parameters.values())},
           "Delete campaign", result_path=None)
    _delete(m, "Delete campaign", "deleteCampaign", {"CampaignArn": config.campaign_arn}, "describeCampaign",
            {"CampaignArn": config.campaign_arn}, "Delete filters", poll)
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
    m.task("Find event tracker", m.sdk("personalize", "listEventTrackers"),
           {"DatasetGroupArn": config.dataset_group_arn}, "Any event tracker?", result_path="$.trackers",
           result_selector={"count.$": "States.ArrayLength($.EventTrackers)", "all.$": "$.EventTrackers"},
           catches=[{"ErrorEquals": [NOT_FOUND, "Personalize.InvalidInputException"], "ResultPath": None,
                     "Next": "Delete solution"}])
    m.add("Any event tracker?", {"Type": "Choice", "Choices": [
        {"Variable": "$.trackers.count", "NumericGreaterThan": 0, "Next": "Pick event tracker"}],
        "Default": "Delete solution"})
    m.add("Pick event tracker", {"Type": "Pass", "Parameters": {"arn.$": "States.ArrayGetItem($.trackers.all, 0)"},
                                 "ResultPath": "$.tracker", "Next": "Delete event tracker"})
    _delete(m, "Delete event tracker", "deleteEventTracker", {"EventTrackerArn.$": "$.tracker.arn.EventTrackerArn"},
            "describeEventTracker", {"EventTrackerArn.$": "$.tracker.arn.EventTrackerArn"}, "Delete solution", poll)
    _delete(m, "Delete solution", "deleteSolution", {"SolutionArn": config.solution_arn}, "describeSolution",
            {"SolutionArn": config.solution_arn}, "Delete items dataset", poll)
    _delete(m, "Delete items dataset", "deleteDataset", {"DatasetArn": config.dataset_arn("items")},
            "describeDataset", {"DatasetArn": config.dataset_arn("items")}, "Delete interactions dataset", poll)
    _delete(m, "Delete interactions dataset", "deleteDataset", {"DatasetArn": config.dataset_arn("interactions")},
            "describeDataset", {"DatasetArn": config.dataset_arn("interactions")}, "Delete items schema", poll)
    m.task("Delete items schema", m.sdk("personalize", "deleteSchema"), {"SchemaArn": config.schema_arn("items")},
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
