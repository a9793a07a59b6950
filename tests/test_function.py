"""The Lambda building block: what it creates, how it is wired, and every argument it refuses."""

from __future__ import annotations

import json
import shutil
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.function import FunctionArgs, FunctionConfigError, LambdaFunction, code_archive
from components.security import log_group_name_patterns
from components.settings import StackSettings
from tests.conftest import Synthesize, assert_policy_pack_passes
from tools.policy_eval import evaluate
from tools.synth import Synthesis, SynthesisError

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TABLE_STATEMENT = {"Sid": "ReadTable", "Effect": "Allow", "Action": ["dynamodb:GetItem"],
                   "Resource": "arn:aws:dynamodb:eu-west-1:123456789012:table/t"}


def make_args(settings: StackSettings, handlers_root: Path, **overrides: Any) -> FunctionArgs:
    values: dict[str, Any] = {"stack": settings, "key_arn": KEY_ARN, "handler_module": "demo",
                              "description": "Demo", "statements": [TABLE_STATEMENT],
                              "environment": {"TABLE": "t"}, "handlers_root": handlers_root}
    values.update(overrides)
    return FunctionArgs(**values)


def build(synth: Synthesize, args: FunctionArgs, preview: bool = False) -> Synthesis:
    return synth(lambda: LambdaFunction("demo", args), preview=preview)


def resource(synthesis: Synthesis, type_: str) -> dict[str, Any]:
    [found] = synthesis.of_type(type_)
    return found.inputs


def test_function_is_traced_json_logged_encrypted_and_layered(settings: StackSettings, handlers_root: Path,
                                                              synth: Synthesize) -> None:
    synthesis = build(synth, make_args(settings, handlers_root))

    function = resource(synthesis, "aws:lambda/function:Function")
    assert function["name"] == "cp-dev-euw1-demo"
    assert function["runtime"] == "python3.13"
    assert function["handler"] == "demo.handler"
    assert function["tracingConfig"] == {"mode": "Active"}
    assert function["loggingConfig"]["logFormat"] == "JSON"
    assert function["loggingConfig"]["logGroup"] == "/aws/lambda/cp-dev-euw1-demo"
    assert function["kmsKeyArn"] == KEY_ARN
    assert function["layers"] == [settings.powertools_layer_arn()]
    assert function["architectures"] == ["arm64"]
    assert function["environment"]["variables"] == {"POWERTOOLS_SERVICE_NAME": "demo",
                                                    "POWERTOOLS_METRICS_NAMESPACE": "ClickstreamPersonalization",
                                                    "TABLE": "t"}
    assert "reservedConcurrentExecutions" not in function
    assert "deadLetterConfig" not in function


def test_log_group_is_encrypted_retained_and_created_before_the_function(settings: StackSettings,
                                                                         handlers_root: Path,
                                                                         synth: Synthesize) -> None:
    synthesis = build(synth, make_args(settings, handlers_root))

    [log_group] = synthesis.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["kmsKeyId"] == KEY_ARN
    assert log_group.inputs["retentionInDays"] == settings.log_retention_days
    assert any(fnmatch(log_group.inputs["name"], p) for p in log_group_name_patterns(settings))
    [function] = synthesis.of_type("aws:lambda/function:Function")
    assert log_group.urn in function.dependencies


