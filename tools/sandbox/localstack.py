"""LocalStack in host mode (no Docker) for the local sandbox: its own Python 3.13 venv, one process per sandbox.

``python -m tools.sandbox.localstack --install`` creates (idempotently) the venv at ``.sandbox/localstack-venv`` from
``localstack-requirements.txt`` and fetches ``kinesis-local`` (LocalStack installs it from npm on first use) by
starting LocalStack once and touching Kinesis. ``start()`` runs ``python -m localstack.runtime.main`` with a private
filesystem root under ``.sandbox/``, in the caller's process group (killing the sandbox's group, even with SIGKILL,
takes LocalStack down too), and waits until every requested service answers.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
SANDBOX_DIR = ROOT / ".sandbox"
VENV_DIR = SANDBOX_DIR / "localstack-venv"
REQUIREMENTS = Path(__file__).resolve().parent / "localstack-requirements.txt"
# Packages LocalStack downloads on first use (kinesis-local from npm), shared by every instance.
SHARED_LIBS = SANDBOX_DIR / "localstack-lib"
PYTHON_VERSION = "3.13.0"
SERVICES = ("apigateway", "kinesis", "s3", "sqs", "ssm", "sts")
REGION = "eu-west-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
READY_STATES = {"available", "running"}


class LocalStackError(RuntimeError):
    """Something a user can fix (missing Python 3.13, busy port, failed install); the message says what."""


def python313() -> Path:
    """Python 3.13 from pyenv (LocalStack 2026.3 runs on 3.13 only)."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False).stdout.strip()
    root = root or str(Path.home() / ".pyenv")
    candidate = Path(root) / "versions" / PYTHON_VERSION / "bin" / "python3.13"
    if not candidate.is_file():
        raise LocalStackError(f"Python {PYTHON_VERSION} is missing ({candidate} not found): install it with "
                              f"`pyenv install {PYTHON_VERSION}`")
    return candidate


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def venv_python(venv: Path = VENV_DIR) -> Path:
    return venv / "bin" / "python"


def is_installed(venv: Path = VENV_DIR) -> bool:
    stamp = venv / ".requirements.sha256"
    return venv_python(venv).is_file() and stamp.is_file() and stamp.read_text().strip() == _requirements_digest()


