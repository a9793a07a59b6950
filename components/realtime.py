"""Real time: the ingestion stream feeds Amazon Personalize's event tracker through the event processor Lambda."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from common.contract import Env, Parameter
from components.function import FunctionArgs, LambdaFunction
from components.settings import PublishedSettings, RealtimeSettings, StackBasics
from components.shared import StackArns, failure_queue


@dataclass(frozen=True)
class RealtimeArgs:
    stack: StackBasics
    realtime: RealtimeSettings
    published: PublishedSettings
    # The event types the collection API accepts: the processor validates records against the same list.
    event_types: tuple[str, ...]
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
        stack, realtime = args.stack, args.realtime
        child = pulumi.ResourceOptions(parent=self)
        arns = StackArns.of(self, stack)
        region = stack.region
        tracking_parameter = stack.parameter_name(Parameter.TRACKING_ID)

        def queue(suffix: str) -> aws.sqs.Queue:
            return failure_queue(self, f"{name}-{suffix}", stack.physical_name(f"event-processor-{suffix}", 80),
                                 args.key_arn)

        # Records that can never be delivered, with their payload (written by the processor itself).
        self.dead_letter_queue = queue("dlq")
        # Batches the mapping gave up on (metadata only: shard and sequence range, to replay from the stream).
        self.failure_queue = queue("failures")

        self.processor = LambdaFunction(
            f"{name}-processor",
            FunctionArgs(
                stack=stack,
                key_arn=args.key_arn,
                handler_module="event_processor",
                description="Sends clickstream events from Kinesis to the Personalize event tracker",
                memory_mb=realtime.memory_mb,
                timeout_seconds=realtime.timeout_seconds,
                environment={
                    Env.TRACKING_ID_PARAMETER: tracking_parameter,
                    Env.PARAMETER_CACHE_SECONDS: str(args.published.parameter_cache_seconds),
                    Env.DEAD_LETTER_QUEUE_URL: self.dead_letter_queue.url,
                    Env.EVENT_TYPES: json.dumps(list(args.event_types)),
                    Env.MAX_CONCURRENCY: str(realtime.concurrency),
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
                     "Resource": arns.parameter(tracking_parameter)},
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
