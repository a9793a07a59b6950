"""Fixtures shared by the suite: settings, offline synthesis of programs, and handler trees."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from components.function import HANDLERS_ROOT
from components.settings import StackSettings, parse_settings
from tools.policy_eval import Finding
from tools.synth import Synthesis, synthesize

REGION = "eu-west-1"
# LocalStack, once per session for the tests that ask for it (started only then).
pytest_plugins = ["tests.sandbox_fixtures"]
Synthesize = Callable[..., Synthesis]


class FakeLambdaContext:
    """What Powertools reads from a Lambda context."""

    function_name = "cp-dev-euw1-fn"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:cp-dev-euw1-fn"
    aws_request_id = "req-1"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def settings() -> StackSettings:
    return parse_settings({"environment": "dev"}, region=REGION, stack="dev")


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto in server mode on 127.0.0.1, for functions running in their own processes (the sandbox's hosts)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto's backends are process-wide: start from empty, whatever another test module left behind
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST"),
                               timeout=10).close()
        yield endpoint
    finally:
        server.stop()


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


# IAM policy documents embed ARNs AWS assigns, so during a preview the IAM rules can only be advisory (as in the real
# analyzer); at update time they are enforced.
PREVIEW_ADVISORY_POLICIES = {"iam-policy-no-wildcard-actions", "iam-policy-no-wildcard-resources",
                             "iam-policy-no-kms-decrypt-all-keys"}


def assert_policy_pack_passes(findings: list[Finding], preview: bool) -> None:
    assert [f for f in findings if f.level == "mandatory"] == []
    advisory = {f.policy for f in findings if f.level == "advisory"}
    assert advisory <= (PREVIEW_ADVISORY_POLICIES if preview else set()), advisory
