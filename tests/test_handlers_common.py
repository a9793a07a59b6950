"""The shared handler package, and the isolation harness that proves a handler needs nothing beyond its package."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import MissingConfigurationError, required_env
from tools.lambda_sandbox import build_package, import_in_isolation


def test_required_env_returns_the_trimmed_value() -> None:
    assert required_env("TABLE", {"TABLE": "  clicks "}) == "clicks"


@pytest.mark.parametrize("environ", [{}, {"TABLE": ""}, {"TABLE": "   "}])
def test_required_env_names_the_missing_variable(environ: dict[str, str]) -> None:
    with pytest.raises(MissingConfigurationError, match="environment variable TABLE is not set"):
        required_env("TABLE", environ)


def test_a_handler_using_only_its_package_imports_in_isolation(handlers_root: Path, tmp_path: Path) -> None:
    package = build_package(handlers_root, "demo", tmp_path / "package")

    result = import_in_isolation(package, "demo")

    assert result.returncode == 0, result.stderr


def test_a_handler_importing_outside_its_package_fails_in_isolation(handlers_root: Path, tmp_path: Path) -> None:
    (handlers_root / "leaky.py").write_text("import components.settings\n\n\ndef handler(event, context):\n"
                                            "    return None\n", encoding="utf-8")
    package = build_package(handlers_root, "leaky", tmp_path / "package")

    result = import_in_isolation(package, "leaky")

    assert result.returncode != 0
    assert "No module named 'components'" in result.stderr
