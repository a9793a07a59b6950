"""Audit of data access: every read and write of readers' data in the raw bucket and its replica, recorded by
CloudTrail data events into a dedicated, locked-down log bucket with its own retention.

Why CloudTrail data events rather than S3 server access logs: a trail delivers every event (server access logs are
best effort), names the verified IAM caller, signs digest files (log file validation) and encrypts with the stack's
KMS key (AWS documents SSE-S3 as the encryption of server access log destinations, which the pack's
``s3-bucket-encrypted`` policy would have to except); one multi-region trail also covers the replica in its other
region, where server access logs would need a second log bucket there (they deliver only within a region). Data
events are billed per event ($0.10 per 100,000, see ``tools.cost``): the selector records only the prefixes that
hold readers' data, not the published lists every recommendation may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from common.contract import Key
from components.security import audit_trail_name
from components.settings import StackBasics
from components.shared import StackArns, private_bucket

# Where readers' data lives in the raw bucket (and so in its replica): events, failed deliveries, training input.
READER_DATA_PREFIXES = (Key.EVENTS, Key.ERRORS, Key.PREPARED)
# Overwritten or deleted log objects stay this long (versioning), so tampering leaves the original behind.
NONCURRENT_LOG_DAYS = 90


@dataclass(frozen=True)
class AuditArgs:
    stack: StackBasics
    key_arn: pulumi.Input[str]
    retention_days: int
    # ARNs of the buckets that hold readers' data (the raw bucket, the replica when there is one).
    data_bucket_arns: Sequence[pulumi.Input[str]]
    # A trail in this region also records the replica's region.
    multi_region: bool


def object_selectors(bucket_arns: Sequence[str]) -> list[str]:
    """The object ARN prefixes the trail records: the reader-data prefixes of each bucket."""
    return [f"{arn}/{prefix}" for arn in bucket_arns for prefix in READER_DATA_PREFIXES]


class DataAccessAudit(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    trail: aws.cloudtrail.Trail

    def __init__(self, name: str, args: AuditArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:security:DataAccessAudit", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        arns = StackArns.of(self, stack)
        trail_name = audit_trail_name(stack)
        trail_arn = arns.arn("cloudtrail", f"trail/{trail_name}")
        bucket_name = arns.account.apply(lambda account: stack.physical_name(f"audit-{account}", 63))
        bucket_arn = pulumi.Output.concat("arn:", arns.partition, ":s3:::", bucket_name)

        from_this_trail = {"StringEquals": {"aws:SourceArn": trail_arn}}
        audit = private_bucket(name, bucket_name, bucket_arn, args.key_arn, child,
                               bucket_logical_name=f"{name}-bucket", policy_logical_name=f"{name}-policy", statements=[{
            # Records leave only by the lifecycle rule (which is not an API call): no one deletes them.
            "Sid": "DenyDeletingRecords", "Effect": "Deny", "Principal": "*",
            "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            "Resource": pulumi.Output.concat(bucket_arn, "/*"),
        }, {
            "Sid": "CloudTrailChecksTheBucket", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:GetBucketAcl", "Resource": bucket_arn, "Condition": from_this_trail,
        }, {
            "Sid": "CloudTrailWritesThisTrailsRecords", "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
            "Resource": pulumi.Output.concat(bucket_arn, "/AWSLogs/", arns.account, "/*"),
            "Condition": {"StringEquals": {"aws:SourceArn": trail_arn, "s3:x-amz-acl": "bucket-owner-full-control"}},
        }])
        self.bucket, policy = audit.bucket, audit.policy
        aws.s3.BucketLifecycleConfiguration(f"{name}-lifecycle", bucket=self.bucket.id, rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="audit-retention", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.retention_days),
                noncurrent_version_expiration=aws.s3
                .BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(noncurrent_days=NONCURRENT_LOG_DAYS),
                abort_incomplete_multipart_upload=aws.s3
                .BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=7))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[audit.versioning]))
        selected = pulumi.Output.all(*args.data_bucket_arns).apply(lambda buckets: object_selectors(list(buckets)))
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail", name=trail_name, s3_bucket_name=self.bucket.id, kms_key_id=args.key_arn,
            enable_log_file_validation=True, include_global_service_events=False,
            is_multi_region_trail=args.multi_region, enable_logging=True,
            advanced_event_selectors=[aws.cloudtrail.TrailAdvancedEventSelectorArgs(
                name="Reads and writes of readers' data",
                field_selectors=[
                    aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(field="eventCategory", equals=["Data"]),
                    aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(field="resources.type",
                                                                               equals=["AWS::S3::Object"]),
                    aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs(field="resources.ARN",
                                                                               starts_withs=selected),
                ])],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self.register_outputs({"bucket": self.bucket.bucket, "trailArn": self.trail.arn})
