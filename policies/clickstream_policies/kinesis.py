"""Kinesis Data Streams and Firehose rules."""

from __future__ import annotations

from collections.abc import Mapping

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import configured_policy, is_set, number, peek, resource_policy, uses_customer_key

AWS_MANAGED_KINESIS_KEY = "alias/aws/kinesis"
STREAM = "aws:kinesis/stream:Stream"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"
# Kinesis Data Streams keeps records 24 to 8760 hours; FSBP's Kinesis.3 suggests 168 (set minimumRetentionHours).
MINIMUM_RETENTION_HOURS, MAXIMUM_RETENTION_HOURS = 24, 8760
# Firehose's S3 buffering hints: 60-900 s (this stack's floor; zero buffering is not used) and 1-128 MiB.
BUFFER_SECONDS, BUFFER_MIB = (60, 900), (1, 128)
# Destinations with S3 buffering hints, as engine property names.
BUFFERED_DESTINATIONS = ("extendedS3Configuration", "redshiftConfiguration", "opensearchConfiguration",
                         "elasticsearchConfiguration", "splunkConfiguration", "httpEndpointConfiguration")


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


def _retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    minimum = args.get_config().get("minimumRetentionHours", MINIMUM_RETENTION_HOURS)
    if not is_set(args.props, "retentionPeriod"):
        return  # AWS's default, 24 hours
    hours = number(args.props, "retentionPeriod")
    if hours is not None and not minimum <= hours <= MAXIMUM_RETENTION_HOURS:
        report_violation(f"Stream {args.name} keeps records {hours:g} hours: set retention_period between {minimum} "
                         f"and {MAXIMUM_RETENTION_HOURS} hours (streamRetentionHours).", None)


def _shards(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    mode = peek(args.props.get("streamModeDetails") or {}, "streamMode")
    if mode not in (None, "PROVISIONED"):
        return  # on demand: AWS sizes the stream
    shards = number(args.props, "shardCount")
    if is_set(args.props, "shardCount") and shards is None:
        return  # known after deploy
    if shards is None or shards < 1 or shards != int(shards):
        report_violation(f"Provisioned stream {args.name} has {shards if shards is not None else 'no'} shards: set "
                         "shard_count to a whole number of at least 1 (streamShardCount), or use ON_DEMAND.", None)


def _buffering(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for destination in BUFFERED_DESTINATIONS:
        config = peek(args.props, destination)
        if not isinstance(config, Mapping):
            continue
        for key, unit, (low, high), setting in (("bufferingInterval", "s", BUFFER_SECONDS, "firehoseBufferSeconds"),
                                                ("bufferingSize", "MiB", BUFFER_MIB, "firehoseBufferMiB")):
            value = number(config, key)
            if value is not None and not low <= value <= high:
                report_violation(f"Delivery stream {args.name} buffers {value:g} {unit} ({destination}.{key}): set "
                                 f"it between {low} and {high} {unit} ({setting}).", None)


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

kinesis_stream_retention = configured_policy(
    "kinesis-stream-retention",
    "Streams keep records at least the configured minimum (default AWS's 24 hours) and at most 8760 hours.",
    STREAM,
    _retention,
    {"minimumRetentionHours": {"type": "integer", "minimum": MINIMUM_RETENTION_HOURS,
                               "maximum": MAXIMUM_RETENTION_HOURS, "default": MINIMUM_RETENTION_HOURS}},
)
kinesis_stream_shard_count = resource_policy(
    "kinesis-stream-shard-count",
    "Provisioned streams have at least one shard.",
    STREAM,
    _shards,
)
firehose_deliverystream_buffering = resource_policy(
    "firehose-deliverystream-buffering",
    "Firehose buffering hints stay within 60-900 seconds and 1-128 MiB.",
    FIREHOSE,
    _buffering,
)

POLICIES = [kinesis_stream_encrypted, firehose_deliverystream_encrypted, kinesis_stream_retention,
            kinesis_stream_shard_count, firehose_deliverystream_buffering]
