"""The pack runs unchanged under the real analyzer protocol: start ``policies/__main__.py`` as the CLI would and
talk to it over gRPC on loopback (GetAnalyzerInfo, Analyze), as ``pulumi preview --policy-pack policies`` does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from clickstream_policies import PACK_NAME, POLICIES
from tools.synth import ROOT


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    policies_dir = ROOT / "policies"
    process = subprocess.Popen([sys.executable, "__main__.py"], cwd=policies_dir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(policies_dir)})
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().decode().strip())  # the pack prints its port, then serves
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=30)


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, type_: str, props: dict[str, object]) -> list[tuple[str, str]]:
    properties = struct_pb2.Struct()
    properties.update(props)
    response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
        type=type_, properties=properties, name="k", urn=f"urn:pulumi:dev::clickstream-personalization::{type_}::k"))
    levels = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory"}
    return [(d.policyName, levels.get(d.enforcementLevel, str(d.enforcementLevel))) for d in response.diagnostics]


def test_the_served_pack_lists_every_policy_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())

    assert info.name == PACK_NAME
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in POLICIES)
    assert {p.enforcementLevel for p in info.policies} <= {analyzer_pb2.MANDATORY}


def test_the_served_pack_rejects_a_key_without_rotation(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    assert analyze(analyzer, "aws:kms/key:Key", {"enableKeyRotation": True}) == []
    assert analyze(analyzer, "aws:kms/key:Key", {"enableKeyRotation": False}) == [
        ("kms-key-rotation-enabled", "mandatory")]


def test_the_served_pack_turns_unknown_values_into_advisories(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unknown_number = "3eeb2bf0-c639-47a8-9e75-3b44932eb421"

    findings = analyze(analyzer, "aws:cloudwatch/logGroup:LogGroup",
                       {"kmsKeyId": "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "retentionInDays": unknown_number})

    assert findings == [("cloudwatch-loggroup-retention", "advisory")]
