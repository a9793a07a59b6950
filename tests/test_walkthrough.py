"""README "First hour on AWS": every `python -m tools.…` command exists with the flags it shows, and every command
marked `# offline` runs here and succeeds."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tools.synth import ROOT

README = ROOT / "README.md"
TOOL = re.compile(r"(?:\.venv/bin/)?python -m (tools\.[a-z_]+)")


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def commands(text: str) -> list[str]:
    """The command lines of the section's ```bash blocks, continuation lines joined."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                lines.append(line.strip())
    return lines


WALKTHROUGH = section("First hour on AWS")
COMMANDS = commands(WALKTHROUGH)
TOOL_COMMANDS = [c for c in COMMANDS if TOOL.search(c)]
OFFLINE = [c for c in COMMANDS if c.endswith("# offline")]


@cache
def help_text(module: str) -> str:
    result = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"{module} --help failed: {result.stderr}"
    return result.stdout


def takes(help_: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_) is not None


def flags(command: str) -> tuple[str, list[str]]:
    match = TOOL.search(command)
    assert match
    tokens = shlex.split(command[match.end():], comments=True)
    return match.group(1), [t.split("=")[0] for t in tokens if t.startswith("--")]


def test_the_walkthrough_covers_the_first_hour_in_order() -> None:
    steps = re.findall(r"\*\*(\d)\. ([A-Z][a-z ]+)", WALKTHROUGH)
    assert [title for _, title in steps] == ["Prerequisites", "Permissions", "Deploy", "Send traffic", "Train",
                                             "Get recommendations", "Cost while it runs", "Teardown", "Destroy"]
    pin = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line.startswith("pulumi=="))
    assert f"Pulumi CLI ≥ {pin}" in WALKTHROUGH
    assert any(c.startswith("curl ") and "x-api-key" in c for c in COMMANDS)
    assert any("get-api-key" in c and "--include-value" in c for c in COMMANDS)
    assert any("--empty-buckets --yes" in c for c in COMMANDS)
    assert any(c.startswith("pulumi destroy") for c in COMMANDS)
    assert len(TOOL_COMMANDS) >= 8 and len(OFFLINE) >= 4


@pytest.mark.parametrize("command", TOOL_COMMANDS)
def test_every_tool_command_exists_with_its_flags(command: str) -> None:
    module, used = flags(command)

    text = help_text(module)

    assert [f for f in used if not takes(text, f)] == [], f"{module} does not take {used}"


@pytest.mark.parametrize("command", OFFLINE)
def test_every_offline_command_runs(command: str, tmp_path: Path) -> None:
    # The walkthrough writes to build/ (git-ignored); here, to a temporary folder.
    line = command.removesuffix("# offline").replace("build/", f"{tmp_path}/build/")  # build/ need not exist
    argv = shlex.split(line)
    if argv[0].endswith("python"):
        argv[0] = sys.executable

    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)

    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr


def test_a_flag_the_tool_does_not_take_is_caught() -> None:
    module, used = flags(".venv/bin/python -m tools.train --stack dev --empty-bucket")

    assert used == ["--stack", "--empty-bucket"]
    assert takes(help_text(module), "--empty-buckets") and not takes(help_text(module), "--empty-bucket")
