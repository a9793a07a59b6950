"""Operations: one dashboard per stack, grouped by stage of the flow, and the alarms that wake someone up."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.function import METRICS_NAMESPACE
from components.iam import account_and_partition
from components.settings import StackSettings

STAGE = "v1"
PERIOD = 300
# The alarms, in the order ``alarm_specs`` returns them (one CloudWatch alarm each).
ALARMS = ("processor-iterator-age", "processor-dead-letters", "processor-abandoned-batches", "collect-api-5xx",
          "serve-api-5xx", "fallback-rate", "training-failed", "firehose-freshness", "waf-blocked-spike")


@dataclass(frozen=True)
class Observed:
    """The physical names (and one ARN) of what the dashboard and alarms watch."""

    region: str
    collect_api: str
    serve_api: str
    stream: str
    delivery_stream: str
    processor: str
    recommendations: str
    items: str
    dead_letter_queue: str
    failure_queue: str
    training_machine_arn: str
    web_acl: str


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    description: str
    threshold: float
    evaluation_periods: int
    # Either one metric (namespace, name, dimensions, stat) or metric math (expression over ids → metrics).
    metric: tuple[str, str, dict[str, str], str] | None = None
    expression: str | None = None
    inputs: dict[str, tuple[str, str, dict[str, str], str]] = field(default_factory=dict)
    period: int = PERIOD
    treat_missing_data: str = "notBreaching"


def _metric(namespace: str, name: str, dimensions: dict[str, str], **options: Any) -> list[Any]:
    row: list[Any] = [namespace, name]
    for key, value in dimensions.items():
        row += [key, value]
    return [*row, options] if options else row


def _widget(title: str, metrics: Sequence[list[Any]], region: str, *, stat: str = "Sum", width: int = 8,
            view: str = "timeSeries") -> dict[str, Any]:
    return {"type": "metric", "width": width, "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": PERIOD, "view": view,
                           "metrics": list(metrics)}}


def dashboard_body(o: Observed, alarm_arns: Sequence[str]) -> dict[str, Any]:
    """The dashboard, top to bottom in the order a click travels; widgets are laid out in rows of 24 columns."""
    api = {"ApiName": o.collect_api, "Stage": STAGE}
    serve = {"ApiName": o.serve_api, "Stage": STAGE}
    sections: list[tuple[str, list[dict[str, Any]]]] = [
        ("Alarms", [{"type": "alarm", "width": 24, "height": 3,
                     "properties": {"title": "Alarms", "alarms": list(alarm_arns)}}]),
        ("Collection (API Gateway → Kinesis, behind AWS WAF)", [
            _widget("Requests and errors", [_metric("AWS/ApiGateway", m, api) for m in ("Count", "4XXError",
                                                                                        "5XXError")], o.region),
            _widget("Latency (p50, p99)", [_metric("AWS/ApiGateway", "Latency", api, stat="p50"),
                                           _metric("AWS/ApiGateway", "Latency", api, stat="p99")], o.region,
                    stat="Average"),
            _widget("WAF allowed / blocked", [
                _metric("AWS/WAFV2", m, {"WebACL": o.web_acl, "Region": o.region, "Rule": "ALL"})
                for m in ("AllowedRequests", "BlockedRequests")], o.region),
        ]),
        ("Stream (Kinesis)", [
            _widget("Incoming records", [_metric("AWS/Kinesis", "IncomingRecords", {"StreamName": o.stream})],
                    o.region),
            _widget("Incoming bytes / write throttles", [
                _metric("AWS/Kinesis", "IncomingBytes", {"StreamName": o.stream}),
                _metric("AWS/Kinesis", "WriteProvisionedThroughputExceeded", {"StreamName": o.stream})], o.region),
            _widget("Consumer lag (iterator age, ms)", [
                _metric("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", {"StreamName": o.stream}),
                _metric("AWS/Lambda", "IteratorAge", {"FunctionName": o.processor})], o.region, stat="Maximum"),
        ]),
        ("Storage (Firehose → S3)", [
            _widget("Delivery success", [_metric("AWS/Firehose", "DeliveryToS3.Success",
                                                 {"DeliveryStreamName": o.delivery_stream})], o.region,
                    stat="Average", width=12),
            _widget("Data freshness (s)", [_metric("AWS/Firehose", "DeliveryToS3.DataFreshness",
                                                   {"DeliveryStreamName": o.delivery_stream})], o.region,
                    stat="Maximum", width=12),
        ]),
        ("Real time (Kinesis → PutEvents)", [
            _widget("Processor errors / throttles", [
                _metric("AWS/Lambda", m, {"FunctionName": o.processor}) for m in ("Errors", "Throttles")], o.region),
            _widget("Processor duration (ms)", [_metric("AWS/Lambda", "Duration", {"FunctionName": o.processor})],
                    o.region, stat="p99"),
            _widget("Events sent / skipped / retried / dead-lettered", [
                _metric(METRICS_NAMESPACE, m, {"service": "event-processor"})
                for m in ("EventsSent", "EventsSkippedBeforeTraining", "EventsReportedForRetry",
                          "EventsDeadLettered")], o.region),
        ]),
        ("Serving (recommendations, new items)", [
            _widget("Serving latency (p50, p99)", [_metric("AWS/ApiGateway", "Latency", serve, stat="p50"),
                                                   _metric("AWS/ApiGateway", "Latency", serve, stat="p99")],
                    o.region, stat="Average"),
            _widget("Fallback rate (%)", [
                _metric(METRICS_NAMESPACE, "FallbackServed", {"service": "recommendations"}, id="f", visible=False),
                _metric(METRICS_NAMESPACE, "RecommendationsServed", {"service": "recommendations"}, id="r",
                        visible=False),
                [{"expression": "100 * f / IF(r > 0, r, 1)", "label": "fallback %", "id": "rate"}]], o.region),
            _widget("Serving requests / 5xx, items stored", [
                _metric("AWS/ApiGateway", "Count", serve), _metric("AWS/ApiGateway", "5XXError", serve),
                _metric(METRICS_NAMESPACE, "ItemsStored", {"service": "items"})], o.region),
        ]),
        ("Training (Step Functions → Personalize)", [
            _widget("Executions succeeded / failed", [
                _metric("AWS/States", m, {"StateMachineArn": o.training_machine_arn})
                for m in ("ExecutionsSucceeded", "ExecutionsFailed")], o.region, width=12),
            _widget("Successful trainings, last 7 days", [
                _metric("AWS/States", "ExecutionsSucceeded", {"StateMachineArn": o.training_machine_arn},
                        period=604800)], o.region, width=12, view="singleValue"),
        ]),
    ]
    widgets: list[dict[str, Any]] = []
    y = 0
    for title, row in sections:
        widgets.append({"type": "text", "x": 0, "y": y, "width": 24, "height": 1,
                        "properties": {"markdown": f"## {title}"}})
        y += 1
        x = 0
        for widget in row:
            widgets.append({**widget, "x": x, "y": y})
            x += widget["width"]
        y += max(w["height"] for w in row)
    return {"widgets": widgets}


def alarm_specs(o: Observed, settings: StackSettings) -> list[AlarmSpec]:
    a = settings.alarms

    def rate(name: str, errors: tuple[str, str, dict[str, str], str], total: tuple[str, str, dict[str, str], str],
             percent: int, description: str) -> AlarmSpec:
        return AlarmSpec(name, description, percent, 2, expression="100 * e / IF(n > 0, n, 1)",
                         inputs={"e": errors, "n": total})

    api = {"ApiName": o.collect_api, "Stage": STAGE}
    serve = {"ApiName": o.serve_api, "Stage": STAGE}
    return [
        AlarmSpec("processor-iterator-age", "The event processor is behind the stream: real time is delayed.",
                  a.iterator_age_seconds * 1000, 5,
                  metric=("AWS/Lambda", "IteratorAge", {"FunctionName": o.processor}, "Maximum"), period=60),
        AlarmSpec("processor-dead-letters", "Records the processor could never deliver are in its DLQ.", 0, 1,
                  metric=("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": o.dead_letter_queue},
                          "Maximum")),
        AlarmSpec("processor-abandoned-batches", "The stream mapping gave up on batches (metadata in the queue).",
                  0, 1, metric=("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": o.failure_queue},
                                "Maximum")),
        rate("collect-api-5xx", ("AWS/ApiGateway", "5XXError", api, "Sum"), ("AWS/ApiGateway", "Count", api, "Sum"),
             a.api_5xx_percent, "The collection API fails requests: events may be lost by clients that do not retry."),
        rate("serve-api-5xx", ("AWS/ApiGateway", "5XXError", serve, "Sum"),
             ("AWS/ApiGateway", "Count", serve, "Sum"), a.api_5xx_percent, "The serving API fails requests."),
        rate("fallback-rate", (METRICS_NAMESPACE, "FallbackServed", {"service": "recommendations"}, "Sum"),
             (METRICS_NAMESPACE, "RecommendationsServed", {"service": "recommendations"}, "Sum"),
             a.fallback_percent, "Too many readers get the fallback list instead of personalized posts."),
        AlarmSpec("training-failed", "A training run failed; the notification on the training topic says where.",
                  0, 1, metric=("AWS/States", "ExecutionsFailed", {"StateMachineArn": o.training_machine_arn},
                                "Sum")),
        AlarmSpec("firehose-freshness", "Raw clicks are not reaching S3 in time.", a.firehose_freshness_seconds, 2,
                  metric=("AWS/Firehose", "DeliveryToS3.DataFreshness", {"DeliveryStreamName": o.delivery_stream},
                          "Maximum")),
        AlarmSpec("waf-blocked-spike", "AWS WAF blocks an unusual number of requests (attack or false positives).",
                  a.waf_blocked_per_5_minutes, 1,
                  metric=("AWS/WAFV2", "BlockedRequests", {"WebACL": o.web_acl, "Region": o.region, "Rule": "ALL"},
                          "Sum")),
    ]


def _item(index: int) -> Callable[[list[AlarmSpec]], AlarmSpec]:
    return lambda specs: specs[index]


@dataclass(frozen=True)
class ObservabilityArgs:
    settings: StackSettings
    key_arn: pulumi.Input[str]
    observed: pulumi.Input[Observed]


class Observability(pulumi.ComponentResource):
    topic: aws.sns.Topic
    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:operations:Observability", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        account, partition = account_and_partition(self)
        self.topic = aws.sns.Topic(f"{name}-alarms", name=settings.physical_name("alarms"),
                                   kms_master_key_id=args.key_arn, opts=child)
        for index, email in enumerate(settings.alarms.emails):
            aws.sns.TopicSubscription(f"{name}-alarm-email-{index}", topic=self.topic.arn, protocol="email",
                                      endpoint=email, opts=child)
        observed = pulumi.Output.from_input(args.observed)
        specs = observed.apply(lambda o: alarm_specs(o, settings))
        alarm_names = [settings.physical_name(f"alarm-{alarm}", 255) for alarm in ALARMS]
        for index, alarm in enumerate(ALARMS):
            self._alarm(f"{name}-{alarm}", alarm_names[index], specs.apply(_item(index)))
        alarm_arns = pulumi.Output.all(partition, account).apply(lambda v: [
            f"arn:{v[0]}:cloudwatch:{settings.region}:{v[1]}:alarm:{n}" for n in alarm_names])
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=settings.physical_name("clickstream"),
            dashboard_body=pulumi.Output.all(observed, alarm_arns).apply(
                lambda v: json.dumps(dashboard_body(v[0], v[1]))),
            opts=child)
        self.register_outputs({"dashboard": self.dashboard.dashboard_name, "alarmTopic": self.topic.arn})

    def _alarm(self, name: str, physical: str, spec: pulumi.Output[AlarmSpec]) -> aws.cloudwatch.MetricAlarm:
        def queries(s: AlarmSpec) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgs] | None:
            if s.metric:
                return None
            inputs = [aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=query_id, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=namespace, metric_name=metric, dimensions=dimensions, period=s.period, stat=stat))
                for query_id, (namespace, metric, dimensions, stat) in s.inputs.items()]
            return [*inputs, aws.cloudwatch.MetricAlarmMetricQueryArgs(id="value", expression=s.expression,
                                                                        label=s.name, return_data=True)]

        def single(index: int) -> pulumi.Output[Any]:
            return spec.apply(lambda s: s.metric[index] if s.metric else None)

        return aws.cloudwatch.MetricAlarm(
            name,
            name=physical,
            alarm_description=spec.apply(lambda s: s.description),
            comparison_operator="GreaterThanThreshold",
            threshold=spec.apply(lambda s: s.threshold),
            evaluation_periods=spec.apply(lambda s: s.evaluation_periods),
            treat_missing_data=spec.apply(lambda s: s.treat_missing_data),
            namespace=single(0),
            metric_name=single(1),
            dimensions=single(2),
            statistic=single(3),
            period=spec.apply(lambda s: s.period if s.metric else None),
            metric_queries=spec.apply(queries),
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )
