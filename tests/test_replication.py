"""Cross-region replication of the raw bucket (the prod-eu stack file enables it)."""

from __future__ import annotations

import json

import pytest

from components.settings import SettingsError, parse_settings
from tools.synth import ACCOUNT_ID, stack_config, synthesize_stack


def test_the_replica_lives_in_its_region_encrypted_with_its_own_key() -> None:
    replica_region = stack_config("prod-eu")["clickstream-personalization:replicaRegion"]
    synthesis = synthesize_stack("prod-eu", preview=False)

    [replica_key] = [k for k in synthesis.of_type("aws:kms/key:Key") if "replica" in k.name]
    assert replica_key.outputs["arn"].startswith(f"arn:aws:kms:{replica_region}:")
    assert replica_key.inputs["enableKeyRotation"] is True
    [config] = synthesis.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    [rule] = config.inputs["rules"]
    assert rule["destination"]["bucket"] == f"arn:aws:s3:::cp-prod-euc1-raw-replica-{ACCOUNT_ID}"
    assert rule["destination"]["encryptionConfiguration"] == {"replicaKmsKeyId": replica_key.outputs["arn"]}
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    assert all(v.urn in config.dependencies for v in synthesis.of_type("aws:s3/bucketVersioning:BucketVersioning")
               if "-audit-" not in v.name)  # the audit bucket (tests/test_audit.py) is not replicated


def test_the_replication_role_reads_the_source_and_writes_the_replica_only() -> None:
    synthesis = synthesize_stack("prod-eu", preview=False)

    policy = synthesis.find("aws:iam/rolePolicy:RolePolicy", "cp-prod-euc1-replica-policy").inputs["policy"]
    by_sid = {s["Sid"]: s for s in json.loads(policy)["Statement"]}
    assert by_sid["ReadSourceVersions"]["Resource"] == f"arn:aws:s3:::cp-prod-euc1-raw-{ACCOUNT_ID}/*"
    assert by_sid["WriteReplica"]["Resource"] == f"arn:aws:s3:::cp-prod-euc1-raw-replica-{ACCOUNT_ID}/*"
    assert by_sid["EncryptReplica"]["Condition"] == {"StringLike": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}}


def test_stacks_without_a_replica_region_create_none() -> None:
    assert synthesize_stack("dev").of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig") == []


@pytest.mark.parametrize(("replica", "allowed"), [("eu-central-1", "must differ from the stack's region"),
                                                  ("sa-east-1", "must be one of the supported regions")])
def test_the_replica_region_must_be_another_supported_region(replica: str, allowed: str) -> None:
    with pytest.raises(SettingsError, match=f"replicaRegion = '{replica}' is invalid: {allowed}"):
        parse_settings({"environment": "prod", "replicaRegion": replica}, region="eu-central-1", stack="p")
