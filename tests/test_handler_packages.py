"""Every Lambda imports with only what its archive, the Powertools layer and the Python runtime hold, and every
function a stack declares is packaged from files that exist (Pulumi's mocks do not check archive paths)."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pytest

from components.function import HANDLERS_ROOT, find_handler
from tools.lambda_sandbox import LAYER_PACKAGES, RUNTIME_PACKAGES, build_package, import_in_isolation, site_dir
from tools.synth import stack_names, synthesize_stack

HANDLERS = sorted(p.stem for p in HANDLERS_ROOT.glob("*.py"))


def test_there_are_handlers() -> None:
    assert {"event_processor", "items", "recommendations"} <= set(HANDLERS)


@pytest.mark.parametrize("module", HANDLERS)
def test_each_handler_imports_with_only_its_package_the_layer_and_the_runtime(module: str, tmp_path: Path) -> None:
    package = build_package(HANDLERS_ROOT, module, tmp_path / "package")
    layer = site_dir(tmp_path / "layer", LAYER_PACKAGES)
    runtime = site_dir(tmp_path / "runtime", RUNTIME_PACKAGES)

    result = import_in_isolation(package, module, layer, runtime)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("module", HANDLERS)
def test_without_the_layer_no_handler_imports(module: str, tmp_path: Path) -> None:
    package = build_package(HANDLERS_ROOT, module, tmp_path / "package")

    result = import_in_isolation(package, module, site_dir(tmp_path / "runtime", RUNTIME_PACKAGES))

    assert "No module named 'aws_lambda_powertools'" in result.stderr


@pytest.mark.parametrize("stack", stack_names())
def test_every_function_of_a_stack_is_packaged_from_existing_files(stack: str) -> None:
    functions = synthesize_stack(stack).of_type("aws:lambda/function:Function")

    assert functions
    for function in functions:
        archive = function.inputs["code"]
        assert isinstance(archive, pulumi.AssetArchive)
        module = function.inputs["handler"].removesuffix(".handler")
        assert Path(archive.assets[f"{module}.py"].path) == find_handler(HANDLERS_ROOT, module)
        assert (Path(archive.assets["common"].path) / "__init__.py").is_file()
