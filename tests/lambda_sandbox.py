"""Run handler code the way Lambda would: only the deployment package (and, later, layers) on the path."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from components.function import SHARED_MODULE, find_handler, shared_module_path


def build_package(handlers_root: Path, module: str, dest: Path) -> Path:
    """Lay out the same files ``code_archive`` packs: the entry module at the root and the shared package."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(find_handler(handlers_root, module), dest / f"{module}.py")
    shutil.copytree(shared_module_path(handlers_root), dest / SHARED_MODULE)
    return dest


def import_in_isolation(package: Path, module: str, *extra_paths: Path) -> subprocess.CompletedProcess[str]:
    """Import ``module`` in a fresh interpreter without site-packages and with only ``package`` on the path."""
    path = ":".join(str(p) for p in (package, *extra_paths))
    code = f"import {module}; assert callable({module}.handler)"
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=package, env={"PYTHONPATH": path},
                          capture_output=True, text=True, timeout=60, check=False)
