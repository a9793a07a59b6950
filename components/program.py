"""The whole program as a function of its settings: tests and the offline plan run what ``pulumi up`` runs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from common.contract import Parameter
from components.ingestion import IngestionArgs, IngestionPipeline
from components.observability import Observability, ObservabilityArgs, Observed
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
    ingestion = IngestionPipeline(settings.physical_name("ingestion"), IngestionArgs(
        stack=settings, ingestion=settings.ingestion, sites=settings.sites, key_arn=key.arn), opts=opts)
    event_types = settings.ingestion.event_types
    realtime = RealtimeEvents(settings.physical_name("realtime"), RealtimeArgs(
        stack=settings, realtime=settings.realtime, published=settings.published, event_types=event_types,
        key_arn=key.arn, stream_arn=ingestion.stream.arn), opts=opts)
    serving = ServingApi(settings.physical_name("serving"), ServingArgs(
        stack=settings, serving=settings.serving, sites=settings.sites, published=settings.published,
        key_arn=key.arn, data_bucket_name=ingestion.bucket.bucket, data_bucket_arn=ingestion.bucket_arn,
        depends_on=[ingestion.account] if ingestion.account else []), opts=opts)
    training = TrainingOrchestration(settings.physical_name("training"), TrainingArgs(
        stack=settings, training=settings.training, published=settings.published, event_types=event_types,
        key_arn=key.arn, data_bucket_name=ingestion.bucket.bucket, data_bucket_arn=ingestion.bucket_arn), opts=opts)
    firewall = WebFirewall(settings.physical_name("firewall"), WebFirewallArgs(
        stack=settings, waf=settings.waf, key_arn=key.arn,
        stages={"collect": ingestion.stage, "serve": serving.stage}), opts=opts)
    replica = RawReplica(settings.physical_name("replica"), ReplicaArgs(
        stack=settings, source_bucket=ingestion.bucket, source_bucket_arn=ingestion.bucket_arn,
        source_key_arn=key.arn, source_versioning=ingestion.versioning), opts=opts) if settings.replica_region else None
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
        "webAclArn": firewall.web_acl.arn,
        "trainingStateMachineArn": training.training_machine.arn,
        "teardownStateMachineArn": training.teardown_machine.arn,
        "trainingTopicArn": training.topic.arn,
        "dashboardName": operations.dashboard.dashboard_name,
        "alarmTopicArn": operations.topic.arn,
        "rawReplicaBucket": replica.bucket.bucket if replica else None,
    }