def install_venv(venv: Path = VENV_DIR) -> bool:
    """Create the venv and install the pinned requirements unless already done; True when it installed."""
    if is_installed(venv):
        return False
    interpreter = python313()
    if not venv_python(venv).is_file():
        _run([str(interpreter), "-m", "venv", str(venv)], "creating the LocalStack venv")
    _run([str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-r", str(REQUIREMENTS)], "installing LocalStack")
    (venv / ".requirements.sha256").write_text(_requirements_digest() + "\n")
    return True


def _run(command: Sequence[str], what: str) -> None:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise LocalStackError(f"{what} failed (exit {result.returncode}): {tail}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def health(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as response:  # noqa: S310 (http only)
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def services_ready(report: dict[str, Any] | None, services: Sequence[str]) -> bool:
    states = (report or {}).get("services", {})
    return all(states.get(service) in READY_STATES for service in services)


@dataclass
class LocalStack:
    url: str
    process: subprocess.Popen[bytes]
    root: Path
    log_path: Path
    region: str = REGION
    watchdog: subprocess.Popen[bytes] | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        """Stop LocalStack and its children (kinesis-local), then remove its private filesystem root."""
        if self._stopped:
            return
        self._stopped = True
        _stop_tree(self.process, timeout)
        if self.watchdog is not None and self.watchdog.poll() is None:
            self.watchdog.kill()
            self.watchdog.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _stop_tree(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to LocalStack, SIGKILL to whatever of it (kinesis-local's node) is left after ``timeout``.

    LocalStack stays in its parent's process group (no session of its own), so whoever kills the sandbox's group,
    even with SIGKILL, takes LocalStack and its children down too."""
    tree = [process.pid, *_descendants(process.pid)]  # before they are orphaned and reparented
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    for pid in [*tree, *_descendants(process.pid)]:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=5)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
        time.sleep(0.05)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Running and not a zombie (kill(2) succeeds on zombies, and an orphan's zombie may never be reaped here)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _private_root() -> Path:
    """A filesystem root of its own (state, tmp), with the shared, downloaded libraries linked in."""
    SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    SHARED_LIBS.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="localstack-", dir=SANDBOX_DIR))
    var_lib = root / "var" / "lib" / "localstack"
    var_lib.mkdir(parents=True)
    (var_lib / "lib").symlink_to(SHARED_LIBS, target_is_directory=True)
    return root


def start(port: int | None = None, services: Sequence[str] = SERVICES, timeout: float = 180,
          venv: Path = VENV_DIR, also_clean: Sequence[Path] = ()) -> LocalStack:
    """Start LocalStack on 127.0.0.1 and return once every service is ready and Kinesis has really started.

    If this process dies without stopping it, a watchdog kills what runs under LocalStack's root and ``also_clean``
    (e.g. the caller's work directory) and removes them."""
    if not is_installed(venv):
        raise LocalStackError(f"LocalStack is not installed in {venv}: run `python -m tools.sandbox.localstack "
                              "--install` (or `make localstack`)")
    port = port or free_port()
    if not port_is_free(port):
        raise LocalStackError(f"port {port} on 127.0.0.1 is busy: choose another with --localstack-port")
    root = _private_root()
    log_path = root / "localstack.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_", "PYTHON"))},
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(root),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": ",".join(services),
        "EAGER_SERVICE_LOADING": "1",
        "PERSISTENCE": "0",
        "DNS_ADDRESS": "0",  # no DNS server: it would bind port 53 and look for upstream resolvers
        "KINESIS_LATENCY": "0",  # LocalStack delays stream creation by 500 ms by default
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",  # no analytics
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(venv_python(venv)), "-m", "localstack.runtime.main"], cwd=root, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    instance = LocalStack(url=f"http://127.0.0.1:{port}", process=process, root=root, log_path=log_path,
                          watchdog=_start_watchdog([root, *also_clean]))
    try:
        wait_ready(instance, services, timeout)
    except BaseException:
        instance.stop()
        raise
    return instance


def wait_ready(instance: LocalStack, services: Sequence[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not services_ready(health(instance.url), services):
        if instance.process.poll() is not None:
            raise LocalStackError(f"LocalStack exited with {instance.process.returncode}:\n{instance.log_tail()}")
        if time.monotonic() > deadline:
            raise LocalStackError(f"LocalStack did not become ready in {timeout:.0f} s:\n{instance.log_tail()}")
        time.sleep(0.1)
    if "kinesis" in services:
        # Kinesis starts kinesis-local (fetched from npm the first time) on its first request.
        _until(lambda: instance.client("kinesis").list_streams(Limit=1), instance, deadline, "Kinesis")


def _until(call: Any, instance: LocalStack, deadline: float, what: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    while True:
        try:
            call()
            return
        except (BotoCoreError, ClientError) as error:
            if instance.process.poll() is not None or time.monotonic() > deadline:
                raise LocalStackError(f"{what} in LocalStack did not answer: {error}\n{instance.log_tail()}") \
                    from error
            time.sleep(0.2)


def install(venv: Path = VENV_DIR) -> dict[str, float]:
    """Venv plus kinesis-local; returns the seconds each step took."""
    figures: dict[str, float] = {}
    began = time.monotonic()
    installed = install_venv(venv)
    figures["venv_seconds" if installed else "venv_check_seconds"] = time.monotonic() - began
    began = time.monotonic()
    instance = start(venv=venv)
    figures["start_seconds"] = time.monotonic() - began
    instance.stop()
    return figures


def _start_watchdog(roots: Sequence[Path]) -> subprocess.Popen[bytes]:
    """A process in a session of its own that stops LocalStack if this process dies without stopping it (SIGKILL):
    kinesis-local runs in a session of its own too, so killing our process group would leave it running."""
    return subprocess.Popen([sys.executable, "-m", "tools.sandbox.localstack", "--watchdog", str(os.getpid()),
                             *map(str, roots)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _under(pid: int, root: Path) -> bool:
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return cwd.startswith(str(root)) or str(root) in command


def watchdog(parent: int, roots: Sequence[Path], poll_seconds: float = 0.2) -> None:
    """Once ``parent`` is gone, kill everything still running under ``roots`` (LocalStack, kinesis-local, whatever
    the caller started there) and remove them."""
    # A normal stop kills this watchdog; LocalStack dying alone (or with the parent, in one SIGKILL of the group)
    # changes nothing: wait for the parent.
    while _alive(parent):
        time.sleep(poll_seconds)
    # Nobody will read this LocalStack's state again: no graceful shutdown needed.
    victims = [pid for pid in (int(s.parent.name) for s in Path("/proc").glob("[0-9]*/stat"))
               if pid != os.getpid() and _alive(pid) and any(_under(pid, root) for root in roots)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.05)
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="create the venv and fetch kinesis-local")
    parser.add_argument("--measure", action="store_true", help="print cold (fresh libs) and warm start times")
    parser.add_argument("--watchdog", nargs="+", metavar="PARENT ROOT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.watchdog:
            watchdog(int(args.watchdog[0]), [Path(r) for r in args.watchdog[1:]])
        elif args.measure:
            install_venv()
            shutil.rmtree(SHARED_LIBS, ignore_errors=True)
            for label in ("cold (kinesis-local fetched from npm)", "warm"):
                began = time.monotonic()
                instance = start()
                ready = time.monotonic()
                instance.stop()
                stopped = time.monotonic() - ready
                print(f"LocalStack {label}: ready in {ready - began:.1f} s, stopped in {stopped:.1f} s")
        elif args.install:
            for name, seconds in install().items():
                print(f"localstack {name.replace('_', ' ')}: {seconds:.1f}")
        else:
            parser.print_help()
    except LocalStackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
