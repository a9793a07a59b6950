"""Disaster recovery: the raw clickstream bucket replicated to another region, encrypted there with a key of its own."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import account_and_partition, policy_document, service_role, source_account
from components.settings import StackBasics
from components.shared import private_bucket


@dataclass(frozen=True)
class ReplicaArgs:
    stack: StackBasics
    source_bucket: aws.s3.Bucket
    source_bucket_arn: pulumi.Input[str]
    source_key_arn: pulumi.Input[str]
    # Replication needs versioning on the source first.
    source_versioning: pulumi.Resource


class RawReplica(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    key: aws.kms.Key

    def __init__(self, name: str, args: ReplicaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:operations:RawReplica", name, None, opts)
        stack = args.stack
        replica_region = stack.replica_region
        child = pulumi.ResourceOptions(parent=self)
        account, partition = account_and_partition(self)
        provider = aws.Provider(f"{name}-provider", region=replica_region,
                                default_tags=aws.ProviderDefaultTagsArgs(tags=dict(stack.tags)), opts=child)
        there = pulumi.ResourceOptions(parent=self, provider=provider)

        self.key = aws.kms.Key(
            f"{name}-key", description=f"Encrypts the raw clickstream replica of {stack.project}/{stack.stack}",
            enable_key_rotation=True, deletion_window_in_days=stack.kms_key_deletion_window_days,
            policy=policy_document([{
                "Sid": "EnableIamPoliciesOfThisAccount", "Effect": "Allow",
                "Principal": {"AWS": pulumi.Output.concat("arn:", partition, ":iam::", account, ":root")},
                "Action": "kms:*", "Resource": "*"}]),
            opts=there)
        aws.kms.Alias(f"{name}-alias", name=f"alias/{stack.name_prefix}-replica", target_key_id=self.key.key_id,
                      opts=there)
        bucket_name = account.apply(lambda a: stack.physical_name(f"raw-replica-{a}", 63))
        bucket_arn = pulumi.Output.concat("arn:", partition, ":s3:::", bucket_name)
        replica = private_bucket(name, bucket_name, bucket_arn, self.key.arn, there,
                                 bucket_logical_name=f"{name}-bucket", policy_logical_name=f"{name}-bucket-policy")
        self.bucket, versioning = replica.bucket, replica.versioning

        source = args.source_bucket_arn
        role, policy = service_role(self, name, stack.physical_name("raw-replication"), "s3.amazonaws.com", [
            {"Sid": "ReadSourceConfiguration", "Effect": "Allow",
             "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": source},
            {"Sid": "ReadSourceVersions", "Effect": "Allow",
             "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
             "Resource": pulumi.Output.concat(source, "/*")},
            {"Sid": "WriteReplica", "Effect": "Allow",
             "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
             "Resource": pulumi.Output.concat(bucket_arn, "/*")},
            {"Sid": "DecryptSource", "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": args.source_key_arn,
             "Condition": {"StringLike": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"}}},
            {"Sid": "EncryptReplica", "Effect": "Allow", "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
             "Resource": self.key.arn,
             "Condition": {"StringLike": {"kms:ViaService": f"s3.{replica_region}.amazonaws.com"}}},
        ], conditions=source_account(account))
        aws.s3.BucketReplicationConfig(
            f"{name}-replication", bucket=args.source_bucket.id, role=role.arn,
            rules=[aws.s3.BucketReplicationConfigRuleArgs(
                id="raw-to-replica", status="Enabled",
                filter=aws.s3.BucketReplicationConfigRuleFilterArgs(prefix=""),
                delete_marker_replication=aws.s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs(
                    status="Enabled"),
                source_selection_criteria=aws.s3.BucketReplicationConfigRuleSourceSelectionCriteriaArgs(
                    sse_kms_encrypted_objects=aws.s3
                    .BucketReplicationConfigRuleSourceSelectionCriteriaSseKmsEncryptedObjectsArgs(status="Enabled")),
                destination=aws.s3.BucketReplicationConfigRuleDestinationArgs(
                    bucket=bucket_arn, storage_class="STANDARD_IA",
                    encryption_configuration=aws.s3.BucketReplicationConfigRuleDestinationEncryptionConfigurationArgs(
                        replica_kms_key_id=self.key.arn)),
            )],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.source_versioning, versioning, policy]))
        self.register_outputs({"bucket": self.bucket.bucket, "region": replica_region})
