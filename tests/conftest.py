"""Fixtures shared by the suite: settings, offline synthesis of programs, and handler trees."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from components.function import HANDLERS_ROOT
from components.settings import StackSettings, parse_settings
from tools.synth import Synthesis, synthesize

REGION = "eu-west-1"
Synthesize = Callable[..., Synthesis]


@pytest.fixture
def settings() -> StackSettings:
    return parse_settings({"environment": "dev"}, region=REGION, stack="dev")


@pytest.fixture
def synth() -> Synthesize:
    """Run a program function under fresh recording mocks; ``preview=False`` fills in ARNs and ids."""

    def run(program: Callable[[], None], *, preview: bool = False, region: str = REGION) -> Synthesis:
        return synthesize({"aws:region": region}, stack="dev", preview=preview, program=program)

    return run


def make_handlers_root(tmp_path: Path) -> Path:
    """A handlers tree with one valid entry point, ``demo``, and the real shared package copied in."""
    root = tmp_path / "handlers"
    shutil.copytree(HANDLERS_ROOT / "common", root / "common")
    (root / "demo.py").write_text(
        "from common.config import required_env\n\n\n"
        "def handler(event, context):\n    return {'table': required_env('TABLE')}\n",
        encoding="utf-8",
    )
    return root


@pytest.fixture
def handlers_root(tmp_path: Path) -> Path:
    return make_handlers_root(tmp_path)
