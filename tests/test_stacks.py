"""Every shipped stack file synthesizes, is tagged and regional, and passes the policy pack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.settings import CONFIG_KEYS, SettingsError
from tests.conftest import assert_policy_pack_passes
from tools.config_reference import pulumi_config_block, readme_table
from tools.policy_eval import evaluate
from tools.synth import ROOT, SynthesisError, stack_config, stack_names, synthesize, synthesize_stack

STACKS = stack_names()


def test_the_repository_ships_stack_files() -> None:
    assert "dev" in STACKS


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("preview", [True, False], ids=["preview", "deployed"])
def test_stack_synthesizes_and_passes_the_policy_pack(stack: str, preview: bool) -> None:
    synthesis = synthesize_stack(stack, preview=preview)

    assert_policy_pack_passes(evaluate(synthesis), preview)
    assert synthesis.of_type("aws:kms/key:Key"), "every stack has its encryption key"


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_uses_the_stacks_provider_with_its_region_and_tags(stack: str) -> None:
    config = stack_config(stack)
    synthesis = synthesize_stack(stack, preview=False)

    providers = {p.name: p for p in synthesis.of_type("pulumi:providers:aws")}
    main = providers["aws"]
    assert main.inputs["region"] == config["aws:region"]
    replica_region = config.get("clickstream-personalization:replicaRegion", "")
    assert {p.inputs["region"] for p in providers.values()} == {config["aws:region"], replica_region} - {""}
    for provider in providers.values():
        tags = json.loads(provider.inputs["defaultTags"])["tags"]
        assert tags["app"] == "clickstream-personalization"
        assert tags["environment"] == config["clickstream-personalization:environment"]
        assert tags["stack"] == stack
    for resource in synthesis.resources:
        if resource.custom and resource.type != "pulumi:providers:aws":
            assert resource.provider is not None, resource.name
            provider = next(p for p in providers.values() if resource.provider.startswith(p.urn))
            assert provider is main or "RawReplica" in resource.urn, resource.name


ARN_REGION = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:([a-z]{2}-[a-z]+-\d):")
ENDPOINT_REGION = re.compile(r"\.([a-z]{2}-[a-z]+-\d)\.amazonaws\.com")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.mark.parametrize("stack", STACKS)
def test_arns_and_endpoints_stay_in_the_stacks_region(stack: str) -> None:
    config = stack_config(stack)
    allowed = {config["aws:region"], config.get("clickstream-personalization:replicaRegion", "")} - {""}
    synthesis = synthesize_stack(stack, preview=False)

    seen: set[str] = set()
    for resource in synthesis.resources:
        for text in strings([resource.inputs, resource.outputs]):
            seen |= set(ARN_REGION.findall(text)) | set(ENDPOINT_REGION.findall(text))
    assert seen and seen <= allowed, seen - allowed


def test_production_stacks_run_in_two_regions() -> None:
    regions = {stack_config(s)["aws:region"] for s in STACKS if s.startswith("prod")}

    assert len(regions) >= 2


# Names that only need to be unique inside their parent (an API, a log group), not in the account.
SCOPED_NAMES = {"aws:apigateway/model:Model", "aws:apigateway/requestValidator:RequestValidator",
                "aws:cloudwatch/logStream:LogStream"}


@pytest.mark.parametrize("stack", STACKS)
def test_physical_names_derive_from_the_prefix(stack: str) -> None:
    synthesis = synthesize_stack(stack, preview=False)
    prefix = synthesis.outputs["namePrefix"]

    named = [r for r in synthesis.resources
             if r.custom and r.type not in SCOPED_NAMES and isinstance(r.inputs.get("name"), str)]
    assert named
    for resource in named:
        name = resource.inputs["name"]
        # API Gateway fixes its execution log group's name: API-Gateway-Execution-Logs_<api id>/<stage>.
        assert prefix in name or name.startswith("API-Gateway-Execution-Logs_"), resource.name


def test_invalid_settings_fail_before_any_resource_is_created() -> None:
    config = {**stack_config("dev"), "clickstream-personalization:logRetentionDays": "13"}

    with pytest.raises(SynthesisError) as excinfo:
        synthesize(config, stack="dev", preview=True)

    assert isinstance(excinfo.value.__cause__, SettingsError)
    assert "clickstream-personalization:logRetentionDays = '13' is invalid" in str(excinfo.value)
    assert excinfo.value.resources == []


def test_pulumi_yaml_declares_exactly_the_settings_keys() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))

    assert project["name"] == "clickstream-personalization"
    declared = project["config"]
    assert list(declared) == [key.name for key in CONFIG_KEYS]
    for key in CONFIG_KEYS:
        assert declared[key.name]["type"] == key.type
        assert declared[key.name].get("default") == key.default
        assert declared[key.name]["description"] == key.description


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert readme_table() in readme  # regenerate with `python -m tools.config_reference --write`
    for key in CONFIG_KEYS:
        default = "(required)" if key.default is None else f"`{json.dumps(key.default)}`"
        assert f"| `{key.name}` | {key.type} | {default} |" in readme, key.name


def test_pulumi_yaml_is_the_generated_declaration() -> None:
    assert (ROOT / "Pulumi.yaml").read_text(encoding="utf-8").endswith(pulumi_config_block())


def test_stack_config_reports_a_missing_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n", encoding="utf-8")

    with pytest.raises(FileNotFoundError, match=r"no stack file Pulumi\.qa\.yaml"):
        stack_config("qa", tmp_path)
