"""LambdaHost runs a handler module in its own process, the way Lambda would, behind the Invoke API's shape."""

from __future__ import annotations

import json
import os
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tools.sandbox.lambda_host import (
    FunctionSpec,
    LambdaHost,
    LambdaStartError,
    sandbox_environment,
)
from tools.synth import synthesize_stack

REPO = Path(__file__).resolve().parent.parent

HANDLERS = {
    "probe": """
        import os, sys
        import boto3  # the runtime's package
        import aws_lambda_powertools  # the layer's package
        from common import marker

        def handler(event, context):
            return {"event": event, "env": dict(os.environ), "path": sys.path, "cwd": os.getcwd(),
                    "marker": marker, "requestId": context.aws_request_id, "name": context.function_name,
                    "arn": context.invoked_function_arn, "memory": context.memory_limit_in_mb,
                    "remaining": context.get_remaining_time_in_millis()}
    """,
    "boom": """
        def handler(event, context):
            if event.get("fail"):
                raise ValueError("the handler failed on purpose")
            return {"ok": True}
    """,
    "slow": """
        import os, time

        def handler(event, context):
            time.sleep(event.get("sleep", 0))
            return {"pid": os.getpid()}
    """,
    "exits": """
        import os

        def handler(event, context):
            if event.get("exit"):
                os._exit(3)
            return {"pid": os.getpid()}
    """,
    "broken": """
        raise RuntimeError("cannot initialise: missing configuration")

        def handler(event, context):
            return None
    """,
    "notjson": """
        def handler(event, context):
            return {"when": object()}
    """,
    "needs_yaml": """
        import yaml  # installed in the venv, but neither in Lambda's runtime nor in the Powertools layer

        def handler(event, context):
            return {"yaml": yaml.__name__}
    """,
}


@pytest.fixture(scope="module")
def handlers_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("handlers")
    (root / "common").mkdir()
    (root / "common" / "__init__.py").write_text('marker = "shared package"\n')
    for name, source in HANDLERS.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    return root


