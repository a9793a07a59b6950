"""Run one real handler module the way Lambda would, in its own subprocess, behind Lambda's Invoke API shape.

Interface::

    LambdaHost.start(module: str, environment: Mapping[str, str], timeout_seconds: float, workdir: Path, *,
                     function_name: str | None = None, memory_mb: int = 128,
                     handlers_root: Path = <repo>/handlers, packages: str = "layer",
                     startup_timeout_seconds: float = 30.0) -> LambdaHost
        # builds the deployment package in ``workdir`` (one per host: package/, layer/, runtime/, function.log),
        # starts the runtime, returns once the handler module is imported and GET /_sandbox/health answers;
        # raises LambdaStartError (with the log tail) when the import fails or the runtime never answers
    host.invoke(event: dict) -> InvokeResult(payload, function_error: str | None, request_id, duration_ms)
        # function_error is "Unhandled" (payload {"errorType", "errorMessage", "stackTrace"}) when the handler
        # raised, returned something that is not JSON, or ran past the timeout ("Sandbox.Timedout"): like the
        # X-Amz-Function-Error header of Lambda's Invoke API. The host keeps serving after a handler error; after a
        # timeout the runtime is replaced (the next invoke is a cold start), as Lambda does; a handler that exits the
        # process gets "Runtime.ExitError", and the next invoke is a cold start too.
    host.url           # http://127.0.0.1:<port>/2015-03-31/functions/function/invocations (POST the event JSON)
    host.pid, host.log_path, host.logs() -> str   # the function's stdout/stderr (Powertools' JSON logs, EMF)
    host.stop()        # terminates the runtime and waits for it; also on leaving ``with LambdaHost.start(...)``
    FunctionSpec.from_synthesis(synthesis, module) -> FunctionSpec(name, module, environment, timeout_seconds,
                                                                  memory_mb)   # what the stack declares
    sandbox_environment(spec, endpoints: Mapping[str, str], region: str, overrides=None) -> dict[str, str]

What is the same as Lambda: the deployment package laid out by ``tools.lambda_sandbox.build_package`` (the handler
module at the root, the ``common`` package) is the working directory and first on the path; the process gets only
the environment the caller passes plus the variables Lambda's runtime itself defines (``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``, ``AWS_LAMBDA_FUNCTION_VERSION``, ``AWS_REGION``, ``LAMBDA_TASK_ROOT``,
``_HANDLER``, ``AWS_EXECUTION_ENV``, ``AWS_LAMBDA_LOG_GROUP_NAME``, ``AWS_LAMBDA_LOG_STREAM_NAME``, ``LANG``,
``TZ``, ``PATH``; the caller's values win), nothing inherited from the parent, so no real credentials leak in; one
invocation at a time (one execution environment); a context object with ``get_remaining_time_in_millis()``
counting down from the timeout, ``function_name``, ``function_version``, ``invoked_function_arn``,
``memory_limit_in_mb``, a fresh ``aws_request_id`` per call, ``log_group_name`` and ``log_stream_name``.

What differs: the interpreter is this machine's (Python 3.11 here, ``python3.13`` in the stack); the libraries are
this environment's installed boto3/botocore and Powertools, not the runtime's boto3 and the pinned Powertools layer
version. With ``packages="layer"`` (default) the process runs without site-packages and sees exactly the packages
``tools.lambda_sandbox`` lists for the runtime and the layer (linked from this venv), so a handler that imports
anything else fails here as it would in Lambda; ``packages="venv"`` puts the whole venv's site-packages on the path
instead. Memory is not limited, the timeout is enforced by abandoning the runtime, there is no X-Ray daemon
(pass ``POWERTOOLS_TRACE_DISABLED=1``) and logs go to a file instead of CloudWatch.

The runtime half of this file (``_serve``) runs as a script in the child with only the standard library imported;
the parent-side imports (``tools.*``) are deferred so that the child never puts the repository on its path.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
HEALTH_PATH = "/_sandbox/health"
ACCOUNT_ID = "123456789012"
REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
# Invocations longer than the function's timeout are abandoned; the HTTP wait gets this margin on top.
_TRANSPORT_MARGIN_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------------------------
# Child side: the runtime (standard library only).
# ---------------------------------------------------------------------------------------------------------------

class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers and Powertools read."""

    def __init__(self, *, function_name: str, memory_mb: int, region: str, timeout_seconds: float,
                 log_group: str, log_stream: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = log_group
        self.log_stream_name = log_stream
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _error_payload(error: BaseException) -> dict[str, Any]:
    return {"errorMessage": str(error), "errorType": type(error).__name__,
            "requestId": "", "stackTrace": traceback.format_tb(error.__traceback__)}


class _Runtime:
    def __init__(self, handler: Any, *, function_name: str, memory_mb: int, region: str,
                 timeout_seconds: float, log_group: str, log_stream: str) -> None:
        self.handler = handler
        self.function_name, self.memory_mb, self.region = function_name, memory_mb, region
        self.timeout_seconds, self.log_group, self.log_stream = timeout_seconds, log_group, log_stream
        self.timed_out = False

    def invoke(self, event: Any) -> tuple[dict[str, str], bytes]:
        """Headers and body of the Invoke reply for ``event``."""
        context = LambdaContext(function_name=self.function_name, memory_mb=self.memory_mb, region=self.region,
                                timeout_seconds=self.timeout_seconds, log_group=self.log_group,
                                log_stream=self.log_stream)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = self.handler(event, context)
            except BaseException as error:  # noqa: BLE001 (whatever the handler raises is the function's error)
                outcome["error"] = error

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(self.timeout_seconds)
        headers = {"X-Amz-Request-Id": context.aws_request_id, "X-Amz-Executed-Version": "$LATEST"}
        if worker.is_alive():
            self.timed_out = True
            message = f"Task timed out after {self.timeout_seconds:.2f} seconds"
            print(json.dumps({"level": "ERROR", "requestId": context.aws_request_id, "message": message}), flush=True)
            body = {"errorMessage": message, "errorType": "Sandbox.Timedout", "requestId": context.aws_request_id}
            return {**headers, "X-Amz-Function-Error": "Unhandled"}, json.dumps(body).encode()
        if "error" in outcome:
            error = outcome["error"]
            payload = _error_payload(error)
            payload["requestId"] = context.aws_request_id
            traceback.print_exception(error)
            return {**headers, "X-Amz-Function-Error": "Unhandled"}, json.dumps(payload).encode()
        try:
            return headers, json.dumps(outcome.get("result")).encode()
        except (TypeError, ValueError) as error:
            payload = {"errorMessage": f"Unable to marshal response: {error}", "errorType": "Runtime.MarshalError",
                       "requestId": context.aws_request_id}
            return {**headers, "X-Amz-Function-Error": "Unhandled"}, json.dumps(payload).encode()


def _make_handler_class(runtime: _Runtime, module: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:
            if self.path != HEALTH_PATH:
                self._send(404, {}, json.dumps({"message": "not found"}).encode())
                return
            self._send(200, {}, json.dumps({"module": module, "pid": os.getpid()}).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path != INVOKE_PATH:
                self._send(404, {}, json.dumps({"message": "not found"}).encode())
                return
            try:
                event = json.loads(body or b"{}")
            except ValueError:
                self._send(400, {"x-amzn-ErrorType": "InvalidRequestContentException"},
                           json.dumps({"Type": "User", "message": "Could not parse request body into json"}).encode())
                return
            headers, payload = runtime.invoke(event)
            self._send(200, headers, payload)
            if runtime.timed_out:  # the execution environment is not reused after a timeout
                self.wfile.flush()
                os._exit(0)

        def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json",
                                "Content-Length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _serve(argv: list[str]) -> None:
    """Child entry point: ``lambda_host.py <spec.json>``; imports the handler, serves, reports its port."""
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    sys.path[:0] = spec["path"]
    os.chdir(spec["path"][0])
    import importlib

    handler = importlib.import_module(spec["module"]).handler
    runtime = _Runtime(handler, function_name=spec["function_name"], memory_mb=spec["memory_mb"],
                       region=spec["region"], timeout_seconds=spec["timeout_seconds"],
                       log_group=spec["log_group"], log_stream=spec["log_stream"])
    server = HTTPServer(("127.0.0.1", 0), _make_handler_class(runtime, spec["module"]))
    ready = Path(spec["ready_file"])
    partial = ready.with_suffix(".tmp")
    partial.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}), encoding="utf-8")
    partial.replace(ready)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    server.serve_forever()


