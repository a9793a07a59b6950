"""Issue 13, item 6: reads and writes of readers' data are recorded by a CloudTrail trail in a locked-down bucket."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from components.settings import SettingsError, parse_settings
from tests.conftest import REGION
from tools.policy_eval import evaluate
from tools.synth import RegisteredResource, Synthesis, synthesize, synthesize_stack

TRAIL = "aws:cloudtrail/trail:Trail"
ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def dev() -> Synthesis:
    return synthesize_stack("dev", preview=False)


@pytest.fixture(scope="module")
def replicated() -> Synthesis:
    """A stack whose raw bucket is replicated to another region."""
    return synthesize({"aws:region": REGION, "clickstream-personalization:environment": "dev",
                       "clickstream-personalization:replicaRegion": "eu-central-1",
                       "clickstream-personalization:auditLogRetentionDays": "90"}, stack="dev", preview=False)


def one(synthesis: Synthesis, type_: str, suffix: str) -> RegisteredResource:
    [resource] = [r for r in synthesis.of_type(type_) if r.name.endswith(suffix)]
    return resource


def attached(synthesis: Synthesis, type_: str, bucket: RegisteredResource) -> list[RegisteredResource]:
    return [r for r in synthesis.of_type(type_) if bucket.urn in r.property_dependencies.get("bucket", [])]


def audit_bucket(synthesis: Synthesis) -> RegisteredResource:
    return one(synthesis, "aws:s3/bucket:Bucket", "-audit-bucket")


def test_the_trail_records_only_data_events_on_the_reader_data_prefixes_of_the_raw_bucket(dev: Synthesis) -> None:
    trail = one(dev, TRAIL, "-audit-trail")
    raw = f"arn:aws:s3:::cp-dev-euw1-raw-{ACCOUNT}"
    [selector] = trail.inputs["advancedEventSelectors"]
    fields = {f["field"]: f for f in selector["fieldSelectors"]}
    assert fields["eventCategory"]["equals"] == ["Data"]  # no management events: only data access is billed
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert fields["resources.ARN"]["startsWiths"] == [f"{raw}/events/", f"{raw}/errors/", f"{raw}/prepared/"]
    assert trail.inputs["isMultiRegionTrail"] is False and trail.inputs["enableLogFileValidation"] is True
    assert trail.inputs["kmsKeyId"] == one(dev, "aws:kms/key:Key", "-key-key").outputs["arn"]
    assert trail.inputs["name"] == "cp-dev-euw1-data-access"
    assert dev.outputs["auditTrailArn"] == trail.outputs["arn"]
    assert dev.outputs["auditBucket"] == audit_bucket(dev).outputs["bucket"]


def test_with_a_replica_one_multi_region_trail_also_records_the_replica(replicated: Synthesis) -> None:
    trail = one(replicated, TRAIL, "-audit-trail")
    [selector] = trail.inputs["advancedEventSelectors"]
    arns = next(f for f in selector["fieldSelectors"] if f["field"] == "resources.ARN")["startsWiths"]
    replica = f"arn:aws:s3:::cp-dev-euw1-raw-replica-{ACCOUNT}"
    assert {f"{replica}/events/", f"{replica}/errors/", f"{replica}/prepared/"} <= set(arns) and len(arns) == 6
    assert trail.inputs["isMultiRegionTrail"] is True


def test_the_audit_bucket_is_encrypted_versioned_private_and_owner_enforced(dev: Synthesis) -> None:
    bucket = audit_bucket(dev)
    [encryption] = attached(dev, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                 "BucketServerSideEncryptionConfiguration", bucket)
    [rule] = encryption.inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms" and rule["bucketKeyEnabled"]
    [versioning] = attached(dev, "aws:s3/bucketVersioning:BucketVersioning", bucket)
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    [block] = attached(dev, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", bucket)
    assert all(block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                  "restrictPublicBuckets"))
    [ownership] = attached(dev, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", bucket)
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_the_bucket_policy_admits_only_this_trail_and_forbids_deleting_records(dev: Synthesis) -> None:
    [policy] = attached(dev, "aws:s3/bucketPolicy:BucketPolicy", audit_bucket(dev))
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    trail_arn = f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/cp-dev-euw1-data-access"
    bucket_arn = f"arn:aws:s3:::cp-dev-euw1-audit-{ACCOUNT}"
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["DenyDeletingRecords"] == {
        "Sid": "DenyDeletingRecords", "Effect": "Deny", "Principal": "*",
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": f"{bucket_arn}/*"}
    check, write = statements["CloudTrailChecksTheBucket"], statements["CloudTrailWritesThisTrailsRecords"]
    assert check["Condition"] == {"StringEquals": {"aws:SourceArn": trail_arn}}
    assert write["Resource"] == f"{bucket_arn}/AWSLogs/{ACCOUNT}/*" and write["Action"] == "s3:PutObject"
    assert write["Condition"]["StringEquals"]["aws:SourceArn"] == trail_arn
    allowed = [s for s in statements.values() if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"]) for s in allowed} == {'{"Service": "cloudtrail.amazonaws.com"}'}


def test_the_stack_key_serves_cloudtrail_for_this_trail_only(dev: Synthesis) -> None:
    key = one(dev, "aws:kms/key:Key", "-key-key")
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    trail_arn = f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT}:trail/cp-dev-euw1-data-access"
    encrypt = statements["AllowTheAuditTrailToEncryptItsRecords"]
    assert encrypt["Action"] == ["kms:GenerateDataKey*"]
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceArn": trail_arn}
    describe = statements["AllowTheAuditTrailToDescribeTheKey"]
    assert (describe["Action"], describe["Condition"]) == (["kms:DescribeKey"],
                                                           {"StringEquals": {"aws:SourceArn": trail_arn}})


def lifecycle_days(synthesis: Synthesis) -> tuple[Any, Any]:
    [lifecycle] = attached(synthesis, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                           audit_bucket(synthesis))
    [rule] = lifecycle.inputs["rules"]
    return rule["expiration"]["days"], rule["noncurrentVersionExpiration"]["noncurrentDays"]


def test_the_retention_is_configurable(dev: Synthesis, replicated: Synthesis) -> None:
    assert lifecycle_days(dev) == (365.0, 90.0)
    assert lifecycle_days(replicated) == (90.0, 90.0)


@pytest.mark.parametrize("days", ["0", "29", "3654", "a year"])
def test_a_retention_outside_the_limits_is_refused(days: str) -> None:
    with pytest.raises(SettingsError, match="auditLogRetentionDays"):
        parse_settings({"environment": "dev", "auditLogRetentionDays": days}, region=REGION, stack="dev")


def test_the_pack_holds_the_audit_bucket_to_every_bucket_rule_without_exception(dev: Synthesis) -> None:
    # GIVEN the audit bucket encrypted with SSE-S3 (what server access log destinations would have needed)
    changed = copy.deepcopy(dev)
    [encryption] = attached(changed, "aws:s3/bucketServerSideEncryptionConfiguration:"
                                     "BucketServerSideEncryptionConfiguration", audit_bucket(changed))
    for props in (encryption.inputs, encryption.outputs):
        props["rules"][0]["applyServerSideEncryptionByDefault"] = {"sseAlgorithm": "AES256"}
    # THEN the pack refuses it, as any bucket; and the stack as made passes
    def about_the_audit(synthesis: Synthesis) -> list[str]:
        return [f.policy for f in evaluate(synthesis) if f.level == "mandatory" and "-audit-" in f.message]

    assert about_the_audit(changed) == ["s3-bucket-encrypted"]
    assert about_the_audit(dev) == []


def test_the_cost_view_prices_the_audit_trail_by_data_event() -> None:
    from tools.cost import SECONDS_PER_MONTH, Profile, estimate, history_months, load_prices

    table = load_prices()
    entry = table["prices"]["cloudtrail_data_events_per_100k"]
    assert entry["source"] == "https://aws.amazon.com/cloudtrail/pricing/" and isinstance(entry["confirmed"], bool)
    settings = parse_settings({"environment": "dev"}, region="us-east-1", stack="dev")
    profile = Profile(events_per_day=1000, recommendations_per_day=0, items_per_day=0, trainings_per_month=1)
    line = estimate(settings, profile, table)["CloudTrail: audit of data access"]
    objects = SECONDS_PER_MONTH / settings.ingestion.firehose_buffer_seconds  # a small stream fills by time
    expected = (objects + objects * history_months(settings)) / 100_000 * entry["value"]
    assert line.cost == pytest.approx(expected) and not line.confirmed
