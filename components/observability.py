"""Operations: one dashboard per stack, grouped by stage of the flow, and the alarms that wake someone up.

What they watch is passed by name (``Observed``), alarms are keyed by name, and the custom metrics come from the
contract the handlers emit them by (``common.contract``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypeAlias

import pulumi
import pulumi_aws as aws

from common.contract import METRICS_NAMESPACE, SURFACE_METRICS, Metric, Service
from components.settings import AlarmSettings, StackBasics
from components.shared import StackArns, email_subscriptions

STAGE = "v1"
PERIOD = 300


@dataclass(frozen=True)
class Observed:
    """The physical names (and one ARN) of what the dashboard and alarms watch."""

    region: str
    collect_api: pulumi.Input[str]
    serve_api: pulumi.Input[str]
    stream: pulumi.Input[str]
    delivery_stream: pulumi.Input[str]
    processor: pulumi.Input[str]
    recommendations: pulumi.Input[str]
    items: pulumi.Input[str]
    dead_letter_queue: pulumi.Input[str]
    failure_queue: pulumi.Input[str]
    training_machine_arn: pulumi.Input[str]
    web_acl: pulumi.Input[str]

    def resolved(self) -> pulumi.Output[Observed]:
        """The same names once known (the dashboard body is one JSON string)."""
        # asdict would deep-copy the outputs, which Pulumi forbids.
        return pulumi.Output.all(**{f.name: getattr(self, f.name) for f in fields(self)}).apply(
            lambda values: Observed(**values))


# (namespace, metric name, dimensions, statistic)
MetricRef: TypeAlias = tuple[str, str, Mapping[str, pulumi.Input[str]], str]


@dataclass(frozen=True)
class AlarmSpec:
    description: str
    threshold: float
    evaluation_periods: int
    # Either one metric or metric math (an expression over ids → metrics).
    metric: MetricRef | None = None
    expression: str | None = None
    inputs: dict[str, MetricRef] = field(default_factory=dict)
    period: int = PERIOD
    treat_missing_data: str = "notBreaching"


def _metric(namespace: str, name: str, dimensions: Mapping[str, Any], **options: Any) -> list[Any]:
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
            _widget("Events sent / skipped / retried / dead-lettered / from bots", [
                _metric(METRICS_NAMESPACE, m, {"service": Service.EVENT_PROCESSOR})
                for m in (Metric.EVENTS_SENT, Metric.EVENTS_SKIPPED, Metric.EVENTS_RETRIED,
                          Metric.EVENTS_DEAD_LETTERED, Metric.EVENTS_FROM_BOTS)], o.region),
        ]),
        ("Serving (recommendations, new items)", [
            _widget("Serving latency (p50, p99)", [_metric("AWS/ApiGateway", "Latency", serve, stat="p50"),
                                                   _metric("AWS/ApiGateway", "Latency", serve, stat="p99")],
                    o.region, stat="Average"),
            _widget("Fallback rate (%) by surface", [
                line for n, (surface, (served, fallback)) in enumerate(SURFACE_METRICS.items()) for line in (
                    _metric(METRICS_NAMESPACE, fallback, {"service": Service.RECOMMENDATIONS}, id=f"f{n}",
                            visible=False),
                    _metric(METRICS_NAMESPACE, served, {"service": Service.RECOMMENDATIONS}, id=f"r{n}",
                            visible=False),
                    [{"expression": f"100 * f{n} / IF(r{n} > 0, r{n}, 1)", "label": f"{surface} fallback %",
                      "id": f"rate{n}"}])], o.region),
            _widget("Serving requests / 5xx, items stored", [
                _metric("AWS/ApiGateway", "Count", serve), _metric("AWS/ApiGateway", "5XXError", serve),
                _metric(METRICS_NAMESPACE, Metric.ITEMS_STORED, {"service": Service.ITEMS})], o.region),
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


def alarm_specs(o: Observed, alarms: AlarmSettings) -> dict[str, AlarmSpec]:
    """The stack's alarms by name; dimensions are the watched resources' names as given (outputs or strings)."""
    def rate(errors: MetricRef, total: MetricRef, percent: int, description: str) -> AlarmSpec:
        return AlarmSpec(description, percent, 2, expression="100 * e / IF(n > 0, n, 1)",
                         inputs={"e": errors, "n": total})

    api = {"ApiName": o.collect_api, "Stage": STAGE}
    serve = {"ApiName": o.serve_api, "Stage": STAGE}
    recommendations = {"service": Service.RECOMMENDATIONS}
    return {
        "processor-iterator-age": AlarmSpec(
            "The event processor is behind the stream: real time is delayed.", alarms.iterator_age_seconds * 1000, 5,
            metric=("AWS/Lambda", "IteratorAge", {"FunctionName": o.processor}, "Maximum"), period=60),
        "processor-dead-letters": AlarmSpec(
            "Records the processor could never deliver are in its DLQ.", 0, 1,
            metric=("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": o.dead_letter_queue}, "Maximum")),
        "processor-abandoned-batches": AlarmSpec(
            "The stream mapping gave up on batches (metadata in the queue).", 0, 1,
            metric=("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": o.failure_queue}, "Maximum")),
        "collect-api-5xx": rate(
            ("AWS/ApiGateway", "5XXError", api, "Sum"), ("AWS/ApiGateway", "Count", api, "Sum"),
            alarms.api_5xx_percent, "The collection API fails requests: events may be lost by clients that do not "
                                    "retry."),
        "serve-api-5xx": rate(
            ("AWS/ApiGateway", "5XXError", serve, "Sum"), ("AWS/ApiGateway", "Count", serve, "Sum"),
            alarms.api_5xx_percent, "The serving API fails requests."),
        "fallback-rate": rate(
            (METRICS_NAMESPACE, Metric.FALLBACK_SERVED, recommendations, "Sum"),
            (METRICS_NAMESPACE, Metric.RECOMMENDATIONS_SERVED, recommendations, "Sum"),
            alarms.fallback_percent, "Too many readers get the fallback list instead of personalized posts."),
        "training-failed": AlarmSpec(
            "A training run failed; the notification on the training topic says where.", 0, 1,
            metric=("AWS/States", "ExecutionsFailed", {"StateMachineArn": o.training_machine_arn}, "Sum")),
        "firehose-freshness": AlarmSpec(
            "Raw clicks are not reaching S3 in time.", alarms.firehose_freshness_seconds, 2,
            metric=("AWS/Firehose", "DeliveryToS3.DataFreshness", {"DeliveryStreamName": o.delivery_stream},
                    "Maximum")),
        "waf-blocked-spike": AlarmSpec(
            "AWS WAF blocks an unusual number of requests (attack or false positives).",
            alarms.waf_blocked_per_5_minutes, 1,
            metric=("AWS/WAFV2", "BlockedRequests", {"WebACL": o.web_acl, "Region": o.region, "Rule": "ALL"},
                    "Sum")),
    }


@dataclass(frozen=True)
class ObservabilityArgs:
    stack: StackBasics
    alarms: AlarmSettings
    key_arn: pulumi.Input[str]
    observed: Observed


class Observability(pulumi.ComponentResource):
    topic: aws.sns.Topic
    dashboard: aws.cloudwatch.Dashboard

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:operations:Observability", name, None, opts)
        stack = args.stack
        child = pulumi.ResourceOptions(parent=self)
        arns = StackArns.of(self, stack)
        self.topic = aws.sns.Topic(f"{name}-alarms", name=stack.physical_name("alarms"),
                                   kms_master_key_id=args.key_arn, opts=child)
        email_subscriptions(self, f"{name}-alarm-email", self.topic, args.alarms.emails)
        alarm_arns = []
        for alarm, spec in alarm_specs(args.observed, args.alarms).items():
            physical = stack.physical_name(f"alarm-{alarm}", 255)
            self._alarm(f"{name}-{alarm}", physical, alarm, spec)
            alarm_arns.append(arns.arn("cloudwatch", f"alarm:{physical}"))
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard", dashboard_name=stack.physical_name("clickstream"),
            dashboard_body=pulumi.Output.all(args.observed.resolved(), pulumi.Output.all(*alarm_arns)).apply(
                lambda v: json.dumps(dashboard_body(v[0], v[1]))),
            opts=child)
        self.register_outputs({"dashboard": self.dashboard.dashboard_name, "alarmTopic": self.topic.arn})

    def _alarm(self, name: str, physical: str, label: str, spec: AlarmSpec) -> aws.cloudwatch.MetricAlarm:
        queries = None
        if spec.metric is None:
            queries = [*(aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=query_id, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=namespace, metric_name=metric, dimensions=dimensions, period=spec.period, stat=stat))
                for query_id, (namespace, metric, dimensions, stat) in spec.inputs.items()),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(id="value", expression=spec.expression, label=label,
                                                          return_data=True)]
        namespace, metric_name, dimensions, statistic = spec.metric or (None, None, None, None)
        return aws.cloudwatch.MetricAlarm(
            name,
            name=physical,
            alarm_description=spec.description,
            comparison_operator="GreaterThanThreshold",
            threshold=spec.threshold,
            evaluation_periods=spec.evaluation_periods,
            treat_missing_data=spec.treat_missing_data,
            namespace=namespace,
            metric_name=metric_name,
            dimensions=dimensions,
            statistic=statistic,
            period=spec.period if spec.metric else None,
            metric_queries=queries,
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )
