"""Kinesis Data Streams and Firehose rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import is_set, resource_policy, uses_customer_key

AWS_MANAGED_KINESIS_KEY = "alias/aws/kinesis"


def _stream_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    if props.get("encryptionType") != "KMS" or not uses_customer_key(props, "kmsKeyId", AWS_MANAGED_KINESIS_KEY):
        report_violation(f"Stream {args.name} is not encrypted with a customer-managed key: set "
                         "encryption_type=\"KMS\" and kms_key_id to the stack's key (EncryptionKey.arn).", None)


def _firehose_encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    props = args.props
    s3 = props.get("extendedS3Configuration") or {}
    if not is_set(s3, "kmsKeyArn"):
        report_violation(f"Delivery stream {args.name} writes unencrypted objects: set extended_s3_configuration."
                         "kms_key_arn to the stack's key.", None)
    if not is_set(props, "kinesisSourceConfiguration"):
        sse = props.get("serverSideEncryption") or {}
        if sse.get("enabled") is not True or sse.get("keyType") != "CUSTOMER_MANAGED_CMK":
            report_violation(f"Delivery stream {args.name} takes direct PUTs without encryption at rest: set "
                             "server_side_encryption enabled with key_type CUSTOMER_MANAGED_CMK.", None)


kinesis_stream_encrypted = resource_policy(
    "kinesis-stream-encrypted",
    "Kinesis streams are encrypted with a customer-managed KMS key.",
    "aws:kinesis/stream:Stream",
    _stream_encrypted,
)
firehose_deliverystream_encrypted = resource_policy(
    "firehose-deliverystream-encrypted",
    "Firehose encrypts what it delivers (and, for direct PUT sources, what it buffers) with a customer key.",
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream",
    _firehose_encrypted,
)

POLICIES = [kinesis_stream_encrypted, firehose_deliverystream_encrypted]