@pytest.fixture()
def start(handlers_root: Path, tmp_path: Path) -> Iterator[object]:
    hosts: list[LambdaHost] = []

    def _start(module: str, environment: dict[str, str] | None = None, timeout: float = 5.0,
               **kwargs: object) -> LambdaHost:
        host = LambdaHost.start(module, environment or {"AWS_DEFAULT_REGION": "eu-west-1"}, timeout,
                                tmp_path / module, handlers_root=handlers_root, **kwargs)  # type: ignore[arg-type]
        hosts.append(host)
        return host

    try:
        yield _start
    finally:
        for host in hosts:
            host.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_handler_runs_with_the_package_the_callers_environment_and_a_lambda_context(
        start: object, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a variable only the parent process has, and a host started with an explicit environment
    monkeypatch.setenv("SANDBOX_PARENT_ONLY", "leak")
    host = start("probe", {"AWS_DEFAULT_REGION": "eu-west-1", "FEATURE": "on"}, 7.0,  # type: ignore[operator]
                 function_name="cp-dev-probe", memory_mb=512)
    # WHEN it is invoked twice
    first, second = host.invoke({"hello": "world"}), host.invoke({})
    # THEN the handler saw the event, the shared package, only the passed and Lambda's own variables
    body = first.payload
    assert first.function_error is None and body["event"] == {"hello": "world"}
    assert body["marker"] == "shared package"
    assert body["env"]["FEATURE"] == "on" and "SANDBOX_PARENT_ONLY" not in body["env"]
    assert body["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "cp-dev-probe" and body["env"]["AWS_REGION"] == "eu-west-1"
    assert body["env"]["_HANDLER"] == "probe.handler"
    # the package is the working directory and first on the path; the repository is not importable
    assert Path(body["cwd"]) == host.workdir / "package" and body["path"][0] == str(host.workdir / "package")
    assert str(REPO) not in body["path"] and not any("site-packages" in p for p in body["path"])
    # and a context like Lambda's, with a fresh request id per call
    assert body["name"] == "cp-dev-probe" and body["memory"] == 512
    assert body["arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:cp-dev-probe"
    assert 6000 < body["remaining"] <= 7000
    assert body["requestId"] == first.request_id != second.request_id == second.payload["requestId"]


def test_a_raising_handler_is_an_unhandled_function_error_and_the_host_keeps_serving(start: object) -> None:
    # GIVEN a running host
    host = start("boom")  # type: ignore[operator]
    pid = host.pid
    # WHEN the handler raises
    failed = host.invoke({"fail": True})
    # THEN the result carries Lambda's error shape, and the same process answers the next call
    assert failed.function_error == "Unhandled"
    assert failed.payload["errorType"] == "ValueError"
    assert failed.payload["errorMessage"] == "the handler failed on purpose"
    assert host.invoke({}).payload == {"ok": True} and host.pid == pid
    assert "the handler failed on purpose" in host.logs()


def test_a_reply_that_is_not_json_is_a_marshal_error(start: object) -> None:
    result = start("notjson").invoke({})  # type: ignore[operator]
    assert result.function_error == "Unhandled" and result.payload["errorType"] == "Runtime.MarshalError"


def test_a_handler_past_its_timeout_times_out_and_the_next_call_gets_a_fresh_runtime(start: object) -> None:
    # GIVEN a function with a 1 s timeout
    host = start("slow", timeout=1.0)  # type: ignore[operator]
    first_pid = host.invoke({}).payload["pid"]
    # WHEN one invocation runs past it
    result = host.invoke({"sleep": 3})
    # THEN it fails like Lambda's timeout, and the next invocation runs in a new process
    assert result.function_error == "Unhandled" and result.payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result.payload["errorMessage"]
    assert result.duration_ms < 2500
    assert host.invoke({}).payload["pid"] != first_pid
    assert not _alive(first_pid)


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_handler_that_exits_the_process_is_a_runtime_exit_error_then_a_cold_start(start: object) -> None:
    host = start("exits")  # type: ignore[operator]
    first_pid = host.invoke({}).payload["pid"]
    result = host.invoke({"exit": True})
    assert result.function_error == "Unhandled" and result.payload["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in result.payload["errorMessage"]
    assert host.invoke({}).payload["pid"] != first_pid


def test_an_import_error_fails_the_start_with_the_log_and_leaves_no_process(start: object, tmp_path: Path) -> None:
    # WHEN the handler module raises at import (Lambda's init phase)
    with pytest.raises(LambdaStartError, match="cannot initialise: missing configuration"):
        start("broken")  # type: ignore[operator]
    # THEN no runtime of it is left behind
    assert _processes_running(str(tmp_path / "broken")) == []


def test_layer_mode_refuses_packages_lambda_would_not_have_and_venv_mode_has_them(start: object) -> None:
    # GIVEN a handler importing a package outside the runtime and the layer
    with pytest.raises(LambdaStartError, match="No module named 'yaml'"):
        start("needs_yaml")  # type: ignore[operator]
    # WHEN the whole venv is on the path instead, THEN it imports
    assert start("needs_yaml", packages="venv").invoke({}).payload == {"yaml": "yaml"}  # type: ignore[operator]


def test_bad_arguments_are_refused_before_anything_starts(handlers_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="packages must be"):
        LambdaHost.start("boom", {}, 3, tmp_path, handlers_root=handlers_root, packages="docker")
    with pytest.raises(ValueError, match="timeout_seconds must be positive"):
        LambdaHost.start("boom", {}, 0, tmp_path, handlers_root=handlers_root)
    with pytest.raises(Exception, match="not found"):
        LambdaHost.start("missing", {}, 3, tmp_path, handlers_root=handlers_root)


def test_stop_leaves_no_process_and_a_stopped_host_refuses_calls(start: object) -> None:
    # GIVEN a running host, used as a context manager
    with start("boom") as host:  # type: ignore[operator]
        pid = host.pid
        assert pid is not None and _alive(pid)
    # THEN leaving it stopped the process, and invoking again is refused
    assert not _alive(pid) and _processes_running(str(host.workdir)) == []
    with pytest.raises(RuntimeError, match="stopped"):
        host.invoke({})


def test_the_transport_is_lambdas_invoke_path_on_loopback(start: object) -> None:
    host = start("boom")  # type: ignore[operator]
    assert host.url.startswith("http://127.0.0.1:") and host.url.endswith("/2015-03-31/functions/function/invocations")
    request = urllib.request.Request(host.url, data=b'{"fail": true}', method="POST")
    with urllib.request.urlopen(request, timeout=5) as reply:
        assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
        assert json.loads(reply.read())["errorType"] == "ValueError"


def test_the_real_items_handler_runs_with_its_synthesized_environment_against_local_endpoints(
        moto_endpoint: str, tmp_path: Path) -> None:
    # GIVEN the items function as the dev stack declares it, pointed at a local S3 and SSM
    spec = FunctionSpec.from_synthesis(synthesize_stack("dev", preview=False), "items")
    endpoints = {"AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_ENDPOINT_URL_SSM": moto_endpoint}
    environment = sandbox_environment(spec, endpoints, "eu-west-1")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket=spec.environment["DATA_BUCKET"],
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    body = {"items": [{"itemId": "post-1", "creationTimestamp": 1_790_000_000, "category": "news"}]}
    # WHEN a proxy event for POST /items is invoked
    with LambdaHost.start("items", environment, spec.timeout_seconds, tmp_path, function_name=spec.name,
                          memory_mb=spec.memory_mb) as host:
        result = host.invoke({"httpMethod": "POST", "body": json.dumps(body), "requestContext": {"requestId": "r"}})
    # THEN the handler stored the item through the local endpoint (no items dataset yet: pending)
    assert result.function_error is None and result.payload["statusCode"] == 200
    assert json.loads(result.payload["body"]) == {"stored": 1, "sentToPersonalize": 0, "pending": 1}
    assert s3.get_object(Bucket=spec.environment["DATA_BUCKET"], Key="items/by-id/post-1.json")["Body"].read()


def test_function_spec_requires_exactly_one_matching_function() -> None:
    with pytest.raises(LookupError, match=r"no_such_module\.handler"):
        FunctionSpec.from_synthesis(synthesize_stack("dev", preview=False), "no_such_module")


def test_sandbox_environment_adds_fake_credentials_and_refuses_non_endpoint_variables() -> None:
    spec = FunctionSpec("f", "m", {"A": "1"}, 3.0, 128, "INFO")
    env = sandbox_environment(spec, {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"}, "eu-west-1", {"A": "2"})
    assert env["A"] == "2" and env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "1" and env["AWS_LAMBDA_LOG_LEVEL"] == "INFO"
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        sandbox_environment(spec, {"S3": "http://127.0.0.1:1"}, "eu-west-1")
