"""Pytest plugin for the sandbox tests: one LocalStack for the whole session, always stopped.

``tests/conftest.py`` loads it as a plugin (``pytest_plugins``), so the session-scoped fixture is shared by every
module that asks for it, and nothing starts for the others.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tools.sandbox import collect_api
from tools.sandbox import localstack as ls
from tools.synth import Synthesis


@pytest.fixture(scope="session")
def localstack() -> Iterator[ls.LocalStack]:
    try:
        ls.install_venv()
        instance = ls.start()
    except ls.LocalStackError as error:
        pytest.fail(f"LocalStack could not start: {error}")
    try:
        yield instance
    finally:
        instance.stop()


@contextlib.contextmanager
def deployed_api(localstack: ls.LocalStack, synthesis: Synthesis) -> Iterator[collect_api.CollectionApi]:
    """The synthesized collection API and its stream in LocalStack, deleted afterwards."""
    deployed = collect_api.deploy(synthesis, localstack.client("apigateway"), localstack.client("kinesis"),
                                  localstack.url)
    try:
        yield deployed
    finally:
        localstack.client("apigateway").delete_rest_api(restApiId=deployed.created.api_id)
        localstack.client("kinesis").delete_stream(StreamName=deployed.spec.stream_name,
                                                   EnforceConsumerDeletion=True)


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record the stream holds, from every shard, oldest first per shard."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"] or page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return records


def wait_for(condition: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
