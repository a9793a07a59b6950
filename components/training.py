"""Training orchestration: state machines that take the raw clicks to a live, evaluated Personalize campaign, and
delete it all again; notifications; an optional retraining schedule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from common.contract import PUBLISHED_PARAMETERS, Env, Key
from components.function import FunctionArgs, LambdaFunction
from components.iam import service_role, source_account
from components.settings import PublishedSettings, StackBasics, TrainingSettings
from components.shared import StackArns, email_subscriptions, encrypted_log_group
from components.training_definition import (
    TrainingConfig,
    segments_definition,
    surface_plans,
    teardown_definition,
    training_definition,
)

PERSONALIZE_TRAINING_ACTIONS = sorted(
    f"personalize:{a}" for a in (
        "CreateDatasetGroup", "DescribeDatasetGroup", "DeleteDatasetGroup", "CreateSchema", "DeleteSchema",
        "CreateDataset", "DescribeDataset", "DeleteDataset", "CreateDatasetImportJob", "DescribeDatasetImportJob",
        "CreateEventTracker", "DescribeEventTracker", "DeleteEventTracker", "CreateFilter", "DeleteFilter",
        "CreateSolution", "DescribeSolution", "DeleteSolution", "CreateSolutionVersion", "DescribeSolutionVersion",
        "GetSolutionMetrics", "CreateCampaign", "DescribeCampaign", "UpdateCampaign", "DeleteCampaign",
        "UpdateSolution", "UpdateDataset", "CreateBatchSegmentJob", "DescribeBatchSegmentJob"))
# Actions AWS authorizes only on "*": listing trackers, and the log delivery Step Functions sets up for its logs.
WILDCARD_ONLY_ACTIONS = ["personalize:ListEventTrackers", "logs:CreateLogDelivery", "logs:GetLogDelivery",
                         "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
                         "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
                         "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                         "xray:GetSamplingTargets"]


@dataclass(frozen=True)
class TrainingArgs:
    stack: StackBasics
    training: TrainingSettings
    published: PublishedSettings
    # The event types the collection API accepts: only those are prepared for training.
    event_types: tuple[str, ...]
    key_arn: pulumi.Input[str]
    data_bucket_name: pulumi.Input[str]
    data_bucket_arn: pulumi.Input[str]


class TrainingOrchestration(pulumi.ComponentResource):
    training_machine: aws.sfn.StateMachine
    teardown_machine: aws.sfn.StateMachine
    segments_machine: aws.sfn.StateMachine | None
    topic: aws.sns.Topic

    def __init__(self, name: str, args: TrainingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:training:TrainingOrchestration", name, None, opts)
        stack, training = args.stack, args.training
        child = pulumi.ResourceOptions(parent=self)
        arns = StackArns.of(self, stack)
        account, partition, arn = arns.account, arns.partition, arns.arn
        region, prefix = stack.region, stack.name_prefix

        bucket = args.data_bucket_arn

        def objects(prefix: str) -> pulumi.Output[str]:
            return pulumi.Output.concat(bucket, "/", prefix, "*")
        s3_via = {"Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}}

        self.topic = aws.sns.Topic(f"{name}-topic", name=stack.physical_name("training"),
                                   kms_master_key_id=args.key_arn, opts=child)
        email_subscriptions(self, f"{name}-email", self.topic, training.notification_emails)

        self.steps = LambdaFunction(f"{name}-steps", FunctionArgs(
            stack=stack, key_arn=args.key_arn, handler_module="training_steps",
            description="Training steps: prepares the raw clicks for Personalize, and the metric gate",
            memory_mb=2048, timeout_seconds=900,
            environment={Env.DATA_BUCKET: args.data_bucket_name,
                         Env.EVENT_TYPES: json.dumps(list(args.event_types)),
                         Env.MIN_INTERACTIONS: str(training.min_interactions),
                         Env.MIN_USERS_WITH_TWO: str(training.min_users_with_two)},
            statements=[
                {"Sid": "ReadRawAndItems", "Effect": "Allow", "Action": ["s3:GetObject"],
                 "Resource": [objects(Key.EVENTS), objects(Key.ITEMS), objects(Key.PREPARED)]},
                {"Sid": "ListPreparedAndItems", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket,
                 "Condition": {"StringLike": {"s3:prefix": [f"{Key.PREPARED}*", f"{Key.ITEMS_BY_ID}*",
                                                            f"{Key.ITEMS_BY_TIME}*"]}}},
                {"Sid": "WritePreparedData", "Effect": "Allow", "Action": ["s3:PutObject"],
                 "Resource": [objects(Key.PREPARED), pulumi.Output.concat(bucket, "/", Key.POPULAR_ITEMS),
                              objects(Key.SEGMENTS_INPUT)]},
                {"Sid": "UseStackKeyThroughS3", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                 "Resource": args.key_arn, **s3_via},
            ],
        ), opts=child)

        personalize_role, _ = service_role(self, f"{name}-personalize", stack.physical_name("personalize"),
                                           "personalize.amazonaws.com", [
            {"Sid": "ReadPreparedData", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": objects(Key.PREPARED)},
            {"Sid": "ListPreparedData", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket,
             "Condition": {"StringLike": {"s3:prefix": [f"{Key.PREPARED}*", f"{Key.SEGMENTS_INPUT}*",
                                                        f"{Key.SEGMENTS_OUTPUT}*"]}}},
            {"Sid": "ReadSegmentInput", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": objects(Key.SEGMENTS_INPUT)},
            {"Sid": "WriteSegments", "Effect": "Allow", "Action": ["s3:PutObject"],
             "Resource": objects(Key.SEGMENTS_OUTPUT)},
            {"Sid": "UseStackKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], "Resource": args.key_arn},
        ], conditions=source_account(account),
            description="Assumed by Amazon Personalize to read prepared data and use the stack key")

        parameters = {key: stack.parameter_name(key) for key in PUBLISHED_PARAMETERS}
        training_name = stack.physical_name("training")
        teardown_name = stack.physical_name("training-teardown")
        machine_role, machine_policy = service_role(
            self, f"{name}-machine", stack.physical_name("training-machine"), "states.amazonaws.com", [
            {"Sid": "RunTrainingSteps", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
             "Resource": [self.steps.arn, pulumi.Output.concat(self.steps.arn, ":*")]},
            {"Sid": "ListRawEvents", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket,
             "Condition": {"StringLike": {"s3:prefix": f"{Key.EVENTS}*"}}},
            {"Sid": "RunDistributedMap", "Effect": "Allow", "Action": ["states:StartExecution"],
             "Resource": arn("states", f"stateMachine:{training_name}")},
            {"Sid": "WatchDistributedMap", "Effect": "Allow",
             "Action": ["states:DescribeExecution", "states:StopExecution"],
             "Resource": arn("states", f"execution:{training_name}/*")},
            {"Sid": "ManageThisStacksPersonalize", "Effect": "Allow", "Action": PERSONALIZE_TRAINING_ACTIONS,
             "Resource": [arn("personalize", f"{kind}/{prefix}*") for kind in (
                 "dataset-group", "dataset", "schema", "dataset-import-job", "filter", "solution", "campaign",
                 "batch-segment-job")]
                        + [arn("personalize", "event-tracker/*")]},
            {"Sid": "ListEventTrackersAndDeliverLogs", "Effect": "Allow", "Action": WILDCARD_ONLY_ACTIONS,
             "Resource": "*"},
            {"Sid": "PassRoleToPersonalize", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": personalize_role.arn,
             "Condition": {"StringEquals": {"iam:PassedToService": "personalize.amazonaws.com"}}},
            {"Sid": "PublishForHandlers", "Effect": "Allow", "Action": ["ssm:PutParameter", "ssm:DeleteParameters"],
             "Resource": [arns.parameter(p) for p in parameters.values()]},
            {"Sid": "Notify", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": self.topic.arn},
            {"Sid": "UseStackKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
             "Resource": args.key_arn},
        ], conditions=source_account(account), description="Runs the training and teardown state machines")

        config = pulumi.Output.all(account, partition, args.data_bucket_name, self.steps.arn, personalize_role.arn,
                                   args.key_arn, self.topic.arn).apply(lambda v: TrainingConfig(
            prefix=prefix, region=region, account=v[0], partition=v[1], bucket=v[2], steps_function_arn=v[3],
            personalize_role_arn=v[4], key_arn=v[5], topic_arn=v[6],
            recipe_arn=f"arn:{v[1]}:personalize:::recipe/{training.recipe}", metric=training.metric,
            tolerance=training.metric_tolerance, min_provisioned_tps=training.min_provisioned_tps,
            shards=training.shards, filters=dict(args.published.filters), parameters=parameters,
            poll_seconds=training.poll_seconds, mode=training.mode, auto_training_days=training.auto_training_days,
            segments=training.user_segments,
            surfaces=surface_plans(args.published.surfaces, partition=v[1], for_you_recipe=training.recipe,
                                   for_you_metric=training.metric, metrics=dict(training.surface_metrics),
                                   metadata=args.published.metadata_surfaces)))
        logs = encrypted_log_group(self, f"{name}-logs", stack, args.key_arn,
                                   f"/aws/vendedlogs/{prefix}/states/training")
        self.training_machine = self._machine(f"{name}-training", training_name, machine_role, logs, args.key_arn,
                                              config.apply(lambda c: json.dumps(training_definition(c))),
                                              [machine_policy])
        self.teardown_machine = self._machine(f"{name}-teardown", teardown_name, machine_role, logs, args.key_arn,
                                              config.apply(lambda c: json.dumps(teardown_definition(c))),
                                              [machine_policy])
        if training.schedule:
            self._schedule(name, stack, training.schedule, args.key_arn, account, self.training_machine, "training",
                           "Retrains the Personalize solutions")
        self.segments_machine = None
        if training.user_segments:
            self.segments_machine = self._machine(
                f"{name}-segments", stack.physical_name("segments"), machine_role, logs, args.key_arn,
                config.apply(lambda c: json.dumps(segments_definition(c))), [machine_policy])
            if training.segment_schedule:  # the scheduled run: the newest posts' readers
                self._schedule(f"{name}-segments", stack, training.segment_schedule, args.key_arn, account,
                               self.segments_machine, "segments", "Writes the user segments of the newest posts")
        self.register_outputs({"trainingStateMachine": self.training_machine.arn,
                               "segmentsStateMachine": self.segments_machine.arn if self.segments_machine else None,
                               "teardownStateMachine": self.teardown_machine.arn, "topic": self.topic.arn})

    def _machine(self, name: str, physical: str, role: aws.iam.Role, logs: aws.cloudwatch.LogGroup,
                 key_arn: pulumi.Input[str], definition: pulumi.Input[str],
                 depends_on: Sequence[pulumi.Resource]) -> aws.sfn.StateMachine:
        return aws.sfn.StateMachine(
            name, name=physical, type="STANDARD", role_arn=role.arn, definition=definition,
            encryption_configuration=aws.sfn.StateMachineEncryptionConfigurationArgs(
                type="CUSTOMER_MANAGED_KMS_KEY", kms_key_id=key_arn, kms_data_key_reuse_period_seconds=300),
            # Execution data holds reader ids: the log keeps the flow, the encrypted history keeps the data.
            logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                level="ALL", include_execution_data=False, log_destination=logs.arn.apply(lambda a: f"{a}:*")),
            tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(enabled=True),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )

    def _schedule(self, name: str, stack: StackBasics, expression: str, key_arn: pulumi.Input[str],
                  account: pulumi.Input[str], machine: aws.sfn.StateMachine, what: str, description: str) -> None:
        role, policy = service_role(self, f"{name}-scheduler", stack.physical_name(f"{what}-scheduler"),
                                    "scheduler.amazonaws.com", [
            {"Sid": "StartTraining", "Effect": "Allow", "Action": ["states:StartExecution"],
             "Resource": machine.arn}], conditions=source_account(account))
        aws.scheduler.Schedule(
            f"{name}-schedule", name=stack.physical_name(what),
            description=description, schedule_expression=expression,
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"), kms_key_arn=key_arn,
            target=aws.scheduler.ScheduleTargetArgs(
                arn=machine.arn, role_arn=role.arn, input="{}",
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(maximum_retry_attempts=3)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