# ---------------------------------------------------------------------------------------------------------------
# Parent side.
# ---------------------------------------------------------------------------------------------------------------

class LambdaStartError(RuntimeError):
    """The runtime did not come up: the handler failed to import, or the health check never answered."""


@dataclass(frozen=True)
class InvokeResult:
    payload: Any
    function_error: str | None
    request_id: str
    duration_ms: float


@dataclass(frozen=True)
class FunctionSpec:
    """What the synthesized stack declares for one function."""

    name: str
    module: str
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_mb: int
    log_level: str | None = None

    @classmethod
    def from_synthesis(cls, synthesis: Any, module: str) -> FunctionSpec:
        """The ``aws:lambda/function:Function`` whose handler is ``<module>.handler``."""
        functions = [r for r in synthesis.of_type("aws:lambda/function:Function")
                     if r.inputs.get("handler") == f"{module}.handler"]
        if len(functions) != 1:
            raise LookupError(f"expected one function with handler {module}.handler, found {len(functions)}")
        inputs = functions[0].inputs
        variables = (inputs.get("environment") or {}).get("variables") or {}
        return cls(name=str(inputs.get("name") or functions[0].name), module=module,
                   environment={str(k): str(v) for k, v in variables.items()},
                   timeout_seconds=float(inputs.get("timeout", 3.0)), memory_mb=int(inputs.get("memorySize", 128)),
                   log_level=(inputs.get("loggingConfig") or {}).get("applicationLogLevel"))


