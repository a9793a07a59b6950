"""Executing the training state machine under moto — the small adapters it needs, in one place.

moto 5.2.5 runs state machines in-process (``execute_state_machine``); its tasks call AWS through boto3 clients of the
default session. moto has no Personalize and runs Lambda only in Docker, so botocore ``before-call`` hooks on that
session answer:
- ``personalize`` with ``FakePersonalize``: resources by name-derived ARN, "already exists" on duplicates, statuses,
  scripted failures, throttling and metrics, and a count of every create;
- ``lambda:Invoke`` by running the real handler module in-process (against moto's S3);
- ``sns:Publish`` by recording the notification.
SSM and S3 are moto's own. moto 5.2.5 names a Personalize error "personalize.X" where Step Functions says
"Personalize.X" (the adapter adds the binding), and passes ``aws-sdk`` task parameters through as written, while
Step Functions takes them in Pascal case and answers in Pascal case; the adapter does both conversions.
"""

from __future__ import annotations

import importlib
import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody

from tests.conftest import FakeLambdaContext

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def _arn(resource: str) -> str:
    return f"arn:aws:personalize:{REGION}:{ACCOUNT}:{resource}"


class PersonalizeError(Exception):
    def __init__(self, code: str, message: str = "", status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message or code, status


@dataclass
class FakePersonalize:
    """Just enough of Amazon Personalize's control plane, with its naming and status semantics."""

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: Counter[str] = field(default_factory=Counter)
    calls: list[str] = field(default_factory=list)
    fail: dict[str, str] = field(default_factory=dict)  # kind → status to end in ("CREATE FAILED")
    throttle: Counter[str] = field(default_factory=Counter)  # action → how many calls to throttle first
    metrics: list[dict[str, float]] = field(default_factory=list)  # metrics of successive solution versions
    # the same per solution name (e.g. "cp-dev-euw1-related-solution"); a solution not named here uses ``metrics``
    surface_metrics: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    crash_on: str | None = None  # action that fails once with a non-retryable error

    def handle(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(action)
        if self.throttle[action] > 0:
            self.throttle[action] -= 1
            raise PersonalizeError("ThrottlingException", "Rate exceeded")
        if self.crash_on == action:
            self.crash_on = None
            raise PersonalizeError("InvalidInputException", f"{action} refused")
        method = getattr(self, action[0].lower() + action[1:], None)
        if method is None:
            raise PersonalizeError("InvalidInputException", f"the fake does not implement {action}")
        result: dict[str, Any] = method(**params)
        return result

    # creation with unique names ------------------------------------------------------------------------------------
    def _create(self, kind: str, arn: str, status: str = "ACTIVE", **attributes: Any) -> dict[str, Any]:
        if arn in self.resources:
            raise PersonalizeError("ResourceAlreadyExistsException", f"{arn} already exists")
        self.created[kind] += 1
        self.resources[arn] = {"kind": kind, "status": self.fail.get(kind, status), **attributes}
        return self.resources[arn]

    def _get(self, arn: str) -> dict[str, Any]:
        if arn not in self.resources:
            raise PersonalizeError("ResourceNotFoundException", f"{arn} does not exist", 404)
        return self.resources[arn]

    def createDatasetGroup(self, name: str, roleArn: str, kmsKeyArn: str) -> dict[str, Any]:  # noqa: N802, N803
        self._create("dataset-group", _arn(f"dataset-group/{name}"), kmsKeyArn=kmsKeyArn)
        return {"datasetGroupArn": _arn(f"dataset-group/{name}")}

    def describeDatasetGroup(self, datasetGroupArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"datasetGroup": {"datasetGroupArn": datasetGroupArn, "status": self._get(datasetGroupArn)["status"]}}

    def createSchema(self, name: str, schema: str) -> dict[str, Any]:  # noqa: N802
        json.loads(schema)
        self._create("schema", _arn(f"schema/{name}"))
        return {"schemaArn": _arn(f"schema/{name}")}

    def createDataset(self, name: str, datasetGroupArn: str, datasetType: str,  # noqa: N802, N803
                      schemaArn: str) -> dict[str, Any]:  # noqa: N803
        self._get(datasetGroupArn)
        self._get(schemaArn)
        group = datasetGroupArn.split("/", 1)[1]
        arn = _arn(f"dataset/{group}/{datasetType.upper()}")
        self._create("dataset", arn, schema=schemaArn)
        return {"datasetArn": arn}

    def describeDataset(self, datasetArn: str) -> dict[str, Any]:  # noqa: N802, N803
        dataset = self._get(datasetArn)
        return {"dataset": {"datasetArn": datasetArn, "status": dataset["status"], "schemaArn": dataset["schema"]}}

    def updateDataset(self, datasetArn: str, schemaArn: str) -> dict[str, Any]:  # noqa: N802, N803
        self._get(schemaArn)
        self._get(datasetArn)["schema"] = schemaArn
        self.created["dataset-update"] += 1
        return {"datasetArn": datasetArn}

    def createDatasetImportJob(self, jobName: str, datasetArn: str, dataSource: dict[str, str],  # noqa: N802, N803
                               roleArn: str, importMode: str) -> dict[str, Any]:  # noqa: N803
        self._get(datasetArn)
        arn = _arn(f"dataset-import-job/{jobName}")
        self._create("import", arn, location=dataSource["dataLocation"])
        return {"datasetImportJobArn": arn}

    def describeDatasetImportJob(self, datasetImportJobArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"datasetImportJob": {"datasetImportJobArn": datasetImportJobArn,
                                     "status": self._get(datasetImportJobArn)["status"]}}

    def createEventTracker(self, name: str, datasetGroupArn: str) -> dict[str, Any]:  # noqa: N802, N803
        if any(r["kind"] == "event-tracker" and r["group"] == datasetGroupArn for r in self.resources.values()):
            raise PersonalizeError("ResourceAlreadyExistsException", "one event tracker per dataset group")
        arn = _arn(f"event-tracker/{name}")
        self._create("event-tracker", arn, group=datasetGroupArn, trackingId=f"tracking-{name}")
        return {"eventTrackerArn": arn, "trackingId": f"tracking-{name}"}

    def listEventTrackers(self, datasetGroupArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"eventTrackers": [{"eventTrackerArn": arn, "name": arn.rsplit("/", 1)[1], "status": r["status"]}
                                  for arn, r in self.resources.items()
                                  if r["kind"] == "event-tracker" and r["group"] == datasetGroupArn]}

    def describeEventTracker(self, eventTrackerArn: str) -> dict[str, Any]:  # noqa: N802, N803
        tracker = self._get(eventTrackerArn)
        return {"eventTracker": {"eventTrackerArn": eventTrackerArn, "trackingId": tracker["trackingId"],
                                 "status": tracker["status"]}}

    def createFilter(self, name: str, datasetGroupArn: str, filterExpression: str) -> dict[str, Any]:  # noqa: N802, N803
        self._create("filter", _arn(f"filter/{name}"), expression=filterExpression)
        return {"filterArn": _arn(f"filter/{name}")}

    def createSolution(self, name: str, datasetGroupArn: str, recipeArn: str,  # noqa: N802, N803
                       performAutoTraining: bool = True, solutionConfig: dict[str, Any] | None = None,  # noqa: N803
                       ) -> dict[str, Any]:
        # Personalize's default is automatic training on: a solution created without the flag trains by itself.
        self._create("solution", _arn(f"solution/{name}"), recipe=recipeArn, auto=performAutoTraining,
                     config=solutionConfig or {})
        return {"solutionArn": _arn(f"solution/{name}")}

    def describeSolution(self, solutionArn: str) -> dict[str, Any]:  # noqa: N802, N803
        solution = self._get(solutionArn)
        described = {"solutionArn": solutionArn, "status": solution["status"], "recipeArn": solution["recipe"],
                     "performAutoTraining": solution["auto"]}
        if "latest" in solution:
            described["latestSolutionVersion"] = {"solutionVersionArn": solution["latest"],
                                                  "status": self._get(solution["latest"])["status"]}
        return {"solution": described}

    def createBatchSegmentJob(self, jobName: str, solutionVersionArn: str, roleArn: str,  # noqa: N802, N803
                              jobInput: dict[str, Any], jobOutput: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self._get(solutionVersionArn)
        arn = _arn(f"batch-segment-job/{jobName}")
        self._create("segment-job", arn, version=solutionVersionArn, input=jobInput["s3DataSource"]["path"],
                     output=jobOutput["s3DataDestination"])
        return {"batchSegmentJobArn": arn}

    def describeBatchSegmentJob(self, batchSegmentJobArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"batchSegmentJob": {"batchSegmentJobArn": batchSegmentJobArn,
                                    "status": self._get(batchSegmentJobArn)["status"]}}

    def updateSolution(self, solutionArn: str, performAutoTraining: bool,  # noqa: N802, N803
                       solutionUpdateConfig: dict[str, Any] | None = None) -> dict[str, Any]:  # noqa: N803
        solution = self._get(solutionArn)
        solution.update(auto=performAutoTraining, config=solutionUpdateConfig or {})
        self.created["solution-update"] += 1
        return {"solutionArn": solutionArn}

    def createSolutionVersion(self, solutionArn: str, trainingMode: str) -> dict[str, Any]:  # noqa: N802, N803
        self._get(solutionArn)
        arn = f"{solutionArn}/v{self.created['solution-version'] + 1}"
        queue = self.surface_metrics.get(solutionArn.rsplit("/", 1)[1], self.metrics)
        metrics = queue.pop(0) if queue else {"normalized_discounted_cumulative_gain_at_25": 0.3,
                                              "normalized_discounted_cumulative_gain_at_10": 0.3}
        self._create("solution-version", arn, metrics=metrics, solution=solutionArn)
        self.resources[solutionArn]["latest"] = arn
        return {"solutionVersionArn": arn}

    def describeSolutionVersion(self, solutionVersionArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"solutionVersion": {"solutionVersionArn": solutionVersionArn,
                                    "status": self._get(solutionVersionArn)["status"]}}

    def getSolutionMetrics(self, solutionVersionArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return {"solutionVersionArn": solutionVersionArn, "metrics": self._get(solutionVersionArn)["metrics"]}

    def _serving(self, campaign: dict[str, Any]) -> str:
        """The version a campaign serves: the one it names, or its solution's latest (``<solution>/$LATEST``)."""
        version: str = campaign["version"]
        if version.endswith("/$LATEST"):
            latest: str = self._get(version.removesuffix("/$LATEST"))["latest"]
            return latest
        return version

    def describeCampaign(self, campaignArn: str) -> dict[str, Any]:  # noqa: N802, N803
        campaign = self._get(campaignArn)
        return {"campaign": {"campaignArn": campaignArn, "status": campaign["status"],
                             "solutionVersionArn": self._serving(campaign), "campaignConfig": campaign["config"]}}

    def _check_campaign(self, solutionVersionArn: str, campaignConfig: dict[str, Any]) -> None:  # noqa: N803
        latest = solutionVersionArn.endswith("/$LATEST")
        if latest != bool(campaignConfig.get("syncWithLatestSolutionVersion")):
            raise PersonalizeError("InvalidInputException", "$LATEST goes with syncWithLatestSolutionVersion")
        self._get(solutionVersionArn.removesuffix("/$LATEST"))

    def createCampaign(self, name: str, solutionVersionArn: str, minProvisionedTPS: int,  # noqa: N802, N803
                       campaignConfig: dict[str, Any] | None = None) -> dict[str, Any]:  # noqa: N803
        self._check_campaign(solutionVersionArn, campaignConfig or {})
        self._create("campaign", _arn(f"campaign/{name}"), version=solutionVersionArn, tps=minProvisionedTPS,
                     config=campaignConfig or {})
        return {"campaignArn": _arn(f"campaign/{name}")}

    def _delete(self, arn: str) -> dict[str, Any]:
        self._get(arn)
        del self.resources[arn]
        return {}

    def deleteCampaign(self, campaignArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(campaignArn)

    def deleteFilter(self, filterArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(filterArn)

    def deleteEventTracker(self, eventTrackerArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(eventTrackerArn)

    def deleteSolution(self, solutionArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(solutionArn)

    def deleteDataset(self, datasetArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(datasetArn)

    def deleteSchema(self, schemaArn: str) -> dict[str, Any]:  # noqa: N802, N803
        return self._delete(schemaArn)

    def deleteDatasetGroup(self, datasetGroupArn: str) -> dict[str, Any]:  # noqa: N802, N803
        if any(r.get("group") == datasetGroupArn or a.startswith(datasetGroupArn.replace("dataset-group", "dataset"))
               for a, r in self.resources.items() if a != datasetGroupArn):
            raise PersonalizeError("ResourceInUseException", "the dataset group still has resources")
        return self._delete(datasetGroupArn)

    def updateCampaign(self, campaignArn: str, solutionVersionArn: str,  # noqa: N802, N803
                       minProvisionedTPS: int, campaignConfig: dict[str, Any] | None = None,  # noqa: N803
                       ) -> dict[str, Any]:
        campaign = self._get(campaignArn)
        self._check_campaign(solutionVersionArn, campaignConfig or {})
        self.created["campaign-update"] += 1
        campaign.update(version=solutionVersionArn, tps=minProvisionedTPS, config=campaignConfig or {})
        return {"campaignArn": campaignArn}


@dataclass
class Harness:
    personalize: FakePersonalize
    notifications: list[dict[str, str]]
    invocations: Counter[str]

    def run(self, definition: dict[str, Any], name: str = "run-1", timeout: float = 60,
            execution_input: str = "{}") -> dict[str, Any]:
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(name=f"m-{name}", definition=json.dumps(definition),
                                           roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn")["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name=name, input=execution_input)["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return {**described, "history": sfn.get_execution_history(executionArn=execution)["events"]}
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {name} still running")
            time.sleep(0.05)

    def entered_states(self, result: dict[str, Any]) -> list[str]:
        return [e["stateEnteredEventDetails"]["name"] for e in result["history"] if "stateEnteredEventDetails" in e]


def _to_api_casing(params: dict[str, Any], shape: Any) -> None:
    """Step Functions' Pascal-case parameter names → the API's member names, in place (nested structures too)."""
    members = getattr(shape, "members", {})
    for key in list(params):
        member = next((m for m in members if m[0].upper() + m[1:] == key), None)
        if member is not None and member != key:
            params[member] = params.pop(key)
        if member is not None and isinstance(params[member], dict):
            _to_api_casing(params[member], members[member])


def _pascal(value: Any, shape: Any) -> Any:
    """The API's response → Step Functions' casing: structure members in Pascal case, map keys unchanged."""
    if shape is None:
        return value
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k[0].upper() + k[1:]: _pascal(v, shape.members.get(k)) for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_pascal(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _pascal(v, shape.value) for k, v in value.items()}
    return value


def _response(status: int, parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status
    parsed["ResponseMetadata"].setdefault("RequestId", "fake-request")
    return AWSResponse("https://fake", status, {}, None), parsed


@contextmanager
def harness(personalize: FakePersonalize | None = None) -> Iterator[Harness]:
    """Register the adapters on boto3's default session (moto must be active) and remove them afterwards."""
    fake = personalize or FakePersonalize()
    state = Harness(fake, [], Counter())
    steps = importlib.reload(importlib.import_module("training_steps"))

    def keep_params(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        _to_api_casing(params, model.input_shape)
        context["api_params"] = dict(params)  # before-call only sees the serialized request

    def personalize_call(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        try:
            return _response(200, _pascal(fake.handle(model.name, context["api_params"]), model.output_shape))
        except PersonalizeError as error:
            return _response(error.status, {"Error": {"Code": error.code, "Message": error.message}})

    def lambda_invoke(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        payload = json.loads(context["api_params"].get("Payload") or b"{}")
        state.invocations[payload.get("step")] += 1
        body = json.dumps(steps.handler(payload, FakeLambdaContext(900_000))).encode()
        return _response(200, {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))})

    def sns_publish(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context["api_params"]
        state.notifications.append({"subject": params.get("Subject", ""), "message": params["Message"]})
        return _response(200, {"MessageId": f"m-{len(state.notifications)}"})

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    aws_sdk._SERVICE_ERROR_NAMES.setdefault("personalize", "Personalize")
    events = boto3._get_default_session().events
    hooks = [("before-parameter-build.personalize", keep_params),
             ("before-parameter-build.lambda.Invoke", keep_params), ("before-parameter-build.sns.Publish", keep_params),
             ("before-call.personalize", personalize_call), ("before-call.lambda.Invoke", lambda_invoke),
             ("before-call.sns.Publish", sns_publish)]
    for event, hook in hooks:
        events.register(event, hook)
    try:
        yield state
    finally:
        for event, hook in hooks:
            events.unregister(event, hook)
