"""Run handler code the way Lambda would: only the deployment package (and, later, layers) on the path."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from common.contract import VENDORED_PACKAGES
from components.function import SHARED_MODULE, find_handler, shared_module_path, vendored_package_path


def build_package(handlers_root: Path, module: str, dest: Path) -> Path:
    """Lay out the same files ``code_archive`` packs: the entry module at the root, the shared package and the
    vendored packages."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(find_handler(handlers_root, module), dest / f"{module}.py")
    shutil.copytree(shared_module_path(handlers_root), dest / SHARED_MODULE)
    for package in VENDORED_PACKAGES.get(module, ()):
        shutil.copytree(vendored_package_path(package), dest / package)
    return dest


# What the Lambda Python runtime ships, and what the Powertools layer adds (with the extras our handlers use).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")
LAYER_PACKAGES = ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "fastjsonschema", "typing_extensions")


def site_dir(dest: Path, packages: tuple[str, ...]) -> Path:
    """A directory holding exactly ``packages`` (linked from this environment), like a runtime or layer path."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in packages:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, f"{name} is not installed"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (dest / source.name).symlink_to(source)
    return dest


def import_in_isolation(package: Path, module: str, *extra_paths: Path) -> subprocess.CompletedProcess[str]:
    """Import ``module`` in a fresh interpreter without site-packages and with only ``package`` on the path."""
    path = ":".join(str(p) for p in (package, *extra_paths))
    code = f"import {module}; assert callable({module}.handler)"
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=package, env={"PYTHONPATH": path},
                          capture_output=True, text=True, timeout=60, check=False)
