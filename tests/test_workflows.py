"""The CI/CD workflows offered to users: linted with actionlint, and shaped as the pipeline promises."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.synth import ROOT, stack_names

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT, "actionlint is installed by requirements-dev.txt"
    return subprocess.run([ACTIONLINT, *map(str, files)], capture_output=True, text=True, timeout=120, check=False)


def workflow(name: str) -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    return loaded


def steps(job: dict[str, Any]) -> list[str]:
    return [s.get("uses") or s.get("run", "") for s in job["steps"]]


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")))

    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_catch_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                      "      - run: echo ${{ github.evnt.name }}\n", encoding="utf-8")

    result = actionlint(broken)

    assert result.returncode != 0 and "evnt" in result.stdout


def test_pull_requests_run_the_checks_and_preview_every_stack_with_the_policy_pack() -> None:
    jobs = workflow("pull-request.yml")["jobs"]

    checks = " ".join(steps(jobs["checks"]))
    assert "make test" in checks and "bandit" in checks and "pip-audit" in checks
    assert jobs["preview"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.all) }}"
    assert "stacks" in jobs["preview"]["needs"]
    assert jobs["preview"]["permissions"]["id-token"] == "write"  # AWS through OIDC, no stored keys
    pulumi = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policies"


def test_main_deploys_dev_then_production_behind_approval() -> None:
    jobs = workflow("deploy.yml")["jobs"]

    assert jobs["dev"]["environment"] == "dev"
    assert "dev" in jobs["production"]["needs"] and jobs["production"]["environment"] == "production"
    assert jobs["production"]["strategy"]["matrix"]["stack"] == "${{ fromJSON(needs.stacks.outputs.production) }}"
    for name, job in jobs.items():
        if name == "stacks":
            continue
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policies"


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_workflows_grant_least_privilege_by_default(name: str) -> None:
    assert workflow(name)["permissions"] == {"contents": "read"}


# --- issue 14: stacks discovered, the stack's policy configuration passed, the CLI pinned ----------------------

def step(job: dict[str, Any], step_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in job["steps"] if s.get("id") == step_id)
    return found


def run_step(script: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Run a workflow step's shell script as the runner does (bash -e) and return what it wrote to $GITHUB_OUTPUT."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".github_output", delete=False) as handle:
        output = Path(handle.name)
    result = subprocess.run(["bash", "-e", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=30,
                            check=False, env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output), **(env or {})})
    try:
        assert result.returncode == 0, result.stderr
        return dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())
    finally:
        output.unlink()


@pytest.mark.parametrize(("name", "output", "expected"), [
    ("pull-request.yml", "all", lambda stacks: stacks),
    ("deploy.yml", "production", lambda stacks: [s for s in stacks if s != "dev"]),
])
def test_a_new_stack_file_needs_no_workflow_edit(name: str, output: str, expected: Any, tmp_path: Path) -> None:
    import json
    import shutil as sh

    # GIVEN the repository's stack files plus a new one, added as the README says (copy a stack file)
    for file in ROOT.glob("Pulumi.*.yaml"):
        sh.copy(file, tmp_path / file.name)
    sh.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.staging-ap.yaml")
    script = step(workflow(name)["jobs"]["stacks"], "list")["run"]

    # WHEN the workflow's stack-listing step runs
    listed = json.loads(run_step(script, tmp_path)[output])

    # THEN the matrix holds every stack file, the new one included
    assert "staging-ap" in listed
    assert listed == expected(stack_names(tmp_path))
    assert workflow(name)["jobs"]["stacks"]["outputs"][output] == f"${{{{ steps.list.outputs.{output} }}}}"


def pulumi_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(name, job_name, job) for name in ("pull-request.yml", "deploy.yml")
            for job_name, job in workflow(name)["jobs"].items()
            if any(s.get("uses", "").startswith("pulumi/actions@") for s in job["steps"])]


@pytest.mark.parametrize("stack", [*stack_names(), "no-such-stack"])
def test_ci_applies_the_same_policy_configuration_as_make_plan(stack: str, tmp_path: Path) -> None:
    from tools.plan import policy_config_file

    for name, job_name, job in pulumi_jobs():
        policy = step(job, "policy")
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["policyPackConfigs"] == "${{ steps.policy.outputs.config }}", (name, job_name)
        assert policy["env"]["STACK"] in ("${{ matrix.stack }}", pulumi["with"]["stack-name"])

        # GIVEN the repository as it is WHEN the step runs for a stack THEN it names the file make plan applies
        expected = policy_config_file(stack, None)
        assert run_step(policy["run"], ROOT, {"STACK": stack})["config"] == (
            str(expected.relative_to(ROOT)) if expected else "")


def test_ci_passes_a_stack_policy_configuration_when_the_file_exists(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "config.staging.json").write_text("{}", encoding="utf-8")
    _, _, job = pulumi_jobs()[0]

    assert run_step(step(job, "policy")["run"], tmp_path, {"STACK": "staging"})["config"] == \
        "policies/config.staging.json"
    assert run_step(step(job, "policy")["run"], tmp_path, {"STACK": "other"})["config"] == ""


def test_ci_pins_the_pulumi_cli_to_the_sdk_version() -> None:
    pin = next(line.split("==")[1].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("pulumi=="))
    for name in ("pull-request.yml", "deploy.yml"):
        assert workflow(name)["env"]["PULUMI_VERSION"] == pin
    for name, job_name, job in pulumi_jobs():
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", (name, job_name)
