"""The rules added for issue 13 answer through the analyzer protocol too: the served pack (started as the CLI starts
it) rejects a public key policy, a silent alarm and out-of-range stream settings, and accepts their fixes."""

from __future__ import annotations

import json

import pytest
from pulumi.runtime.proto import analyzer_pb2_grpc

from tests.test_policy_pack_server import analyze, analyzer

__all__ = ["analyzer"]

ACCOUNT = "123456789012"
ROOT_ONLY: dict[str, object] = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                "Action": "kms:*", "Resource": "*"}
EVERYONE: dict[str, object] = {"Effect": "Allow", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"}
SNS_TOPIC = f"arn:aws:sns:eu-west-1:{ACCOUNT}:cp-dev-euw1-alarms"


def key(*statements: dict[str, object]) -> dict[str, object]:
    return {"enableKeyRotation": True, "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


@pytest.mark.parametrize(("type_", "props", "expected"), [
    ("aws:kms/key:Key", key(ROOT_ONLY), []),
    ("aws:kms/key:Key", key(ROOT_ONLY, EVERYONE), [("kms-key-policy-no-public-principal", "mandatory")]),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", {"alarmActions": [SNS_TOPIC]}, []),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", {"okActions": [SNS_TOPIC]},
     [("cloudwatch-metricalarm-actions", "mandatory")]),
    ("aws:kinesis/stream:Stream", {"encryptionType": "KMS", "kmsKeyId": "k", "retentionPeriod": 24,
                                   "streamModeDetails": {"streamMode": "PROVISIONED"}, "shardCount": 1}, []),
    ("aws:kinesis/stream:Stream", {"encryptionType": "KMS", "kmsKeyId": "k", "retentionPeriod": 23,
                                   "streamModeDetails": {"streamMode": "PROVISIONED"}, "shardCount": 0},
     [("kinesis-stream-retention", "mandatory"), ("kinesis-stream-shard-count", "mandatory")]),
], ids=["key-private", "key-public", "alarm-notifies", "alarm-silent", "stream-minimums", "stream-below-minimums"])
def test_the_served_pack_applies_the_new_rules(analyzer: analyzer_pb2_grpc.AnalyzerStub, type_: str,
                                               props: dict[str, object], expected: list[tuple[str, str]]) -> None:
    assert sorted(analyze(analyzer, type_, props)) == expected
