"""S3 rules. A bucket's encryption, public-access block and policy are separate resources in pulumi-aws v7, so these
are stack policies that find them through the property dependency of their ``bucket`` input."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs

from ._helpers import (
    attached,
    is_set,
    items,
    no_public_grants,
    number,
    peek,
    resource_policy,
    stack_policy,
    stack_policy_with_config,
)

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
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


# --- data protection of the buckets that hold readers' data ---------------------------------------------------------

def _bucket_arn(bucket: PolicyResource) -> str | None:
    name = peek(bucket.props, "bucket")
    return f"arn:aws:s3:::{name}" if isinstance(name, str) and name else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def data_buckets(resources: Sequence[PolicyResource]) -> list[PolicyResource]:
    """Buckets that hold readers' data: where Firehose delivers, and both ends of a replication.

    Found through property dependencies (ids are unknown before deploy) or, for a destination given as an ARN
    string, through the bucket's name."""
    buckets = [r for r in resources if r.resource_type == BUCKET]
    arns: set[str] = set()
    wired: list[PolicyResource] = []
    for resource in resources:
        if resource.resource_type == FIREHOSE:
            wired += resource.property_dependencies.get("extendedS3Configuration", [])
            arns.add(str(peek(_mapping(peek(resource.props, "extendedS3Configuration")), "bucketArn")))
        elif resource.resource_type == REPLICATION:
            wired += resource.property_dependencies.get("bucket", []) + resource.property_dependencies.get("rules", [])
            arns |= {str(peek(_mapping(peek(_mapping(rule), "destination")), "bucket"))
                     for rule in items(peek(resource.props, "rules"))}
    return [b for b in buckets if any(w is b for w in wired) or _bucket_arn(b) in arns]


def _versioned(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in data_buckets(args.resources):
        statuses = [(v.props.get("versioningConfiguration") or {}).get("status")
                    for v in attached(args.resources, bucket, VERSIONING)]
        if "Enabled" not in statuses:
            report_violation(f"Bucket {bucket.name} holds readers' data without versioning (status "
                             f"{statuses[0] if statuses else 'missing'}): add a BucketVersioning with "
                             "versioning_configuration status \"Enabled\" so an overwrite or delete can be undone.",
                             bucket.urn)


DEFAULT_MINIMUM_EXPIRATION_DAYS = 30
DEFAULT_MINIMUM_NONCURRENT_DAYS = 7
DEFAULT_PROTECTED_PREFIXES = ["events/"]


def _rule_prefix(rule: Mapping[str, Any]) -> str:
    """The key prefix a lifecycle rule applies to ("" for the whole bucket)."""
    rule_filter = rule.get("filter") or {}
    prefix = rule_filter.get("prefix") or (rule_filter.get("and") or {}).get("prefix") or rule.get("prefix") or ""
    return str(prefix)


def _overlaps(prefix: str, protected: Sequence[str]) -> list[str]:
    return [p for p in protected if p.startswith(prefix) or prefix.startswith(p)]


def _lifecycle_findings(rule: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    protected = _overlaps(_rule_prefix(rule), config.get("protectedPrefixes", DEFAULT_PROTECTED_PREFIXES))
    if rule.get("status") != "Enabled" or not protected:
        return []
    where = f"rule {rule.get('id', '?')} on {', '.join(protected)}"
    minimum = config.get("minimumExpirationDays", DEFAULT_MINIMUM_EXPIRATION_DAYS)
    minimum_noncurrent = config.get("minimumNoncurrentVersionDays", DEFAULT_MINIMUM_NONCURRENT_DAYS)
    findings = []
    expiration = rule.get("expiration") or {}
    days = number(expiration, "days")
    if days is not None and days < minimum:
        findings.append(f"{where} deletes current objects after {days:g} days (minimum {minimum}): raise "
                        "rawDataExpirationDays or, if that retention is intended, lower minimumExpirationDays in the "
                        "policy configuration.")
    if is_set(expiration, "date"):
        findings.append(f"{where} deletes every current object on a fixed date: expire by age (days) instead.")
    noncurrent = number(rule.get("noncurrentVersionExpiration") or {}, "noncurrentDays")
    if noncurrent is not None and noncurrent < minimum_noncurrent:
        findings.append(f"{where} removes overwritten and deleted versions after {noncurrent:g} days (minimum "
                        f"{minimum_noncurrent}): raise noncurrentVersionExpirationDays or lower "
                        "minimumNoncurrentVersionDays in the policy configuration.")
    return findings


def _keeps_history(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in data_buckets(args.resources):
        for lifecycle in attached(args.resources, bucket, LIFECYCLE):
            for rule in items(lifecycle.props.get("rules")):
                for finding in _lifecycle_findings(rule if isinstance(rule, Mapping) else {}, args.get_config()):
                    report_violation(f"Bucket {bucket.name} loses history: {finding}", bucket.urn)


def _acls_disabled(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in (r for r in args.resources if r.resource_type == BUCKET):
        owners = [(c.props.get("rule") or {}).get("objectOwnership")
                  for c in attached(args.resources, bucket, OWNERSHIP)]
        if "BucketOwnerEnforced" not in owners:
            report_violation(f"Bucket {bucket.name} still honours ACLs: add a BucketOwnershipControls with "
                             "object_ownership \"BucketOwnerEnforced\" (access is then governed by policies only).",
                             bucket.urn)


_policy_not_public = no_public_grants(
    "Bucket policy {name}", "name the principals (a role, a service) or add a condition on aws:SourceAccount, "
    "aws:SourceArn, aws:PrincipalOrgID or aws:SourceVpce with fixed values.")


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

s3_bucket_versioning_enabled = stack_policy(
    "s3-bucket-versioning-enabled",
    "Buckets that hold readers' data (Firehose destinations, replication source and replica) are versioned.",
    _versioned,
)
s3_bucket_lifecycle_keeps_history = stack_policy_with_config(
    "s3-bucket-lifecycle-keeps-history",
    "Lifecycle rules of data buckets do not delete the raw history, or its old versions, sooner than configured.",
    _keeps_history,
    {"minimumExpirationDays": {"type": "integer", "minimum": 1, "default": DEFAULT_MINIMUM_EXPIRATION_DAYS},
     "minimumNoncurrentVersionDays": {"type": "integer", "minimum": 1, "default": DEFAULT_MINIMUM_NONCURRENT_DAYS},
     "protectedPrefixes": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_PROTECTED_PREFIXES}},
)
s3_bucket_acls_disabled = stack_policy(
    "s3-bucket-acls-disabled",
    "Buckets disable ACLs (object ownership BucketOwnerEnforced).",
    _acls_disabled,
)
s3_bucketpolicy_no_public_access = resource_policy(
    "s3-bucketpolicy-no-public-access",
    "Bucket policies allow nothing to everyone without a condition naming accounts, services or endpoints.",
    BUCKET_POLICY,
    _policy_not_public,
)

POLICIES = [s3_bucket_encrypted, s3_bucket_public_access_blocked, s3_bucket_tls_only, s3_bucket_versioning_enabled,
            s3_bucket_lifecycle_keeps_history, s3_bucket_acls_disabled, s3_bucketpolicy_no_public_access]