def test_role_holds_the_base_statements_plus_exactly_the_callers(settings: StackSettings, handlers_root: Path,
                                                                 synth: Synthesize) -> None:
    synthesis = build(synth, make_args(settings, handlers_root))

    policy = json.loads(resource(synthesis, "aws:iam/rolePolicy:RolePolicy")["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert set(by_sid) == {"WriteOwnLogs", "SendTraces", "DecryptOwnEnvironment", "ReadTable"}
    assert by_sid["WriteOwnLogs"]["Resource"].endswith(":*")
    assert by_sid["DecryptOwnEnvironment"]["Resource"] == KEY_ARN
    assert by_sid["DecryptOwnEnvironment"]["Condition"] == {
        "StringEquals": {"kms:EncryptionContext:LambdaFunctionName": "cp-dev-euw1-demo"}}
    assert by_sid["ReadTable"] == TABLE_STATEMENT
    trust = json.loads(resource(synthesis, "aws:iam/role:Role")["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_asynchronous_function_dead_letters_to_an_encrypted_queue(settings: StackSettings, handlers_root: Path,
                                                                  synth: Synthesize) -> None:
    synthesis = build(synth, make_args(settings, handlers_root, asynchronous=True, reserved_concurrency=5))

    [queue] = synthesis.of_type("aws:sqs/queue:Queue")
    assert queue.inputs["kmsMasterKeyId"] == KEY_ARN
    assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    function = resource(synthesis, "aws:lambda/function:Function")
    assert function["deadLetterConfig"]["targetArn"] == queue.outputs["arn"]
    assert function["reservedConcurrentExecutions"] == 5
    policy = json.loads(resource(synthesis, "aws:iam/rolePolicy:RolePolicy")["policy"])
    [send] = [s for s in policy["Statement"] if s["Sid"] == "DeadLetterFailedEvents"]
    assert send["Resource"] == queue.outputs["arn"]


def test_every_child_belongs_to_the_component(settings: StackSettings, handlers_root: Path,
                                              synth: Synthesize) -> None:
    synthesis = build(synth, make_args(settings, handlers_root, asynchronous=True))

    component = synthesis.find("clickstream:compute:LambdaFunction", "demo")
    assert {r.type for r in synthesis.children(component)} == {
        "aws:cloudwatch/logGroup:LogGroup", "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy",
        "aws:lambda/function:Function", "aws:sqs/queue:Queue"}


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_the_building_block_passes_the_policy_pack(settings: StackSettings, handlers_root: Path,
                                                   synth: Synthesize, preview: bool) -> None:
    synthesis = build(synth, make_args(settings, handlers_root, asynchronous=True), preview=preview)

    assert_policy_pack_passes(evaluate(synthesis), preview)


def test_archive_holds_the_entry_module_and_the_shared_package(handlers_root: Path) -> None:
    archive = code_archive(handlers_root, "demo")

    assert set(archive.assets) == {"demo.py", "common"}
    assert isinstance(archive.assets["common"], pulumi.FileArchive)
    assert Path(archive.assets["common"].path) == handlers_root / "common"


def test_missing_handler_module_is_refused(settings: StackSettings, handlers_root: Path, synth: Synthesize) -> None:
    with pytest.raises(FunctionConfigError, match="handler module 'absent' not found"):
        LambdaFunction("x", make_args(settings, handlers_root, handler_module="absent"))


def test_module_without_a_handler_function_is_refused(settings: StackSettings, handlers_root: Path) -> None:
    (handlers_root / "nohandler.py").write_text("def handle(event, context):\n    pass\n", encoding="utf-8")

    with pytest.raises(FunctionConfigError, match=r"must define a top-level function handler\(event, context\)"):
        code_archive(handlers_root, "nohandler")


def test_missing_shared_package_is_refused(handlers_root: Path) -> None:
    shutil.rmtree(handlers_root / "common")

    with pytest.raises(FunctionConfigError, match="the shared handler package is missing"):
        code_archive(handlers_root, "demo")


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"memory_mb": 64}, "memory_mb=64 must be between 128 and 10240"),
    ({"timeout_seconds": 901}, "timeout_seconds=901 must be between 1 and 900"),
    ({"reserved_concurrency": 0}, "reserved_concurrency=0 must be at least 1"),
    ({"environment": {"AWS_REGION": "x"}}, "environment variable 'AWS_REGION' is invalid or reserved"),
    ({"environment": {"POWERTOOLS_SERVICE_NAME": "x"}}, "'POWERTOOLS_SERVICE_NAME' is invalid or reserved"),
    ({"environment": {"1BAD": "x"}}, "environment variable '1BAD' is invalid"),
    ({"statements": [{"Sid": "NoResource", "Effect": "Allow", "Action": ["s3:GetObject"]}]},
     "statement 'NoResource' needs Effect Allow, Action and Resource"),
    ({"statements": [{"Sid": "Deny", "Effect": "Deny", "Action": ["s3:*"], "Resource": "*"}]},
     "statement 'Deny' needs Effect Allow"),
    ({"handler_module": "Bad-Name"}, "handler module 'Bad-Name' must be a lowercase Python module name"),
])
def test_unsound_arguments_are_refused_before_anything_is_registered(settings: StackSettings, handlers_root: Path,
                                                                     synth: Synthesize, overrides: dict[str, Any],
                                                                     expected: str) -> None:
    with pytest.raises(SynthesisError, match=expected) as excinfo:
        build(synth, make_args(settings, handlers_root, **overrides))

    assert excinfo.value.resources == []
    assert isinstance(excinfo.value.__cause__, FunctionConfigError)
