"""Typed, validated stack settings.

Every stack reads its configuration once, here, into frozen dataclasses. Nothing is created in AWS before the whole
configuration is known to be valid: a bad value raises ``SettingsError`` naming the key, the value and what is
allowed. ``CONFIG_KEYS`` is the single table of keys; ``Pulumi.yaml`` and the README's configuration reference are
checked against it by the tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

PROJECT = "clickstream-personalization"
APP_TAG = "clickstream-personalization"

# Regions of the commercial partition where Amazon Personalize *and* AWS WAFv2 are offered (checked against botocore's
# endpoint data by the tests), with the short code used in physical names.
REGION_CODES: Mapping[str, str] = {
    "us-east-1": "use1",
    "us-east-2": "use2",
    "us-west-2": "usw2",
    "ca-central-1": "cac1",
    "eu-west-1": "euw1",
    "eu-central-1": "euc1",
    "ap-south-1": "aps1",
    "ap-southeast-1": "apse1",
    "ap-southeast-2": "apse2",
    "ap-northeast-1": "apne1",
    "ap-northeast-2": "apne2",
}

# The only values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)

LAMBDA_RUNTIME = "python3.13"
LAMBDA_ARCHITECTURES = ("arm64", "x86_64")
# Account that publishes the Powertools for AWS Lambda (Python) layers in the commercial partition.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"

RESERVED_TAG_KEYS = ("app", "environment", "stack")
MAX_TAGS = 50  # per AWS resource; the provider merges default tags into this budget

STREAM_MODES = ("ON_DEMAND", "PROVISIONED")
DEFAULT_EVENT_TYPES = ["view", "click", "read", "share"]

ConfigType: TypeAlias = Literal["string", "integer", "boolean", "array"]
ConfigValue: TypeAlias = "str | int | bool | list[str] | None"


@dataclass(frozen=True)
class ConfigKey:
    """One key of the project's configuration namespace, as declared in Pulumi.yaml."""

    name: str
    type: ConfigType
    default: ConfigValue
    description: str


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("environment", "string", None,
              "Environment name (dev, staging, prod, ...): 2-12 lowercase letters or digits, starting with a letter. "
              "Required."),
    ConfigKey("namePrefix", "string", "",
              "Prefix of every physical name. Empty: cp-<environment>-<region code>, unique per environment and "
              "region so two stacks never collide in one account. 3-24 lowercase letters, digits or hyphens."),
    ConfigKey("extraTags", "array", [],
              "Extra tags for every taggable resource, as \"Key=Value\" strings. The keys app, environment and stack "
              "are set by the program and cannot be overridden."),
    ConfigKey("logRetentionDays", "integer", 30,
              "Retention of every log group the stack creates; one of CloudWatch Logs' allowed values."),
    ConfigKey("kmsKeyDeletionWindowDays", "integer", 30,
              "Waiting period (7-30 days) before the stack's KMS key is deleted after `pulumi destroy`."),
    ConfigKey("lambdaArchitecture", "string", "arm64", "Instruction set of every Lambda function: arm64 or x86_64."),
    ConfigKey("powertoolsLayerVersion", "integer", 27,
              "Version of the AWS-published Powertools for AWS Lambda (Python) v3 layer. The layer ARN is built "
              "from the stack's region, the Lambda runtime and the architecture."),
    ConfigKey("eventTypes", "array", DEFAULT_EVENT_TYPES,
              "Event types the collection API accepts (1-20 distinct names, each a letter then up to 31 letters, "
              "digits, _ or -)."),
    ConfigKey("collectClientDetails", "boolean", False,
              "Add the client's source IP and user agent to every collected event. Personal data: off unless your "
              "privacy notice covers it."),
    ConfigKey("collectionApiKeyRequired", "boolean", True,
              "Require an API key (x-api-key) on POST /events. Turn off only for public browser collection, where "
              "navigator.sendBeacon cannot send headers."),
    ConfigKey("corsAllowedOrigins", "array", [],
              "Origins (https://host[:port]) whose pages may call the collection API from a browser. Empty: no CORS."),
    ConfigKey("apiThrottleRateLimit", "integer", 500,
              "Steady-state requests per second the collection API stage accepts (1-10000)."),
    ConfigKey("apiThrottleBurstLimit", "integer", 1000,
              "Burst of requests the collection API stage accepts (1-5000, at least the rate limit)."),
    ConfigKey("apiQuotaPerDay", "integer", 0,
              "Requests per day allowed to the collection API key by its usage plan; 0 for no quota."),
    ConfigKey("streamMode", "string", "ON_DEMAND", "Kinesis capacity mode: ON_DEMAND or PROVISIONED."),
    ConfigKey("streamShardCount", "integer", 1,
              "Shards of the stream in PROVISIONED mode (1-500); ignored on demand."),
    ConfigKey("streamRetentionHours", "integer", 24,
              "How long the stream keeps records (24-8760 hours): the window to replay or recover consumers."),
    ConfigKey("firehoseBufferSeconds", "integer", 300,
              "Firehose buffering interval before writing an object to S3 (60-900 seconds)."),
    ConfigKey("firehoseBufferMiB", "integer", 64,
              "Firehose buffering size before writing an object to S3 (1-128 MiB)."),
    ConfigKey("rawDataTransitionDays", "integer", 30,
              "Days after which raw clickstream objects move to S3 Standard-IA (at least 30); 0 to keep them in "
              "Standard."),
    ConfigKey("rawDataExpirationDays", "integer", 0,
              "Days after which raw clickstream objects are deleted (0: never, training reads the history); must "
              "exceed rawDataTransitionDays when both are set."),
    ConfigKey("noncurrentVersionExpirationDays", "integer", 30,
              "Days after which overwritten or deleted versions of raw objects are removed (1-3650)."),
    ConfigKey("processorBatchSize", "integer", 100,
              "Records per invocation of the real-time event processor (1-10000)."),
    ConfigKey("processorBatchingWindowSeconds", "integer", 1,
              "Seconds the event source mapping may wait to fill a batch (0-300): latency against cost."),
    ConfigKey("processorParallelizationFactor", "integer", 2,
              "Concurrent batches per shard (1-10); a session stays on one shard and in order."),
    ConfigKey("processorMaximumRecordAgeSeconds", "integer", 21600,
              "Records older than this (60-604800 s) go to the on-failure queue instead of blocking a shard."),
    ConfigKey("processorMaximumRetryAttempts", "integer", 10,
              "Retries of a failing batch before its metadata goes to the on-failure queue (0-10000)."),
    ConfigKey("processorConcurrency", "integer", 8,
              "PutEvents calls in flight at once inside one invocation (1-64)."),
    ConfigKey("processorMemoryMb", "integer", 512, "Memory of the event processor (128-10240 MB)."),
    ConfigKey("processorTimeoutSeconds", "integer", 60, "Timeout of the event processor (10-900 s)."),
    ConfigKey("parameterCacheSeconds", "integer", 60,
              "How long functions cache what training publishes in SSM (1-3600 s): a new tracker or campaign "
              "is picked up within this time."),
    ConfigKey("personalizeFilters", "array", ['unread=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")'],
              "Recommendation filters as \"name=expression\" (Personalize filter expressions), at most 10; "
              "clients pass the name as ?filter=<name>."),
    ConfigKey("servingThrottleRateLimit", "integer", 200,
              "Steady-state requests per second of the serving API stage and its key (1-10000)."),
    ConfigKey("servingThrottleBurstLimit", "integer", 400,
              "Burst of requests of the serving API stage and its key (1-5000, at least the rate limit)."),
    ConfigKey("wafRateLimitPer5Minutes", "integer", 2000,
              "Requests one client IP may make in 5 minutes before AWS WAF blocks it (10-2000000000)."),
    ConfigKey("wafBlockAnonymousIps", "boolean", False,
              "Also block VPNs, proxies and Tor (the AWS anonymous-IP list); readers behind them lose access."),
    ConfigKey("wafCountOnlyRules", "array", [],
              "Managed rules to count instead of block, as \"RuleGroup:RuleName\" (for false positives you have "
              "seen in the WAF logs)."),
    ConfigKey("trainingRecipe", "string", "aws-user-personalization-v2",
              "Amazon Personalize recipe the solution trains with (its name, e.g. aws-user-personalization-v2)."),
    ConfigKey("trainingMetric", "string", "normalized_discounted_cumulative_gain_at_25",
              "Offline metric the gate compares before promoting a new solution version."),
    ConfigKey("trainingMetricTolerance", "string", "0.01",
              "How much worse (absolute, 0-1) the new version's metric may be and still be promoted."),
    ConfigKey("trainingMinInteractions", "integer", 1000,
              "Interactions needed to train (at least Personalize's minimum, 1000)."),
    ConfigKey("trainingMinUsersWithTwoInteractions", "integer", 25,
              "Users with 2 or more interactions needed to train (at least Personalize's minimum, 25)."),
    ConfigKey("campaignMinProvisionedTps", "integer", 1,
              "Minimum provisioned transactions per second of the campaign (1-500); billed at least this."),
    ConfigKey("trainingSchedule", "string", "",
              "EventBridge Scheduler expression for retraining, e.g. rate(7 days) or cron(0 3 ? * SUN *); empty: "
              "no schedule (run `python -m tools.train`)."),
    ConfigKey("trainingNotificationEmails", "array", [],
              "E-mail addresses subscribed to the training notifications (each must confirm the subscription)."),
    ConfigKey("trainingShards", "integer", 8,
              "Parts the prepared interactions are split into (1-64): more for more data per run."),
    ConfigKey("trainingPollSeconds", "integer", 60,
              "Seconds between status checks of Personalize jobs (10-3600)."),
    ConfigKey("alarmEmails", "array", [],
              "E-mail addresses subscribed to the operations alarms topic (each must confirm the subscription)."),
    ConfigKey("alarmIteratorAgeSeconds", "integer", 300,
              "Alarm when the event processor falls this far behind the stream (60-86400 s)."),
    ConfigKey("alarmApi5xxPercent", "integer", 1, "Alarm when this share of API requests fail with 5xx (1-100 %)."),
    ConfigKey("alarmFallbackPercent", "integer", 20,
              "Alarm when this share of recommendations come from the fallback list (1-100 %)."),
    ConfigKey("alarmFirehoseFreshnessSeconds", "integer", 900,
              "Alarm when the oldest record not yet in S3 is this old (60-86400 s)."),
    ConfigKey("alarmWafBlockedPer5Minutes", "integer", 1000,
              "Alarm when AWS WAF blocks more requests than this in 5 minutes (1-10000000)."),
    ConfigKey("replicaRegion", "string", "",
              "Region the raw clickstream bucket is replicated to for disaster recovery (with its own KMS key there); "
              "empty: no replica. Must differ from the stack's region."),
    ConfigKey("manageApiGatewayAccount", "boolean", True,
              "Set the region's API Gateway CloudWatch role (an account-wide setting needed for execution logs). "
              "Only one stack per account and region may manage it: set false in the others."),
)

