"""S3 rules. A bucket's encryption, public-access block and policy are separate resources in pulumi-aws v7, so these
are stack policies that find them through the property dependency of their ``bucket`` input."""

from __future__ import annotations

import json
from typing import Any

from pulumi_policy import ReportViolation, StackValidationArgs

from ._helpers import attached, is_set, stack_policy

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _encrypted(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        compliant = False
        for config in attached(args.resources, bucket, ENCRYPTION):
            for rule in config.props.get("rules") or []:
                default = rule.get("applyServerSideEncryptionByDefault") or {}
                if (default.get("sseAlgorithm") == "aws:kms" and is_set(default, "kmsMasterKeyId")
                        and rule.get("bucketKeyEnabled") is True):
                    compliant = True
        if not compliant:
            report_violation(f"Bucket {bucket.name} is not encrypted with the stack's key: add a "
                             "BucketServerSideEncryptionConfiguration with sse_algorithm=\"aws:kms\", "
                             "kms_master_key_id=<stack key> and bucket_key_enabled=True.", bucket.urn)


def _public_access_blocked(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        blocks = attached(args.resources, bucket, PUBLIC_ACCESS_BLOCK)
        if not any(all(block.props.get(flag) is True for flag in PUBLIC_ACCESS_FLAGS) for block in blocks):
            report_violation(f"Bucket {bucket.name} can be made public: add a BucketPublicAccessBlock with all four "
                             "of block_public_acls, block_public_policy, ignore_public_acls and "
                             "restrict_public_buckets set to True.", bucket.urn)


def _denies_insecure_transport(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition", {}).get("Bool", {})
    actions = statement.get("Action")
    return (statement.get("Effect") == "Deny" and statement.get("Principal") in ("*", {"AWS": "*"})
            and actions in ("s3:*", ["s3:*"]) and str(condition.get("aws:SecureTransport")).lower() == "false")


def _tls_only(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        policies = attached(args.resources, bucket, BUCKET_POLICY)
        documents = [json.loads(p.props["policy"]) if isinstance(p.props.get("policy"), str) else {}
                     for p in policies]
        if not any(_denies_insecure_transport(s) for d in documents for s in d.get("Statement", [])):
            report_violation(f"Bucket {bucket.name} accepts plain HTTP: add a BucketPolicy statement denying s3:* to "
                             "every principal when aws:SecureTransport is false.", bucket.urn)


s3_bucket_encrypted = stack_policy(
    "s3-bucket-encrypted",
    "Buckets encrypt objects with SSE-KMS under a customer-managed key, with an S3 bucket key.",
    _encrypted,
)
s3_bucket_public_access_blocked = stack_policy(
    "s3-bucket-public-access-blocked",
    "Buckets block every form of public access.",
    _public_access_blocked,
)
s3_bucket_tls_only = stack_policy(
    "s3-bucket-tls-only",
    "Bucket policies deny requests that do not use TLS.",
    _tls_only,
)

POLICIES = [s3_bucket_encrypted, s3_bucket_public_access_blocked, s3_bucket_tls_only]
