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
    assert jobs["preview"]["strategy"]["matrix"]["stack"] == stack_names()
    assert jobs["preview"]["permissions"]["id-token"] == "write"  # AWS through OIDC, no stored keys
    pulumi = next(s for s in jobs["preview"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policies"


def test_main_deploys_dev_then_production_behind_approval() -> None:
    jobs = workflow("deploy.yml")["jobs"]

    assert jobs["dev"]["environment"] == "dev"
    assert jobs["production"]["needs"] == "dev" and jobs["production"]["environment"] == "production"
    assert jobs["production"]["strategy"]["matrix"]["stack"] == [s for s in stack_names() if s.startswith("prod")]
    for job in jobs.values():
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "policies"


@pytest.mark.parametrize("name", ["pull-request.yml", "deploy.yml"])
def test_workflows_grant_least_privilege_by_default(name: str) -> None:
    assert workflow(name)["permissions"] == {"contents": "read"}
