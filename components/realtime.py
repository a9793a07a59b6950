"""Real time: the ingestion stream feeds Amazon Personalize's event tracker through the event processor Lambda."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.function import FunctionArgs, LambdaFunction, failure_queue
from components.iam import account_and_partition
from components.settings import StackSettings


@dataclass(frozen=True)
class RealtimeArgs:
    settings: StackSettings
    key_arn: pulumi.Input[str]
    stream_arn: pulumi.Input[str]


class RealtimeEvents(pulumi.ComponentResource):
    """The event processor, its stream mapping, and the two queues that keep what it cannot deliver."""

    processor: LambdaFunction
    dead_letter_queue: aws.sqs.Queue
    failure_queue: aws.sqs.Queue
    mapping: aws.lambda_.EventSourceMapping

    def __init__(self, name: str, args: RealtimeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:realtime:RealtimeEvents", name, None, opts)
        settings, realtime = args.settings, args.settings.realtime
        child = pulumi.ResourceOptions(parent=self)
        account, partition = account_and_partition(self)
        region = settings.region
        tracking_parameter = settings.parameter_name("tracking-id")

        def queue(suffix: str) -> aws.sqs.Queue:
            return failure_queue(self, f"{name}-{suffix}", settings.physical_name(f"event-processor-{suffix}", 80),
                                 args.key_arn)

        # Records that can never be delivered, with their payload (written by the processor itself).
        self.dead_letter_queue = queue("dlq")
        # Batches the mapping gave up on (metadata only: shard and sequence range, to replay from the stream).
        self.failure_queue = queue("failures")

        self.processor = LambdaFunction(
            f"{name}-processor",
            FunctionArgs(
                settings=settings,
                key_arn=args.key_arn,
                handler_module="event_processor",
                description="Sends clickstream events from Kinesis to the Personalize event tracker",
                memory_mb=realtime.memory_mb,
                timeout_seconds=realtime.timeout_seconds,
                environment={
                    "TRACKING_ID_PARAMETER": tracking_parameter,
                    "TRACKING_ID_CACHE_SECONDS": str(realtime.parameter_cache_seconds),
                    "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue.url,
                    "EVENT_TYPES": json.dumps(list(settings.ingestion.event_types)),
                    "MAX_CONCURRENCY": str(realtime.concurrency),
                },
                statements=[
                    {"Sid": "ReadClickStream", "Effect": "Allow",
                     "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                                "kinesis:GetShardIterator", "kinesis:ListShards"],
                     "Resource": args.stream_arn},
                    {"Sid": "DecryptClickStream", "Effect": "Allow", "Action": ["kms:Decrypt"],
                     "Resource": args.key_arn,
                     "Condition": {"StringEquals": {"kms:ViaService": f"kinesis.{region}.amazonaws.com"}}},
                    {"Sid": "ReadTrackingId", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                     "Resource": pulumi.Output.concat("arn:", partition, ":ssm:", region, ":", account,
                                                      ":parameter", tracking_parameter)},
                    # PutEvents has no resource-level permissions (IAM service authorization reference): "*" is
                    # the only valid resource; the tracking id published by this stack's training selects the tracker.
                    {"Sid": "PutEvents", "Effect": "Allow", "Action": ["personalize:PutEvents"], "Resource": "*"},
                    {"Sid": "KeepUndeliverableRecords", "Effect": "Allow", "Action": ["sqs:SendMessage"],
                     "Resource": [self.dead_letter_queue.arn, self.failure_queue.arn]},
                    {"Sid": "EncryptQueuedRecords", "Effect": "Allow",
                     "Action": ["kms:GenerateDataKey", "kms:Decrypt"], "Resource": args.key_arn,
                     "Condition": {"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}}},
                ],
            ),
            opts=child,
        )
        self.mapping = aws.lambda_.EventSourceMapping(
            f"{name}-mapping",
            event_source_arn=args.stream_arn,
            function_name=self.processor.arn,
            starting_position="TRIM_HORIZON",  # a new mapping starts with what the stream still holds
            batch_size=realtime.batch_size,
            maximum_batching_window_in_seconds=realtime.batching_window_seconds,
            parallelization_factor=realtime.parallelization_factor,
            bisect_batch_on_function_error=True,
            maximum_record_age_in_seconds=realtime.maximum_record_age_seconds,
            maximum_retry_attempts=realtime.maximum_retry_attempts,
            function_response_types=["ReportBatchItemFailures"],
            destination_config=aws.lambda_.EventSourceMappingDestinationConfigArgs(
                on_failure=aws.lambda_.EventSourceMappingDestinationConfigOnFailureArgs(
                    destination_arn=self.failure_queue.arn)),
            opts=child,
        )
        self.register_outputs({"processor": self.processor.name, "deadLetterQueue": self.dead_letter_queue.url,
                               "failureQueue": self.failure_queue.url})
