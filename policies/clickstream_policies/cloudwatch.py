"""CloudWatch Logs rules."""

from __future__ import annotations

import re

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import UNKNOWN, configured_policy, is_set, items, peek, resource_policy

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE_ALARM = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
# What an alarm action may be (CloudWatch's PutMetricAlarm): an SNS topic, an EC2 action, an Auto Scaling policy, a
# Systems Manager OpsItem or Incident Manager response plan, or a Lambda function.
DEFAULT_ACTION_PATTERNS = [
    r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?",
    r"arn:aws[a-z-]*:automate:[a-z0-9-]+:ec2:(stop|terminate|reboot|recover)",
    r"arn:aws[a-z-]*:autoscaling:[a-z0-9-]+:\d{12}:scalingPolicy:.+",
    r"arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:opsitem:.+",
    r"arn:aws[a-z-]*:ssm-incidents::\d{12}:response-plan/.+",
    r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:.+",
]


def _encrypted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    # CloudWatch Logs only accepts customer-managed keys, so a key id is a customer key.
    if not is_set(args.props, "kmsKeyId"):
        report_violation(f"Log group {args.name} is not encrypted with a customer-managed key: set kms_key_id to "
                         "the stack's key (EncryptionKey.arn).", None)


def _retention(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    retention = args.props.get("retentionInDays")
    if not isinstance(retention, (int, float)) or retention <= 0:
        report_violation(f"Log group {args.name} keeps logs forever: set retention_in_days "
                         "(settings.log_retention_days).", None)
        return
    minimum = args.get_config().get("minimumRetentionDays", 1)
    if retention < minimum:
        report_violation(f"Log group {args.name} keeps logs {retention:g} days: set retention_in_days to at least "
                         f"{minimum} (settings.log_retention_days).", None)


def _alarm_notifies(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    actions = items(peek(args.props, "alarmActions"))
    if not actions:
        report_violation(f"Alarm {args.name} notifies no one: set alarm_actions to the stack's alarm topic "
                         "(Observability's SNS topic ARN).", None)
        return
    patterns = [re.compile(p) for p in args.get_config().get("allowedActionPatterns", DEFAULT_ACTION_PATTERNS)]
    for action in actions:
        # An action wired to another resource is only known after deploy: its presence is what can be checked.
        if action is not UNKNOWN and not (isinstance(action, str) and any(p.fullmatch(action) for p in patterns)):
            report_violation(f"Alarm {args.name} sends its state to {action!r}, which is not an SNS topic or another "
                             "alarm action ARN: set alarm_actions to the stack's alarm topic ARN.", None)


def _actions_enabled(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if peek(args.props, "actionsEnabled") is False:
        report_violation(f"Alarm {args.name} has its actions turned off: remove actions_enabled=False (the default "
                         "is True) so a state change reaches the alarm topic.", None)


cloudwatch_loggroup_encrypted = resource_policy(
    "cloudwatch-loggroup-encrypted",
    "Log groups are encrypted with a customer-managed KMS key.",
    LOG_GROUP,
    _encrypted,
)
cloudwatch_loggroup_retention = configured_policy(
    "cloudwatch-loggroup-retention",
    "Log groups expire their events after a set retention (at least the configured minimum).",
    LOG_GROUP,
    _retention,
    # FSBP CloudWatch.16 defaults to 365 days; the stacks keep 14-90 (logRetentionDays), so the pack's default is 1.
    {"minimumRetentionDays": {"type": "integer", "minimum": 1, "default": 1}},
)

cloudwatch_metricalarm_actions = configured_policy(
    "cloudwatch-metricalarm-actions",
    "Alarms notify someone: alarm actions are set and name SNS topics or other alarm action ARNs.",
    (ALARM, COMPOSITE_ALARM),
    _alarm_notifies,
    {"allowedActionPatterns": {"type": "array", "items": {"type": "string"}, "default": DEFAULT_ACTION_PATTERNS}},
)
cloudwatch_metricalarm_actions_enabled = configured_policy(
    "cloudwatch-metricalarm-actions-enabled",
    "Alarms have their actions activated.",
    (ALARM, COMPOSITE_ALARM),
    _actions_enabled,
    {},
)

POLICIES = [cloudwatch_loggroup_encrypted, cloudwatch_loggroup_retention, cloudwatch_metricalarm_actions,
            cloudwatch_metricalarm_actions_enabled]