CONFIG_KEYS_BY_NAME: Mapping[str, ConfigKey] = {key.name: key for key in CONFIG_KEYS}

_ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9]{1,11}$")
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$")
_TAG_KEY_RE = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_TAG_VALUE_RE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
_EVENT_TYPE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,31}$")
_WAF_RULE_RE = re.compile(r"^(AWSManagedRules[A-Za-z]+):([A-Za-z0-9_-]{1,128})$")
_RECIPE_RE = re.compile(r"^aws-[a-z0-9-]{1,60}$")
_METRIC_RE = re.compile(r"^[a-z][a-z0-9_]{1,80}$")
_SCHEDULE_RE = re.compile(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]{9,100}\))$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FILTER_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_ORIGIN_RE = re.compile(r"^(https://[a-z0-9.-]+|http://localhost)(:[0-9]{1,5})?$")


class SettingsError(ValueError):
    """The stack's configuration is invalid; the message lists every problem, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class IngestionSettings:
    event_types: tuple[str, ...]
    collect_client_details: bool
    api_key_required: bool
    cors_allowed_origins: tuple[str, ...]
    throttle_rate_limit: int
    throttle_burst_limit: int
    quota_per_day: int
    stream_mode: str
    stream_shard_count: int
    stream_retention_hours: int
    firehose_buffer_seconds: int
    firehose_buffer_mib: int
    raw_transition_days: int
    raw_expiration_days: int
    noncurrent_version_expiration_days: int
    manage_api_gateway_account: bool


@dataclass(frozen=True)
class RealtimeSettings:
    batch_size: int
    batching_window_seconds: int
    parallelization_factor: int
    maximum_record_age_seconds: int
    maximum_retry_attempts: int
    concurrency: int
    memory_mb: int
    timeout_seconds: int
    parameter_cache_seconds: int


@dataclass(frozen=True)
class ServingSettings:
    filters: Mapping[str, str]
    throttle_rate_limit: int
    throttle_burst_limit: int


@dataclass(frozen=True)
class WafSettings:
    rate_limit_per_5_minutes: int
    block_anonymous_ips: bool
    count_only_rules: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class TrainingSettings:
    recipe: str
    metric: str
    metric_tolerance: float
    min_interactions: int
    min_users_with_two: int
    min_provisioned_tps: int
    schedule: str
    notification_emails: tuple[str, ...]
    shards: int
    poll_seconds: int


@dataclass(frozen=True)
class AlarmSettings:
    emails: tuple[str, ...]
    iterator_age_seconds: int
    api_5xx_percent: int
    fallback_percent: int
    firehose_freshness_seconds: int
    waf_blocked_per_5_minutes: int


@dataclass(frozen=True)
class StackSettings:
    project: str
    stack: str
    environment: str
    region: str
    name_prefix: str
    tags: Mapping[str, str]
    log_retention_days: int
    kms_key_deletion_window_days: int
    lambda_architecture: str
    powertools_layer_version: int
    ingestion: IngestionSettings
    realtime: RealtimeSettings
    serving: ServingSettings
    waf: WafSettings
    training: TrainingSettings
    alarms: AlarmSettings
    replica_region: str

    @property
    def region_code(self) -> str:
        return REGION_CODES[self.region]

    def physical_name(self, suffix: str, max_length: int = 64) -> str:
        """``<prefix>-<suffix>``: every physical name derives from the stack's prefix."""
        name = f"{self.name_prefix}-{suffix}"
        if len(name) > max_length:
            raise ValueError(f"physical name {name!r} is longer than {max_length} characters")
        return name

    def parameter_name(self, key: str) -> str:
        """The SSM parameter where training publishes ``key`` and the handlers read it."""
        return f"/{self.name_prefix}/personalize/{key}"

    def powertools_layer_arn(self, partition: str = "aws") -> str:
        runtime = LAMBDA_RUNTIME.replace(".", "")
        return (f"arn:{partition}:lambda:{self.region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
                f"AWSLambdaPowertoolsPythonV3-{runtime}-{self.lambda_architecture}:{self.powertools_layer_version}")


def _qualified(key: str) -> str:
    return f"{PROJECT}:{key}"


class _Reader:
    """Reads raw (string) config values, recording one problem per bad key instead of stopping at the first."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []

    def problem(self, key: str, raw: object, allowed: str) -> None:
        self.problems.append(f"{_qualified(key)} = {raw!r} is invalid: {allowed}")

    def raw(self, key: str) -> str | None:
        return self.values.get(key)

    def string(self, key: str, pattern: re.Pattern[str] | None = None, allowed: str = "") -> str:
        default = CONFIG_KEYS_BY_NAME[key].default
        raw = self.raw(key)
        if raw is None or (raw == "" and default is None):
            if default is None:
                self.problems.append(f"{_qualified(key)} is required: {allowed} "
                                     f"(set it with `pulumi config set {key} <value>`)")
                return ""
            return str(default)
        if pattern is not None and raw != "" and not pattern.match(raw):
            self.problem(key, raw, allowed)
        return raw

    def integer(self, key: str, valid: Callable[[int], bool], allowed: str) -> int:
        default = CONFIG_KEYS_BY_NAME[key].default
        assert isinstance(default, int)
        raw = self.raw(key)
        if raw is None:
            return default
        try:
            value = int(raw.strip())
        except ValueError:
            self.problem(key, raw, f"must be an integer; {allowed}")
            return default
        if not valid(value):
            self.problem(key, raw, allowed)
            return default
        return value

    def boolean(self, key: str) -> bool:
        default = CONFIG_KEYS_BY_NAME[key].default
        assert isinstance(default, bool)
        raw = self.raw(key)
        if raw is None:
            return default
        if raw.strip().lower() not in ("true", "false"):
            self.problem(key, raw, "must be true or false")
            return default
        return raw.strip().lower() == "true"

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(key)
        if value not in choices:
            self.problem(key, value, "must be one of " + ", ".join(choices))
        return value

    def string_list(self, key: str) -> list[str]:
        raw = self.raw(key)
        if raw is None:
            default = CONFIG_KEYS_BY_NAME[key].default
            assert isinstance(default, list)
            return list(default)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key, raw, "must be a list of strings")
            return []
        return value


def _parse_tags(reader: _Reader, environment: str, stack: str) -> dict[str, str]:
    tags = {"app": APP_TAG, "environment": environment, "stack": stack}
    for entry in reader.string_list("extraTags"):
        key, sep, value = entry.partition("=")
        if not sep or not _TAG_KEY_RE.match(key) or not _TAG_VALUE_RE.match(value):
            reader.problem("extraTags", entry, "each entry must be Key=Value, key 1-128 and value 0-256 of letters, "
                                               "digits, spaces and _.:/=+-@")
        elif key.lower().startswith("aws:"):
            reader.problem("extraTags", entry, "tag keys starting with 'aws:' are reserved by AWS")
        elif key in RESERVED_TAG_KEYS:
            reader.problem("extraTags", entry, f"the tag key {key!r} is set by the program and cannot be overridden")
        elif key in tags:
            reader.problem("extraTags", entry, f"the tag key {key!r} is given twice")
        else:
            tags[key] = value
    if len(tags) > MAX_TAGS:
        reader.problem("extraTags", f"{len(tags) - len(RESERVED_TAG_KEYS)} tags",
                       f"at most {MAX_TAGS - len(RESERVED_TAG_KEYS)} extra tags fit AWS's limit of {MAX_TAGS}")
    return tags


def _parse_ingestion(reader: _Reader) -> IngestionSettings:
    event_types = reader.string_list("eventTypes")
    bad_types = [t for t in event_types if not _EVENT_TYPE_RE.match(t)]
    if bad_types or not 1 <= len(event_types) <= 20 or len(set(event_types)) != len(event_types):
        reader.problem("eventTypes", event_types, "1-20 distinct names, each a letter then up to 31 letters, "
                                                  "digits, _ or -")
    origins = reader.string_list("corsAllowedOrigins")
    bad_origins = [o for o in origins if not _ORIGIN_RE.match(o)]
    if bad_origins or len(origins) > 10:
        reader.problem("corsAllowedOrigins", bad_origins or origins,
                       "at most 10 origins, each https://host[:port] (or http://localhost[:port]), lowercase, "
                       "without a path")
    rate = reader.integer("apiThrottleRateLimit", lambda v: 1 <= v <= 10000, "must be between 1 and 10000")
    burst = reader.integer("apiThrottleBurstLimit", lambda v: 1 <= v <= 5000, "must be between 1 and 5000")
    if burst < min(rate, 5000):
        reader.problem("apiThrottleBurstLimit", burst, f"must be at least apiThrottleRateLimit ({rate})")
    transition = reader.integer("rawDataTransitionDays", lambda v: v == 0 or v >= 30,
                                "must be 0 (no transition) or at least 30 (S3 Standard-IA's minimum)")
    expiration = reader.integer("rawDataExpirationDays", lambda v: v >= 0, "must be 0 (never) or a number of days")
    if expiration and transition and expiration <= transition:
        reader.problem("rawDataExpirationDays", expiration,
                       f"must be greater than rawDataTransitionDays ({transition}) or 0")
    return IngestionSettings(
        event_types=tuple(event_types),
        collect_client_details=reader.boolean("collectClientDetails"),
        api_key_required=reader.boolean("collectionApiKeyRequired"),
        cors_allowed_origins=tuple(origins),
        throttle_rate_limit=rate,
        throttle_burst_limit=burst,
        quota_per_day=reader.integer("apiQuotaPerDay", lambda v: v >= 0, "must be 0 (no quota) or positive"),
        stream_mode=reader.choice("streamMode", STREAM_MODES),
        stream_shard_count=reader.integer("streamShardCount", lambda v: 1 <= v <= 500, "must be between 1 and 500"),
        stream_retention_hours=reader.integer("streamRetentionHours", lambda v: 24 <= v <= 8760,
                                              "must be between 24 and 8760 (hours)"),
        firehose_buffer_seconds=reader.integer("firehoseBufferSeconds", lambda v: 60 <= v <= 900,
                                               "must be between 60 and 900 (seconds)"),
        firehose_buffer_mib=reader.integer("firehoseBufferMiB", lambda v: 1 <= v <= 128,
                                           "must be between 1 and 128 (MiB)"),
        raw_transition_days=transition,
        raw_expiration_days=expiration,
        noncurrent_version_expiration_days=reader.integer("noncurrentVersionExpirationDays",
                                                          lambda v: 1 <= v <= 3650, "must be between 1 and 3650"),
        manage_api_gateway_account=reader.boolean("manageApiGatewayAccount"),
    )


def _parse_realtime(reader: _Reader) -> RealtimeSettings:
    def between(key: str, low: int, high: int) -> int:
        return reader.integer(key, lambda v: low <= v <= high, f"must be between {low} and {high}")

    return RealtimeSettings(
        batch_size=between("processorBatchSize", 1, 10000),
        batching_window_seconds=between("processorBatchingWindowSeconds", 0, 300),
        parallelization_factor=between("processorParallelizationFactor", 1, 10),
        maximum_record_age_seconds=between("processorMaximumRecordAgeSeconds", 60, 604800),
        maximum_retry_attempts=between("processorMaximumRetryAttempts", 0, 10000),
        concurrency=between("processorConcurrency", 1, 64),
        memory_mb=between("processorMemoryMb", 128, 10240),
        timeout_seconds=between("processorTimeoutSeconds", 10, 900),
        parameter_cache_seconds=between("parameterCacheSeconds", 1, 3600),
    )


def _parse_serving(reader: _Reader) -> ServingSettings:
    filters: dict[str, str] = {}
    entries = reader.string_list("personalizeFilters")
    for entry in entries:
        name, sep, expression = entry.partition("=")
        if not sep or not _FILTER_NAME_RE.match(name) or not 1 <= len(expression.strip()) <= 2500 or name in filters:
            reader.problem("personalizeFilters", entry, "each entry is name=expression, the name 1-31 lowercase "
                                                        "letters, digits or - (unique), the expression 1-2500 chars")
        else:
            filters[name] = expression.strip()
    if len(entries) > 10:
        reader.problem("personalizeFilters", f"{len(entries)} filters", "at most 10 (Personalize's quota)")
    rate = reader.integer("servingThrottleRateLimit", lambda v: 1 <= v <= 10000, "must be between 1 and 10000")
    burst = reader.integer("servingThrottleBurstLimit", lambda v: 1 <= v <= 5000, "must be between 1 and 5000")
    if burst < min(rate, 5000):
        reader.problem("servingThrottleBurstLimit", burst, f"must be at least servingThrottleRateLimit ({rate})")
    return ServingSettings(filters=filters, throttle_rate_limit=rate, throttle_burst_limit=burst)


def _parse_waf(reader: _Reader) -> WafSettings:
    overrides: list[tuple[str, str]] = []
    for entry in reader.string_list("wafCountOnlyRules"):
        match = _WAF_RULE_RE.match(entry)
        if match is None:
            reader.problem("wafCountOnlyRules", entry, "each entry is AWSManagedRules<Group>:<RuleName>")
        else:
            overrides.append((match.group(1), match.group(2)))
    return WafSettings(
        rate_limit_per_5_minutes=reader.integer("wafRateLimitPer5Minutes", lambda v: 10 <= v <= 2_000_000_000,
                                                "must be between 10 and 2000000000"),
        block_anonymous_ips=reader.boolean("wafBlockAnonymousIps"),
        count_only_rules=tuple(overrides),
    )


def _parse_training(reader: _Reader) -> TrainingSettings:
    raw_tolerance = reader.string("trainingMetricTolerance")
    try:
        tolerance = float(raw_tolerance)
        if not 0 <= tolerance <= 1:
            raise ValueError
    except ValueError:
        reader.problem("trainingMetricTolerance", raw_tolerance, "must be a number from 0 to 1")
        tolerance = 0.0
    emails = reader.string_list("trainingNotificationEmails")
    for email in emails:
        if not _EMAIL_RE.match(email):
            reader.problem("trainingNotificationEmails", email, "each entry must be an e-mail address")
    schedule = reader.string("trainingSchedule", _SCHEDULE_RE, "rate(<n> minutes|hours|days) or cron(<6 fields>)")
    return TrainingSettings(
        recipe=reader.string("trainingRecipe", _RECIPE_RE, "an AWS recipe name such as aws-user-personalization-v2"),
        metric=reader.string("trainingMetric", _METRIC_RE, "a Personalize metric name such as "
                                                           "normalized_discounted_cumulative_gain_at_25"),
        metric_tolerance=tolerance,
        min_interactions=reader.integer("trainingMinInteractions", lambda v: v >= 1000,
                                        "must be at least 1000 (Personalize's minimum)"),
        min_users_with_two=reader.integer("trainingMinUsersWithTwoInteractions", lambda v: v >= 25,
                                          "must be at least 25 (Personalize's minimum)"),
        min_provisioned_tps=reader.integer("campaignMinProvisionedTps", lambda v: 1 <= v <= 500,
                                           "must be between 1 and 500"),
        schedule=schedule,
        notification_emails=tuple(emails),
        shards=reader.integer("trainingShards", lambda v: 1 <= v <= 64, "must be between 1 and 64"),
        poll_seconds=reader.integer("trainingPollSeconds", lambda v: 10 <= v <= 3600,
                                    "must be between 10 and 3600"),
    )


def _parse_alarms(reader: _Reader) -> AlarmSettings:
    emails = reader.string_list("alarmEmails")
    for email in emails:
        if not _EMAIL_RE.match(email):
            reader.problem("alarmEmails", email, "each entry must be an e-mail address")

    def between(key: str, low: int, high: int) -> int:
        return reader.integer(key, lambda v: low <= v <= high, f"must be between {low} and {high}")

    return AlarmSettings(
        emails=tuple(emails),
        iterator_age_seconds=between("alarmIteratorAgeSeconds", 60, 86400),
        api_5xx_percent=between("alarmApi5xxPercent", 1, 100),
        fallback_percent=between("alarmFallbackPercent", 1, 100),
        firehose_freshness_seconds=between("alarmFirehoseFreshnessSeconds", 60, 86400),
        waf_blocked_per_5_minutes=between("alarmWafBlockedPer5Minutes", 1, 10_000_000),
    )


def parse_settings(values: Mapping[str, str], *, region: str | None, stack: str,
                   project: str = PROJECT) -> StackSettings:
    """Validate raw config values (``key -> string``, without namespace) into ``StackSettings``.

    Raises ``SettingsError`` listing every problem; creates nothing.
    """
    reader = _Reader(values)
    for key in sorted(set(values) - set(CONFIG_KEYS_BY_NAME)):
        reader.problem(key, values[key], "unknown key; the keys are " + ", ".join(CONFIG_KEYS_BY_NAME))

    if region is None:
        reader.problems.append("aws:region is required (set it with `pulumi config set aws:region <region>`)")
        region = ""
    elif region not in REGION_CODES:
        reader.problems.append(f"aws:region = {region!r} is invalid: Amazon Personalize and AWS WAF are both offered "
                               f"only in " + ", ".join(sorted(REGION_CODES)))

    environment = reader.string("environment", _ENVIRONMENT_RE,
                                "2-12 lowercase letters or digits, starting with a letter")
    prefix = reader.string("namePrefix", _PREFIX_RE, "3-24 lowercase letters, digits or hyphens, starting with a "
                                                     "letter and not ending in a hyphen")
    if not prefix and environment and region in REGION_CODES and not reader.problems:
        prefix = f"cp-{environment}-{REGION_CODES[region]}"
    tags = _parse_tags(reader, environment, stack)
    retention = reader.integer("logRetentionDays", lambda v: v in LOG_RETENTION_DAYS,
                               "must be one of " + ", ".join(map(str, LOG_RETENTION_DAYS)))
    deletion_window = reader.integer("kmsKeyDeletionWindowDays", lambda v: 7 <= v <= 30,
                                     "must be between 7 and 30 (days)")
    architecture = reader.choice("lambdaArchitecture", LAMBDA_ARCHITECTURES)
    layer_version = reader.integer("powertoolsLayerVersion", lambda v: v >= 1, "must be a positive integer")
    ingestion = _parse_ingestion(reader)
    realtime = _parse_realtime(reader)
    serving = _parse_serving(reader)
    waf = _parse_waf(reader)
    training = _parse_training(reader)
    alarms = _parse_alarms(reader)
    replica_region = reader.string("replicaRegion")
    if replica_region and (replica_region not in REGION_CODES or replica_region == region):
        reader.problem("replicaRegion", replica_region,
                       "must be another of the supported regions: " + ", ".join(sorted(REGION_CODES)))

    if reader.problems:
        raise SettingsError(reader.problems)
    return StackSettings(
        project=project,
        stack=stack,
        environment=environment,
        region=region,
        name_prefix=prefix,
        tags=tags,
        log_retention_days=retention,
        kms_key_deletion_window_days=deletion_window,
        lambda_architecture=architecture,
        powertools_layer_version=layer_version,
        ingestion=ingestion,
        realtime=realtime,
        serving=serving,
        waf=waf,
        training=training,
        alarms=alarms,
        replica_region=replica_region,
    )


def load_settings_from_values(config: Mapping[str, str], stack: str, project: str = PROJECT) -> StackSettings:
    """Settings from a stack's full config map (``namespace:key`` → string), as the tools read stack files."""
    namespace = f"{project}:"
    values = {k[len(namespace):]: v for k, v in config.items() if k.startswith(namespace)}
    return parse_settings(values, region=config.get("aws:region"), stack=stack, project=project)


def load_settings() -> StackSettings:
    """Read the running stack's configuration through Pulumi's runtime and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    all_config = {k: str(v) for k, v in {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}.items()}
    return load_settings_from_values(all_config, pulumi.get_stack(), pulumi.get_project())
