"""Each rule passes the compliant resource the program makes and fails it after one mutated property.

The evaluator is checked against the analyzer's semantics too: unknown values make a policy advisory, and stack
policies see parents, dependencies and property dependencies as resources.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE

from clickstream_policies import PACK_NAME, POLICIES
from components.function import FunctionArgs, LambdaFunction
from components.security import EncryptionKey, EncryptionKeyArgs
from components.settings import StackSettings
from tests.conftest import Synthesize
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis

POLICY_BY_NAME = {p.name: p for p in POLICIES}
Mutation = Callable[[dict[str, Any]], None]


@pytest.fixture
def compliant(settings: StackSettings, handlers_root: Path, synth: Synthesize) -> Synthesis:
    """A key and an asynchronous function, exactly as the components make them, with AWS-computed values known."""

    def program() -> None:
        key = EncryptionKey("key", EncryptionKeyArgs(settings=settings))
        LambdaFunction("demo", FunctionArgs(settings=settings, key_arn=key.arn, handler_module="demo",
                                            description="Demo", environment={"TABLE": "t"},
                                            handlers_root=handlers_root, asynchronous=True))

    return synth(program)


def mutated(synthesis: Synthesis, type_: str, mutate: Mutation) -> Synthesis:
    resources = copy.deepcopy(synthesis.resources)
    [target] = [r for r in resources if r.type == type_]
    mutate(target.inputs)
    return Synthesis(synthesis.stack, resources)


def names(findings: list[Any], level: str = "mandatory") -> list[str]:
    return [f.policy for f in findings if f.level == level]


def drop(key: str) -> Mutation:
    return lambda inputs: inputs.pop(key)


def put(key: str, value: Any) -> Mutation:
    return lambda inputs: inputs.__setitem__(key, value)


CASES: list[tuple[str, str, Mutation, str]] = [
    ("kms-key-rotation-enabled", "aws:kms/key:Key", put("enableKeyRotation", False), "set enable_key_rotation=True"),
    ("kms-key-rotation-enabled", "aws:kms/key:Key", drop("enableKeyRotation"), "set enable_key_rotation=True"),
    ("cloudwatch-loggroup-encrypted", "aws:cloudwatch/logGroup:LogGroup", drop("kmsKeyId"), "set kms_key_id"),
    ("cloudwatch-loggroup-encrypted", "aws:cloudwatch/logGroup:LogGroup", put("kmsKeyId", ""), "set kms_key_id"),
    ("cloudwatch-loggroup-retention", "aws:cloudwatch/logGroup:LogGroup", drop("retentionInDays"),
     "set retention_in_days"),
    ("cloudwatch-loggroup-retention", "aws:cloudwatch/logGroup:LogGroup", put("retentionInDays", 0.0),
     "set retention_in_days"),
    ("lambda-function-tracing-active", "aws:lambda/function:Function", put("tracingConfig", {"mode": "PassThrough"}),
     'set tracing_config mode="Active"'),
    ("lambda-function-tracing-active", "aws:lambda/function:Function", drop("tracingConfig"),
     'set tracing_config mode="Active"'),
    ("lambda-function-environment-encrypted", "aws:lambda/function:Function", drop("kmsKeyArn"),
     "set kms_key_arn"),
]


def test_the_compliant_resources_pass_every_policy(compliant: Synthesis) -> None:
    assert evaluate(compliant) == []


@pytest.mark.parametrize(("policy", "type_", "mutate", "fix"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_one_mutation_is_caught_by_its_policy(compliant: Synthesis, policy: str, type_: str, mutate: Mutation,
                                              fix: str) -> None:
    findings = evaluate(mutated(compliant, type_, mutate))

    assert names(findings) == [policy]
    assert fix in findings[0].message
    assert findings[0].resource_type == type_


def test_every_policy_has_a_mutation_case() -> None:
    assert {case[0] for case in CASES} == set(POLICY_BY_NAME)


def test_function_without_environment_needs_no_key(compliant: Synthesis) -> None:
    def no_environment(inputs: dict[str, Any]) -> None:
        inputs.pop("environment")
        inputs.pop("kmsKeyArn")

    assert evaluate(mutated(compliant, "aws:lambda/function:Function", no_environment)) == []


def test_presence_checks_stay_decisive_when_the_value_is_unknown(settings: StackSettings, handlers_root: Path,
                                                                 synth: Synthesize) -> None:
    def program() -> None:
        key = EncryptionKey("key", EncryptionKeyArgs(settings=settings))
        LambdaFunction("demo", FunctionArgs(settings=settings, key_arn=key.arn, handler_module="demo",
                                            description="Demo", environment={"TABLE": "t"},
                                            handlers_root=handlers_root))

    synthesis = synth(program, preview=True)

    [log_group] = synthesis.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["kmsKeyId"] == UNKNOWN_STRING_VALUE
    assert evaluate(synthesis) == []


def test_a_policy_reading_an_unknown_value_becomes_advisory(compliant: Synthesis) -> None:
    findings = evaluate(mutated(compliant, "aws:cloudwatch/logGroup:LogGroup",
                                put("retentionInDays", UNKNOWN_NUMBER_VALUE)))

    assert names(findings) == []
    assert names(findings, "advisory") == ["cloudwatch-loggroup-retention"]
    assert "can't be known during preview" in findings[0].message


def test_stack_policies_see_property_dependencies_as_resources(compliant: Synthesis) -> None:
    seen: dict[str, list[str]] = {}

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for r in args.resources:
            if r.resource_type == "aws:cloudwatch/logGroup:LogGroup":
                seen["kmsKeyId"] = [d.resource_type for d in r.property_dependencies["kmsKeyId"]]
                assert r.parent is not None
                seen["parent"] = [r.parent.resource_type]
                report_violation("reported against the log group", r.urn)

    probe = StackValidationPolicy(name="probe-stack-links", description="probe", validate=validate)

    findings = evaluate(compliant, [probe])

    assert seen == {"kmsKeyId": ["aws:kms/key:Key"], "parent": ["clickstream:compute:LambdaFunction"]}
    assert [(f.policy, f.resource_type) for f in findings] == [("probe-stack-links",
                                                                "aws:cloudwatch/logGroup:LogGroup")]


def test_policy_names_follow_service_resource_rule_and_are_unique() -> None:
    assert len(POLICY_BY_NAME) == len(POLICIES)
    for policy in POLICIES:
        assert re.fullmatch(r"[a-z0-9]+-[a-z0-9]+-[a-z0-9-]+", policy.name), policy.name
        assert policy.description.endswith(".")
    assert re.fullmatch(r"[a-zA-Z0-9-_.]{1,100}", PACK_NAME)


def test_findings_name_the_resource_they_were_reported_for(compliant: Synthesis) -> None:
    resources: list[RegisteredResource] = compliant.resources
    [key] = [r for r in resources if r.type == "aws:kms/key:Key"]

    findings = evaluate(mutated(compliant, "aws:kms/key:Key", put("enableKeyRotation", False)))

    assert findings[0].resource_name == key.name