def sandbox_environment(spec: FunctionSpec, endpoints: Mapping[str, str], region: str,
                        overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The function's declared variables plus what the sandbox needs: endpoint overrides (e.g.
    ``{"AWS_ENDPOINT_URL_S3": ...}``), fake credentials, the region, tracing off; ``overrides`` win last."""
    bad = sorted(k for k in endpoints if not k.startswith("AWS_ENDPOINT_URL"))
    if bad:
        raise ValueError(f"endpoint variables must start with AWS_ENDPOINT_URL: {bad}")
    env = {**spec.environment, **endpoints, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": region,
           "POWERTOOLS_TRACE_DISABLED": "1"}
    if spec.log_level:
        env.setdefault("AWS_LAMBDA_LOG_LEVEL", spec.log_level)
    return {**env, **(overrides or {})}


def _runtime_variables(module: str, function_name: str, memory_mb: int, region: str, task_root: Path) -> dict[str, str]:
    return {"AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_REGION": region, "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": f"{module}.handler", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "sandbox/[$LATEST]local", "LANG": "en_US.UTF-8", "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin"}


class LambdaHost:
    def __init__(self, *, module: str, environment: Mapping[str, str], timeout_seconds: float, workdir: Path,
                 function_name: str, memory_mb: int, packages: str, startup_timeout_seconds: float) -> None:
        self.module = module
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.workdir = workdir
        self.log_path = workdir / "function.log"
        self._environment = dict(environment)
        self._memory_mb = memory_mb
        self._packages = packages
        self._startup_timeout = startup_timeout_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._port = 0
        self._lock = threading.Lock()

    @classmethod
    def start(cls, module: str, environment: Mapping[str, str], timeout_seconds: float, workdir: Path, *,
              function_name: str | None = None, memory_mb: int = 128, handlers_root: Path | None = None,
              packages: str = "layer", startup_timeout_seconds: float = 30.0) -> LambdaHost:
        from tools.lambda_sandbox import LAYER_PACKAGES, RUNTIME_PACKAGES, build_package, site_dir

        if packages not in ("layer", "venv"):
            raise ValueError(f"packages must be 'layer' or 'venv', got {packages!r}")
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        workdir = Path(workdir).resolve()
        for sub in ("package", "layer", "runtime"):
            shutil.rmtree(workdir / sub, ignore_errors=True)
        build_package(handlers_root or REPO_ROOT / "handlers", module, workdir / "package")
        if packages == "layer":
            site_dir(workdir / "layer", LAYER_PACKAGES)
            site_dir(workdir / "runtime", RUNTIME_PACKAGES)
        host = cls(module=module, environment=environment, timeout_seconds=timeout_seconds, workdir=workdir,
                   function_name=function_name or module, memory_mb=memory_mb, packages=packages,
                   startup_timeout_seconds=startup_timeout_seconds)
        host._launch()
        return host

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{INVOKE_PATH}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def logs(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def _launch(self) -> None:
        region = self._environment.get("AWS_REGION") or self._environment.get("AWS_DEFAULT_REGION") or "us-east-1"
        package = self.workdir / "package"
        path = [str(package)] + ([str(self.workdir / "layer"), str(self.workdir / "runtime")]
                                 if self._packages == "layer" else [])
        ready = self.workdir / "runtime.json"
        ready.unlink(missing_ok=True)
        spec = {"path": path, "module": self.module, "function_name": self.function_name,
                "memory_mb": self._memory_mb, "region": region, "timeout_seconds": self.timeout_seconds,
                "log_group": f"/aws/lambda/{self.function_name}", "log_stream": "sandbox/[$LATEST]local",
                "ready_file": str(ready)}
        spec_file = self.workdir / "runtime-spec.json"
        spec_file.write_text(json.dumps(spec), encoding="utf-8")
        env = {**_runtime_variables(self.module, self.function_name, self._memory_mb, region, package),
               **self._environment}
        # -I: no PYTHON* variables, no user site, no script directory on the path; -S (layer mode): no site-packages.
        flags = ["-I", "-u"] + (["-S"] if self._packages == "layer" else [])
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self._process = subprocess.Popen([sys.executable, *flags, str(Path(__file__).resolve()), str(spec_file)],
                                         cwd=package, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)
        try:
            self._port = self._wait_ready(ready)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, ready: Path) -> int:
        assert self._process is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise LambdaStartError(f"{self.module} exited with {self._process.returncode} during init:\n"
                                       f"{self._log_tail()}")
            if ready.exists():
                port = int(json.loads(ready.read_text(encoding="utf-8"))["port"])
                with contextlib.suppress(OSError), urllib.request.urlopen(
                        f"http://127.0.0.1:{port}{HEALTH_PATH}", timeout=2) as reply:
                    if reply.status == 200:
                        return port
            time.sleep(0.05)
        raise LambdaStartError(f"{self.module} did not answer its health check within {self._startup_timeout} s:\n"
                               f"{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        """Invoke the handler with ``event`` (RequestResponse); one at a time, like one execution environment."""
        with self._lock:
            if self._process is None:
                raise RuntimeError("the host is stopped")
            if self._process.poll() is not None:  # replaced after a timeout, or crashed: a cold start
                self._close_log()
                self._launch()
            request = urllib.request.Request(self.url, data=json.dumps(event).encode(), method="POST",  # noqa: S310
                                             headers={"Content-Type": "application/json"})
            started = time.perf_counter()
            wait = self.timeout_seconds + _TRANSPORT_MARGIN_SECONDS
            try:
                with urllib.request.urlopen(request, timeout=wait) as reply:  # noqa: S310 (our own loopback URL)
                    body = reply.read()
                    function_error = reply.headers.get("X-Amz-Function-Error")
                    request_id = reply.headers.get("X-Amz-Request-Id", "")
            except (ConnectionError, http.client.HTTPException) as error:
                # The runtime died during the call (the handler exited the process): Lambda's Runtime.ExitError.
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=5)
                if self._process.poll() is None:
                    raise
                message = f"Runtime exited with error: exit status {self._process.returncode} ({type(error).__name__})"
                return InvokeResult({"errorType": "Runtime.ExitError", "errorMessage": message}, "Unhandled", "",
                                    (time.perf_counter() - started) * 1000)
            duration = (time.perf_counter() - started) * 1000
            if function_error and self._process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    # After a timeout the runtime exits on its own; wait so the next call sees it gone.
                    if json.loads(body).get("errorType") == "Sandbox.Timedout":
                        self._process.wait(timeout=5)
            return InvokeResult(payload=json.loads(body) if body else None, function_error=function_error,
                                request_id=request_id, duration_ms=duration)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LambdaHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1:])
