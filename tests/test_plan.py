"""The offline plan command: readable plan, JSON for CI, and its exit status."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tools import plan
from tools.synth import Synthesis, synthesize_stack


def test_plan_of_dev_lists_the_key_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "plan.json"

    status = plan.main(["--stack", "dev", "--json", str(out_file)])

    printed = capsys.readouterr().out
    assert status == 0
    assert "clickstream:security:EncryptionKey  cp-dev-euw1-key" in printed
    assert "aws:kms/key:Key" in printed
    assert "kmsKeyArn: <known after deploy>" in printed
    assert "preview: 0 mandatory violation(s)" in printed
    assert "update: 0 mandatory violation(s), 0 advisory finding(s)" in printed
    document = json.loads(out_file.read_text(encoding="utf-8"))
    assert document["mandatoryViolations"] == 0
    assert set(document["findings"]) == {"preview", "update"}
    assert {"aws:kms/key:Key", "aws:kms/alias:Alias"} <= {r["type"] for r in document["resources"]}


def test_a_policy_configuration_file_relaxes_a_rule_for_a_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan, "synthesize_stack", lambda stack, preview: rotation_off())
    relaxed = tmp_path / "config.dev.json"
    relaxed.write_text(json.dumps({"kms-key-rotation-enabled": "advisory"}), encoding="utf-8")

    assert plan.main(["--stack", "dev", "--policy-config", str(relaxed)]) == 0
    assert "[advisory] kms-key-rotation-enabled" in capsys.readouterr().out


def test_json_to_stdout_is_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["stack"] == "dev"


def rotation_off() -> Synthesis:
    resources = copy.deepcopy(synthesize_stack("dev", preview=False).resources)
    [key] = [r for r in resources if r.type == "aws:kms/key:Key"]
    key.inputs["enableKeyRotation"] = False
    return Synthesis("dev", resources)


def test_mandatory_violation_fails_the_plan(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan, "synthesize_stack", lambda stack, preview: rotation_off())

    status = plan.main(["--stack", "dev"])

    assert status == 1
    assert "[mandatory] kms-key-rotation-enabled" in capsys.readouterr().out


def test_unknown_stack_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "nosuchstack"]) == 2
    assert "no stack file Pulumi.nosuchstack.yaml; stacks: dev" in capsys.readouterr().err


def test_invalid_configuration_is_reported_without_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from tools import synth

    real = synth.stack_config
    monkeypatch.setattr(synth, "stack_config", lambda stack, root=synth.ROOT: {
        **real(stack, root), "clickstream-personalization:lambdaArchitecture": "sparc"})

    status = plan.main(["--stack", "dev"])

    err = capsys.readouterr().err
    assert status == 2
    assert "lambdaArchitecture = 'sparc' is invalid: must be one of arm64, x86_64" in err
    assert "Traceback" not in err


def test_the_readme_command_runs_from_a_plain_shell() -> None:
    import os
    import subprocess
    import sys

    from tools.synth import ROOT

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "dev"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert "update: 0 mandatory violation(s)" in result.stdout
