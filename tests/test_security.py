"""The stack key: rotated, aliased, and granted to the account root plus exactly the services that use it."""

from __future__ import annotations

import json
from fnmatch import fnmatch

import pytest

from components.security import (
    EncryptionKey,
    EncryptionKeyArgs,
    ServiceKeyGrant,
    key_policy_document,
    log_group_name_patterns,
)
from components.settings import StackSettings
from tests.conftest import Synthesize
from tools.synth import ACCOUNT_ID


def build_key(settings: StackSettings, extra: tuple[ServiceKeyGrant, ...] = ()) -> None:
    EncryptionKey("key", EncryptionKeyArgs(stack=settings, extra_grants=extra))


def test_key_rotates_waits_and_is_aliased_from_settings(settings: StackSettings, synth: Synthesize) -> None:
    synthesis = synth(lambda: build_key(settings))

    key = synthesis.find("aws:kms/key:Key", "key-key").inputs
    assert key["enableKeyRotation"] is True
    assert key["deletionWindowInDays"] == settings.kms_key_deletion_window_days
    alias = synthesis.find("aws:kms/alias:Alias", "key-alias").inputs
    assert alias["name"] == "alias/cp-dev-euw1"
    assert alias["targetKeyId"] == "key-key-id"


def test_key_policy_grants_root_this_regions_logs_for_this_stack_and_alarms(settings: StackSettings,
                                                                         synth: Synthesize) -> None:
    synthesis = synth(lambda: build_key(settings))

    policy = json.loads(synthesis.find("aws:kms/key:Key", "key-key").inputs["policy"])
    root, logs, alarms, *audit = policy["Statement"]
    assert [s["Sid"] for s in audit] == ["AllowTheAuditTrailToEncryptItsRecords",
                                         "AllowTheAuditTrailToDescribeTheKey"]  # tests/test_audit.py
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert "kms:*" not in logs["Action"]
    allowed = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert allowed == [f"arn:aws:logs:eu-west-1:{ACCOUNT_ID}:log-group:{name}" for name in (
        "/aws/lambda/cp-dev-euw1-*", "/aws/vendedlogs/cp-dev-euw1/*", "aws-waf-logs-cp-dev-euw1-*",
        "API-Gateway-Execution-Logs_*")]


def test_extra_grants_are_appended_to_the_key_policy(settings: StackSettings, synth: Synthesize) -> None:
    grant = ServiceKeyGrant("AllowKinesis", "kinesis.amazonaws.com", ("kms:GenerateDataKey",),
                            {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}})

    synthesis = synth(lambda: build_key(settings, (grant,)))

    statements = json.loads(synthesis.find("aws:kms/key:Key", "key-key").inputs["policy"])["Statement"]
    assert statements[-1] == {"Sid": "AllowKinesis", "Effect": "Allow",
                              "Principal": {"Service": "kinesis.amazonaws.com"}, "Action": ["kms:GenerateDataKey"],
                              "Resource": "*", "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}}


def test_duplicate_grant_sids_are_refused() -> None:
    grant = ServiceKeyGrant("Same", "sqs.amazonaws.com")

    with pytest.raises(ValueError, match="unique Sids"):
        key_policy_document(ACCOUNT_ID, "aws", [grant, grant])


def test_log_group_patterns_cover_lambda_log_groups_only_of_this_stack(settings: StackSettings) -> None:
    patterns = log_group_name_patterns(settings)

    assert any(fnmatch(f"/aws/lambda/{settings.physical_name('event-processor')}", p) for p in patterns)
    assert not any(fnmatch("/aws/lambda/cp-prod-euw1-event-processor", p) for p in patterns)
