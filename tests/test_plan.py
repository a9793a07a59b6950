"""The offline plan command: readable plan, JSON for CI, and its exit status."""

from __future__ import annotations

import copy
import json
import os
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


# --- issue 14: the first hour -----------------------------------------------------------------------------------

def test_make_plan_json_to_a_pipe_is_only_json_and_a_closed_pipe_is_quiet() -> None:
    import subprocess

    from tools.synth import ROOT

    # As typed in a shell: not a sub-make of the test command (which would print "Entering directory").
    shell = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    # GIVEN the venv exists WHEN the README's `make plan JSON=-` is piped THEN stdout is one JSON document
    full = subprocess.run(["make", "-s", "plan", "JSON=-"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          check=False, env=shell)
    assert full.returncode == 0, full.stderr
    assert json.loads(full.stdout)["stack"] == "dev"
    # AND a reader that stops early (`| head -c 100`) leaves no traceback and no make error
    cut = subprocess.run("make plan JSON=- | head -c 100", shell=True, cwd=ROOT, capture_output=True, text=True,
                         timeout=180, check=False, executable="/bin/bash", env=shell)
    assert cut.returncode == 0
    assert cut.stdout.startswith("{") and len(cut.stdout) == 100
    assert "Traceback" not in cut.stderr and "BrokenPipe" not in cut.stderr and "Error" not in cut.stderr


def test_a_closed_pipe_ends_the_plan_quietly_with_its_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self) -> int:
            return dup  # a real descriptor the plan may point at devnull

    import os
    dup = os.dup(1)
    try:
        monkeypatch.setattr("sys.stdout", ClosedPipe())
        assert plan.main(["--stack", "dev", "--json", "-"]) == 0
    finally:
        os.close(dup)


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "invalid JSON at line 1, column 2"),
    ('{"kms-key-rotation-enabled": "warn"}', "kms-key-rotation-enabled has unknown enforcement level 'warn'"),
    ('{"kms-key-rotation-enabled": {"enforcementLevel": "off"}}', "unknown enforcement level 'off'"),
    ('{"kms-key-rotaton-enabled": "advisory"}', "unknown policy 'kms-key-rotaton-enabled'"),
    ('{"apigateway-method-write-authorized": {"publicWriteMethod": []}}', "has no property 'publicWriteMethod'"),
    ('{"wafv2-webacl-managed-rules": {"requiredManagedRuleGroups": "AWSManagedRulesCommonRuleSet"}}',
     "must be a list of strings"),
    ('["kms-key-rotation-enabled"]', "expected a JSON object"),
    ('{"kms-key-rotation-enabled": 3}', "must be a level"),
])
def test_a_bad_policy_configuration_is_one_line_naming_the_file(content: str, problem: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a policy configuration the CLI would refuse (or that would silently do nothing)
    bad = tmp_path / "config.dev.json"
    bad.write_text(content, encoding="utf-8")

    # WHEN the plan applies it
    status = plan.main(["--stack", "dev", "--policy-config", str(bad)])

    # THEN it stops with status 2 and one line naming the file and the problem
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and str(bad) in err and problem in err
    assert "Traceback" not in err


def test_a_missing_policy_configuration_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev", "--policy-config", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: cannot be read" in capsys.readouterr().err


def test_the_plan_says_which_policy_configuration_it_applied(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev"]) == 0
    assert "configuration: none" in capsys.readouterr().out

    relaxed = tmp_path / "config.dev.json"
    relaxed.write_text('{"all": "advisory"}', encoding="utf-8")
    assert plan.main(["--stack", "dev", "--policy-config", str(relaxed), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["policyConfig"] == str(relaxed)


def test_all_sets_every_policy_level(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(plan, "synthesize_stack", lambda stack, preview: rotation_off())
    relaxed = tmp_path / "config.dev.json"
    relaxed.write_text('{"all": "advisory"}', encoding="utf-8")

    assert plan.main(["--stack", "dev", "--policy-config", str(relaxed)]) == 0
    assert "[advisory] kms-key-rotation-enabled: " in capsys.readouterr().out


def test_the_plan_prints_no_mock_account_and_no_python_reprs(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.synth import ACCOUNT_ID

    assert plan.main(["--stack", "dev"]) == 0
    printed = capsys.readouterr().out
    outputs = printed.split("Stack outputs")[1].split("Policy pack")[0]
    assert ACCOUNT_ID not in printed
    assert "rawBucket: cp-dev-euw1-raw-<account>" in outputs
    assert "rawReplicaBucket: (none)" in outputs
    assert ": None" not in outputs and "['" not in outputs and "{'" not in outputs


def test_advisory_findings_name_their_resources(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "dev"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines()
                if "[advisory] iam-policy-no-wildcard-actions" in x)
    assert "known only after deploy: " in line and "cp-dev-euw1-ingestion-collect-api-policy" in line


def stack_root(tmp_path: Path, stacks: dict[str, str]) -> Path:
    from tools.synth import ROOT

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for name, body in stacks.items():
        (tmp_path / f"Pulumi.{name}.yaml").write_text(body, encoding="utf-8")
    return tmp_path


def test_the_shipped_stacks_do_not_fight_over_the_api_gateway_account_setting() -> None:
    assert plan.api_gateway_account_conflicts() == []


@pytest.mark.parametrize(("second", "conflict"), [
    ("config:\n  aws:region: eu-west-1\n", True),  # default: manages it
    ("config:\n  aws:region: eu-west-1\n  clickstream-personalization:manageApiGatewayAccount: false\n", False),
    ("config:\n  aws:region: eu-central-1\n", False),
    ("config:\n  aws:region: eu-west-1\n  aws:allowedAccountIds: ['222222222222']\n", False),
    ("config:\n  aws:region: eu-west-1\n  aws:allowedAccountIds: ['111111111111']\n", True),
])
def test_two_stacks_of_one_region_that_both_manage_the_account_setting_conflict(
        tmp_path: Path, second: str, conflict: bool) -> None:
    # GIVEN a stack of eu-west-1 in account 111111111111 that manages the setting, and a second stack file
    root = stack_root(tmp_path, {
        "a": "config:\n  aws:region: eu-west-1\n  aws:allowedAccountIds: ['111111111111']\n", "b": second})

    # WHEN the repository's stacks are checked together THEN they conflict only if region and account may match
    found = plan.api_gateway_account_conflicts(root)

    assert [c.stacks for c in found] == ([("a", "b")] if conflict else [])


def test_a_conflict_fails_the_plan_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = stack_root(tmp_path, {"dev": "config:\n  aws:region: eu-west-1\n",
                                 "dev2": "config:\n  aws:region: eu-west-1\n"})
    real = plan.api_gateway_account_conflicts
    monkeypatch.setattr(plan, "api_gateway_account_conflicts", lambda: real(root))

    status = plan.main(["--stack", "dev"])

    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.strip() == ("error: stacks dev and dev2 both manage the API Gateway account setting of "
                                    "eu-west-1 (manageApiGatewayAccount): if they share an account, set "
                                    "manageApiGatewayAccount: false in one, or declare aws:allowedAccountIds in both")
    assert "[error] stacks dev and dev2" in captured.out


@pytest.mark.parametrize(("body", "message"), [
    ("config:\n  aws:region: [eu-west-1\n", "Pulumi.bad.yaml: invalid YAML (line 3, column 1)"),
    ("config:\n  aws:region: eu-west-1\n  aws:region: us-east-1\n",
     "Pulumi.bad.yaml: invalid YAML (line 3, column 3): duplicate key 'aws:region'"),
    ("config:\n  aws:region: eu-west-1\n  clickstream-personalization:alarmEmails:\n    secure: v1:abc\n",
     "Pulumi.bad.yaml: clickstream-personalization:alarmEmails is an encrypted secret: cannot be read offline"),
    ("config: [1, 2]\n", "Pulumi.bad.yaml: config must be a mapping"),
    ("- 1\n", "Pulumi.bad.yaml: expected a mapping at the top level"),
])
def test_stack_file_errors_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, message: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tools import synth

    # GIVEN a stack file with a YAML error, a duplicate key, an encrypted value or the wrong shape
    root = stack_root(tmp_path, {"bad": body})
    monkeypatch.setattr(synth, "ROOT", root)
    monkeypatch.setattr(plan, "stack_names", lambda: ["bad"])
    monkeypatch.setattr(plan, "synthesize_stack",
                        lambda stack, preview: synth.synthesize_stack(stack, preview=preview, root=root))

    # WHEN it is planned THEN one line names the file and the problem, status 2, no traceback
    status = plan.main(["--stack", "bad"])

    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_secret_in_another_stack_file_does_not_stop_the_check(tmp_path: Path) -> None:
    # GIVEN a second stack of another region that holds an encrypted value
    root = stack_root(tmp_path, {
        "a": "config:\n  aws:region: eu-west-1\n",
        "b": "config:\n  aws:region: us-east-1\n  clickstream-personalization:alarmEmails:\n    secure: v1:x\n"})

    # WHEN the stacks are checked together THEN the secret is not needed and nothing conflicts
    assert plan.api_gateway_account_conflicts(root) == []
