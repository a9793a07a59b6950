"""The whole program as a function of its settings: tests and the offline plan run what ``pulumi up`` runs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common.contract import Parameter
from components.audit import AuditArgs, DataAccessAudit
from components.ingestion import IngestionArgs, IngestionPipeline
from components.observability import Observability, ObservabilityArgs, Observed
from components.readers import ReaderAuth, ReaderAuthArgs
from components.realtime import RealtimeArgs, RealtimeEvents
from components.replication import RawReplica, ReplicaArgs
from components.security import EncryptionKey, EncryptionKeyArgs
from components.serving import ServingApi, ServingArgs
from components.settings import StackSettings
from components.training import TrainingArgs, TrainingOrchestration
from components.waf import WebFirewall, WebFirewallArgs


def build(settings: StackSettings) -> dict[str, pulumi.Input[object]]:
    """Declare the stack's resources; returns the stack outputs."""
    # One explicit provider: the region and the default tags come from validated settings, for every resource.
    provider = aws.Provider(
        "aws",
        region=settings.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=dict(settings.tags)),
    )
    opts = pulumi.ResourceOptions(provider=provider)
    key = EncryptionKey(settings.physical_name("key"), EncryptionKeyArgs(stack=settings), opts=opts)
    readers = ReaderAuth(settings.physical_name("readers"), ReaderAuthArgs(
        stack=settings, sites=settings.sites, key_arn=key.arn), opts=opts) if settings.sites.verify_readers else None
    ingestion = IngestionPipeline(settings.physical_name("ingestion"), IngestionArgs(
        stack=settings, ingestion=settings.ingestion, sites=settings.sites, key_arn=key.arn, reader_auth=readers),
        opts=opts)
    event_types = settings.ingestion.event_types
    realtime = RealtimeEvents(settings.physical_name("realtime"), RealtimeArgs(
        stack=settings, realtime=settings.realtime, published=settings.published, event_types=event_types,
        key_arn=key.arn, stream_arn=ingestion.stream.arn), opts=opts)
    serving = ServingApi(settings.physical_name("serving"), ServingArgs(
        stack=settings, serving=settings.serving, sites=settings.sites, published=settings.published,
        key_arn=key.arn, data_bucket_name=ingestion.bucket.bucket, data_bucket_arn=ingestion.bucket_arn,
        depends_on=[ingestion.account] if ingestion.account else [], reader_auth=readers), opts=opts)
    training = TrainingOrchestration(settings.physical_name("training"), TrainingArgs(
        stack=settings, training=settings.training, published=settings.published, event_types=event_types,
        key_arn=key.arn, data_bucket_name=ingestion.bucket.bucket, data_bucket_arn=ingestion.bucket_arn), opts=opts)
    firewall = WebFirewall(settings.physical_name("firewall"), WebFirewallArgs(
        stack=settings, waf=settings.waf, key_arn=key.arn,
        stages={"collect": ingestion.stage, "serve": serving.stage}), opts=opts)
    replica = RawReplica(settings.physical_name("replica"), ReplicaArgs(
        stack=settings, source_bucket=ingestion.bucket, source_bucket_arn=ingestion.bucket_arn,
        source_key_arn=key.arn, source_versioning=ingestion.versioning), opts=opts) if settings.replica_region else None
    data_buckets: list[pulumi.Input[str]] = [ingestion.bucket_arn, *([replica.bucket.arn] if replica else [])]
    audit = DataAccessAudit(settings.physical_name("audit"), AuditArgs(
        stack=settings, key_arn=key.arn, retention_days=settings.ingestion.audit_log_retention_days,
        data_bucket_arns=data_buckets, multi_region=replica is not None), opts=opts)
    observed = Observed(
        region=settings.region, collect_api=ingestion.api.name, serve_api=serving.api.name,
        stream=ingestion.stream.name, delivery_stream=ingestion.delivery_stream.name,
        processor=realtime.processor.name, recommendations=serving.recommendations.name, items=serving.items.name,
        dead_letter_queue=realtime.dead_letter_queue.name, failure_queue=realtime.failure_queue.name,
        training_machine_arn=training.training_machine.arn, web_acl=firewall.web_acl.name)
    operations = Observability(settings.physical_name("operations"), ObservabilityArgs(
        stack=settings, alarms=settings.alarms, key_arn=key.arn, observed=observed), opts=opts)
    return {
        "region": settings.region,
        "namePrefix": settings.name_prefix,
        "kmsKeyArn": key.arn,
        "kmsKeyAlias": key.alias.name,
        "collectUrl": ingestion.collect_url,
        "collectApiKeyId": ingestion.api_key.id if ingestion.api_key else None,
        "clickStreamName": ingestion.stream.name,
        "rawBucket": ingestion.bucket.bucket,
        "rawDeliveryStream": ingestion.delivery_stream.name,
        "eventProcessor": realtime.processor.name,
        "eventProcessorDeadLetterQueue": realtime.dead_letter_queue.url,
        "eventProcessorFailureQueue": realtime.failure_queue.url,
        "trackingIdParameter": settings.parameter_name(Parameter.TRACKING_ID),
        "servingUrl": serving.url,
        "servingApiKeyId": serving.api_key.id,
        "cmsRoleArn": serving.cms_role.arn,
        "webAclArn": firewall.web_acl.arn,
        "trainingStateMachineArn": training.training_machine.arn,
        "teardownStateMachineArn": training.teardown_machine.arn,
        "segmentsStateMachineArn": training.segments_machine.arn if training.segments_machine else None,
        "trainingTopicArn": training.topic.arn,
        "dashboardName": operations.dashboard.dashboard_name,
        "alarmTopicArn": operations.topic.arn,
        "rawReplicaBucket": replica.bucket.bucket if replica else None,
        "auditBucket": audit.bucket.bucket,
        "auditTrailArn": audit.trail.arn,
        "readerTokenSecretArn": readers.secret.arn if readers else None,
    }
