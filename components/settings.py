"""Typed, validated stack settings.

Every stack reads its configuration once, here, into frozen dataclasses. Nothing is created in AWS before the whole
configuration is known to be valid: a bad value raises ``SettingsError`` naming the key, the value and what is
allowed. ``CONFIG_KEYS`` is the single table of keys, each with its limits as data (range, choices, pattern, list
bounds): the check, the error message and the allowed-values text of ``Pulumi.yaml`` and the README's configuration
reference are all generated from it. Only rules that relate keys to each other are written as code.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from common.contract import FRESH_FILTER, FRESH_FILTER_EXPRESSION

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
# Recipes whose campaigns answer GetRecommendations for a user (the "for you" list the training gates and serves).
USER_RECIPES = ("aws-user-personalization-v2", "aws-user-personalization", "aws-popularity-count")
# The offline metrics GetSolutionMetrics reports for those recipes.
SOLUTION_METRICS = ("coverage", "mean_reciprocal_rank_at_25", "normalized_discounted_cumulative_gain_at_5",
                    "normalized_discounted_cumulative_gain_at_10", "normalized_discounted_cumulative_gain_at_25",
                    "precision_at_5", "precision_at_10", "precision_at_25")
# Configuration keys of the AWS provider a stack may set (pulumi-aws), to catch typos such as aws:regoin.
AWS_PROVIDER_KEYS = ("region", "profile", "accessKey", "secretKey", "token", "allowedAccountIds",
                     "forbiddenAccountIds", "assumeRole", "assumeRoleWithWebIdentity", "defaultTags", "ignoreTags",
                     "endpoints", "maxRetries", "retryMode", "sharedConfigFiles", "sharedCredentialsFiles",
                     "skipCredentialsValidation", "skipMetadataApiCheck", "skipRegionValidation",
                     "skipRequestingAccountId", "stsRegion", "customCaBundle", "httpProxy", "httpsProxy", "noProxy",
                     "insecure", "s3UsePathStyle", "useFipsEndpoint", "useDualstackEndpoint")

ConfigType: TypeAlias = Literal["string", "integer", "boolean", "array"]
ConfigValue: TypeAlias = "str | int | bool | list[str] | None"
# The settings group a key belongs to ("stack" for what every component uses), and the attribute it fills there.
Group: TypeAlias = Literal["stack", "ingestion", "sites", "published", "realtime", "serving", "waf", "training",
                           "alarms"]

_EMAIL = (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address")


@dataclass(frozen=True)
class ConfigKey:
    """One key of the project's configuration namespace, as declared in Pulumi.yaml, with its limits as data."""

    name: str
    type: ConfigType
    default: ConfigValue
    meaning: str
    group: Group
    field: str
    minimum: float | None = None
    maximum: float | None = None
    # A value outside [minimum, maximum] that switches the feature off (0 for "no quota"), and what it means.
    off: tuple[int, str] | None = None
    choices: tuple[str | int, ...] = ()
    # A regular expression for a string, or for each entry of an array, and the same in words.
    pattern: tuple[str, str] | None = None
    min_items: int = 0
    max_items: int | None = None
    unique: bool = False
    # A decimal number given as a string (Pulumi config declares no float type).
    decimal: bool = False

    @property
    def allowed(self) -> str:
        """What the key accepts, in words (shown in errors, Pulumi.yaml and the README)."""
        if self.type == "boolean":
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        if self.type == "integer" or self.decimal:
            if self.minimum is not None and self.maximum is not None:
                text = f"between {_number(self.minimum)} and {_number(self.maximum)}"
            elif self.minimum is not None:
                text = f"at least {_number(self.minimum)}"
            else:
                text = "any integer"
            return f"{self.off[0]} ({self.off[1]}) or {text}" if self.off else text
        entry = self.pattern[1] if self.pattern else "a string"
        if self.type == "array":
            count = (f"{self.min_items}-{self.max_items}" if self.min_items else f"at most {self.max_items}"
                     ) if self.max_items is not None else "any number of"
            return f"{count}{' distinct' if self.unique else ''} entries, each {entry}"
        return entry + (", or empty" if self.default == "" else "")

    @property
    def description(self) -> str:
        return f"{self.meaning} Allowed: {self.allowed}."


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _key(name: str, type_: ConfigType, default: ConfigValue, meaning: str, group: Group, field: str,
         **limits: Any) -> ConfigKey:
    return ConfigKey(name, type_, default, meaning, group, field, **limits)


CONFIG_KEYS: tuple[ConfigKey, ...] = (
    _key("environment", "string", None, "Environment name (dev, staging, prod, ...). Required.", "stack",
         "environment", pattern=(r"^[a-z][a-z0-9]{1,11}$", "2-12 lowercase letters or digits, starting with a letter")),
    _key("namePrefix", "string", "",
         "Prefix of every physical name. Empty: cp-<environment>-<region code>, unique per environment and region so "
         "two stacks never collide in one account.", "stack", "name_prefix",
         pattern=(r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
                  "3-24 lowercase letters, digits or hyphens, starting with a letter and not ending in a hyphen")),
    _key("extraTags", "array", [],
         "Extra tags for every taggable resource. The keys app, environment and stack are set by the program and "
         "cannot be overridden; keys starting with aws: are AWS's.", "stack", "tags",
         max_items=MAX_TAGS - len(RESERVED_TAG_KEYS),
         pattern=(r"^([\w .:/=+\-@]{1,128})=([\w .:/=+\-@]{0,256})$",
                  "Key=Value, key 1-128 and value 0-256 of letters, digits, spaces and _.:/=+-@")),
    _key("logRetentionDays", "integer", 30, "Retention of every log group the stack creates (CloudWatch Logs' values).",
         "stack", "log_retention_days", choices=LOG_RETENTION_DAYS),
    _key("kmsKeyDeletionWindowDays", "integer", 30,
         "Waiting period in days before the stack's KMS key is deleted after `pulumi destroy`.", "stack",
         "kms_key_deletion_window_days", minimum=7, maximum=30),
    _key("lambdaArchitecture", "string", "arm64", "Instruction set of every Lambda function.", "stack",
         "lambda_architecture", choices=LAMBDA_ARCHITECTURES),
    _key("powertoolsLayerVersion", "integer", 27,
         "Version of the AWS-published Powertools for AWS Lambda (Python) v3 layer. The layer ARN is built from the "
         "stack's region, the Lambda runtime and the architecture.", "stack", "powertools_layer_version", minimum=1),
    _key("eventTypes", "array", DEFAULT_EVENT_TYPES, "Event types the collection API accepts.", "ingestion",
         "event_types", min_items=1, max_items=20, unique=True,
         pattern=(r"^[a-zA-Z][a-zA-Z0-9_-]{0,31}$", "a letter then up to 31 letters, digits, _ or -")),
    _key("collectClientDetails", "boolean", False,
         "Add the client's source IP and user agent to every collected event. Personal data: off unless your privacy "
         "notice covers it.", "ingestion", "collect_client_details"),
    _key("collectionApiKeyRequired", "boolean", True,
         "Require an API key (x-api-key) on POST /events. Turn off only for public browser collection, where "
         "navigator.sendBeacon cannot send headers.", "ingestion", "api_key_required"),
    _key("corsAllowedOrigins", "array", [],
         "Origins whose pages may call the collection and serving APIs from a browser. Empty: no CORS.", "sites",
         "cors_allowed_origins", max_items=10, unique=True,
         pattern=(r"^(https://[a-z0-9.-]+|http://localhost)(:[0-9]{1,5})?$",
                  "https://host[:port] (or http://localhost[:port]), lowercase, without a path")),
    _key("readerTokenIssuer", "string", "",
         "Issuer (iss) of the reader tokens the sites' backend mints for signed-in readers (HS256 JWTs signed with the "
         "stack's reader-token secret). Set: readers are verified (recommendations of a signed-in reader need their "
         "token, collected events take the reader id from the token). Empty: no reader verification.", "sites",
         "reader_token_issuer", pattern=(r"^[!-~]{1,256}$", "1-256 printable ASCII characters without spaces")),
    _key("readerTokenAudience", "string", "clickstream-readers",
         "Audience (aud) a reader token must name.", "sites", "reader_token_audience",
         pattern=(r"^[!-~]{1,256}$", "1-256 printable ASCII characters without spaces")),
    _key("readerTokenCacheSeconds", "integer", 300,
         "How long API Gateway caches the authorizer's answer per token (a cached allow outlives the token's expiry by "
         "at most this).", "sites", "reader_token_cache_seconds", minimum=60, maximum=3600),
    _key("readerTokenMaxLifetimeSeconds", "integer", 3600,
         "Longest lifetime (exp - iat) of a reader token the authorizer accepts.", "sites",
         "reader_token_max_lifetime_seconds", minimum=60, maximum=86400),
    _key("apiThrottleRateLimit", "integer", 500,
         "Steady-state requests per second the collection API stage accepts.", "ingestion", "throttle_rate_limit",
         minimum=1, maximum=10000),
    _key("apiThrottleBurstLimit", "integer", 1000,
         "Burst of requests the collection API stage accepts (at least the rate limit).", "ingestion",
         "throttle_burst_limit", minimum=1, maximum=5000),
    _key("apiQuotaPerDay", "integer", 0, "Requests per day allowed to the collection API key by its usage plan.",
         "ingestion", "quota_per_day", minimum=1, off=(0, "no quota")),
    _key("streamMode", "string", "ON_DEMAND", "Kinesis capacity mode.", "ingestion", "stream_mode",
         choices=STREAM_MODES),
    _key("streamShardCount", "integer", 1, "Shards of the stream in PROVISIONED mode; ignored on demand.",
         "ingestion", "stream_shard_count", minimum=1, maximum=500),
    _key("streamRetentionHours", "integer", 24,
         "How long the stream keeps records, in hours: the window to replay or recover consumers.", "ingestion",
         "stream_retention_hours", minimum=24, maximum=8760),
    _key("firehoseBufferSeconds", "integer", 300, "Firehose buffering interval in seconds before writing to S3.",
         "ingestion", "firehose_buffer_seconds", minimum=60, maximum=900),
    _key("firehoseBufferMiB", "integer", 64, "Firehose buffering size in MiB before writing an object to S3.",
         "ingestion", "firehose_buffer_mib", minimum=1, maximum=128),
    _key("rawDataTransitionDays", "integer", 30,
         "Days after which raw clickstream objects move to S3 Standard-IA (its minimum is 30).", "ingestion",
         "raw_transition_days", minimum=30, off=(0, "keep them in Standard")),
    _key("rawDataExpirationDays", "integer", 0,
         "Days after which raw clickstream objects are deleted; must exceed rawDataTransitionDays when both are set.",
         "ingestion", "raw_expiration_days", minimum=1, off=(0, "never: training reads the history")),
    _key("auditLogRetentionDays", "integer", 365,
         "Days the audit trail's records of reads and writes of readers' data (raw bucket and replica) are kept in "
         "the audit bucket before the lifecycle deletes them.", "ingestion", "audit_log_retention_days",
         minimum=30, maximum=3653),
    _key("noncurrentVersionExpirationDays", "integer", 30,
         "Days after which overwritten or deleted versions of raw objects are removed.", "ingestion",
         "noncurrent_version_expiration_days", minimum=1, maximum=3650),
    _key("processorBatchSize", "integer", 100, "Records per invocation of the real-time event processor.",
         "realtime", "batch_size", minimum=1, maximum=10000),
    _key("processorBatchingWindowSeconds", "integer", 1,
         "Seconds the event source mapping may wait to fill a batch: latency against cost.", "realtime",
         "batching_window_seconds", minimum=0, maximum=300),
    _key("processorParallelizationFactor", "integer", 2,
         "Concurrent batches per shard; a session stays on one shard and in order.", "realtime",
         "parallelization_factor", minimum=1, maximum=10),
    _key("processorMaximumRecordAgeSeconds", "integer", 21600,
         "Records older than this (seconds) go to the on-failure queue instead of blocking a shard.", "realtime",
         "maximum_record_age_seconds", minimum=60, maximum=604800),
    _key("processorMaximumRetryAttempts", "integer", 10,
         "Retries of a failing batch before its metadata goes to the on-failure queue.", "realtime",
         "maximum_retry_attempts", minimum=0, maximum=10000),
    _key("processorConcurrency", "integer", 8, "PutEvents calls in flight at once inside one invocation.",
         "realtime", "concurrency", minimum=1, maximum=64),
    _key("processorMemoryMb", "integer", 512, "Memory of the event processor in MB.", "realtime", "memory_mb",
         minimum=128, maximum=10240),
    _key("processorTimeoutSeconds", "integer", 60, "Timeout of the event processor in seconds.", "realtime",
         "timeout_seconds", minimum=10, maximum=900),
    _key("parameterCacheSeconds", "integer", 60,
         "How long the functions cache what training publishes in SSM (seconds): a new tracker or campaign is "
         "picked up within this time.", "published", "parameter_cache_seconds", minimum=1, maximum=3600),
    _key("personalizeFilters", "array", ['unread=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("read")',
                                         f"{FRESH_FILTER}={FRESH_FILTER_EXPRESSION}"],
         "Recommendation filters that training creates and publishes (Personalize filter expressions); clients pass "
         f"the name as ?filter=<name>. The {FRESH_FILTER} filter is also the fresh posts' promotion "
         "(freshPostsPercent).", "published", "filters", max_items=10,
         pattern=(r"^([a-z][a-z0-9-]{0,30})=(.{1,2500})$",
                  "name=expression, the name 1-31 lowercase letters, digits or - (unique), the expression 1-2500 "
                  "chars, INCLUDE|EXCLUDE ItemID WHERE ... with balanced parentheses and quotes")),
    _key("personalizeSurfaces", "array", ["for-you"],
         "Recommendation surfaces the stack trains (one Personalize solution and campaign each) and serves: for-you, "
         "related (Similar-Items), trending (Trending-Now), ranking (Personalized-Ranking-v2). Each campaign is billed "
         "every hour it exists (at least its minimum TPS) and each training by the hour: only for-you by default.",
         "published", "surfaces", min_items=1, max_items=4, unique=True,
         pattern=(r"^(for-you|related|trending|ranking)$", "one of for-you, related, trending, ranking")),
    _key("personalizeMetadataSurfaces", "array", [],
         "Surfaces whose campaign returns item metadata with recommendations (enableMetadataWithRecommendations; "
         "extra cost per request; only User-Personalization-v2 and Personalized-Ranking-v2 campaigns support it). "
         "The others read titles and URLs from the items store.", "published", "metadata_surfaces", max_items=2,
         unique=True, pattern=(r"^(for-you|ranking)$", "for-you or ranking")),
    _key("servingThrottleRateLimit", "integer", 200,
         "Steady-state requests per second of the serving API stage and its key.", "serving", "throttle_rate_limit",
         minimum=1, maximum=10000),
    _key("servingThrottleBurstLimit", "integer", 400,
         "Burst of requests of the serving API stage and its key (at least the rate limit).", "serving",
         "throttle_burst_limit", minimum=1, maximum=5000),
    _key("servingDeadlineMs", "integer", 400,
         "Milliseconds each recommendation surface may take in its function, whatever Personalize does: past it, "
         "the reply is the surface's fallback list.", "serving", "deadline_ms", minimum=100, maximum=4000),
    _key("freshPostsPercent", "integer", 20,
         "Share (%) of each recommendation list promoted from posts published in the last freshPostsHours (a "
         f"Personalize promotion with the {FRESH_FILTER} filter, which personalizeFilters must then keep).",
         "serving", "fresh_posts_percent", minimum=1, maximum=100, off=(0, "no promotion")),
    _key("freshPostsHours", "integer", 24, "How recent (hours) a post must be to be promoted as fresh.", "serving",
         "fresh_posts_hours", minimum=1, maximum=720),
    _key("cmsPrincipalArns", "array", [],
         "IAM principals (role or user ARNs, or an account root) that may assume the CMS role, the only credential "
         "that can call POST /items (SigV4). Empty: this account's root, i.e. only principals of this account whose "
         "own IAM policy allows sts:AssumeRole on the role.", "serving", "cms_principal_arns", max_items=10,
         unique=True,
         pattern=(r"^arn:aws[a-z-]*:iam::[0-9]{12}:(root|role/[\w+=,.@/-]{1,512}|user/[\w+=,.@/-]{1,512})$",
                  "arn:<partition>:iam::<account>:root|role/<name>|user/<name>")),
    _key("wafRateLimitPer5Minutes", "integer", 2000,
         "Requests one client IP may make in 5 minutes before AWS WAF blocks it.", "waf", "rate_limit_per_5_minutes",
         minimum=10, maximum=2_000_000_000),
    _key("wafBlockAnonymousIps", "boolean", False,
         "Also block VPNs, proxies and Tor (the AWS anonymous-IP list); readers behind them lose access.", "waf",
         "block_anonymous_ips"),
    _key("wafCountOnlyRules", "array", [],
         "Managed rules to count instead of block (for false positives you have seen in the WAF logs).", "waf",
         "count_only_rules", max_items=100, unique=True,
         pattern=(r"^(AWSManagedRules[A-Za-z]+):([A-Za-z0-9_-]{1,128})$", "AWSManagedRules<Group>:<RuleName>")),
    _key("wafBotControl", "boolean", False,
         "Add AWS WAF Bot Control (AWSManagedRulesBotControlRuleSet, common inspection level): blocks unverified "
         "bots at the edge before they reach the APIs. Billed extra per month and per request (see tools.cost).",
         "waf", "bot_control"),
    _key("trainingRecipe", "string", "aws-user-personalization-v2",
         "Amazon Personalize recipe the solution trains with.", "training", "recipe", choices=USER_RECIPES),
    _key("trainingMetric", "string", "normalized_discounted_cumulative_gain_at_25",
         "Offline metric the gate compares before promoting a new solution version.", "training", "metric",
         choices=SOLUTION_METRICS),
    _key("trainingMetricTolerance", "string", "0.01",
         "How much worse (absolute) the new version's metric may be and still be promoted.", "training",
         "metric_tolerance", minimum=0, maximum=1, decimal=True),
    _key("trainingMinInteractions", "integer", 1000, "Interactions needed to train (Personalize's minimum is 1000).",
         "training", "min_interactions", minimum=1000),
    _key("trainingMinUsersWithTwoInteractions", "integer", 25,
         "Users with 2 or more interactions needed to train (Personalize's minimum is 25).", "training",
         "min_users_with_two", minimum=25),
    _key("campaignMinProvisionedTps", "integer", 1,
         "Minimum provisioned transactions per second of the campaign; billed at least this.", "training",
         "min_provisioned_tps", minimum=1, maximum=500),
    _key("trainingSchedule", "string", "",
         "EventBridge Scheduler expression for retraining, e.g. rate(7 days) or cron(0 3 ? * SUN *); empty: no "
         "schedule (run `python -m tools.train`).", "training", "schedule",
         pattern=(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]{9,100}\))$",
                  "rate(<n> minutes|hours|days) or cron(<6 fields>)")),
    _key("trainingNotificationEmails", "array", [],
         "E-mail addresses subscribed to the training notifications (each must confirm the subscription).",
         "training", "notification_emails", max_items=20, unique=True, pattern=_EMAIL),
    _key("trainingShards", "integer", 8, "Parts the prepared interactions are split into: more for more data per run.",
         "training", "shards", minimum=1, maximum=64),
    _key("trainingPollSeconds", "integer", 60, "Seconds between status checks of Personalize jobs.", "training",
         "poll_seconds", minimum=10, maximum=3600),
    _key("trainingMode", "string", "gated",
         "gated: our schedule trains and a metric gate decides what each campaign serves (Personalize's automatic "
         "training off); automatic: Personalize retrains every autoTrainingDays days when new data arrived and each "
         "campaign follows the latest version, with no gate.", "training", "mode", choices=("gated", "automatic")),
    _key("autoTrainingDays", "integer", 7,
         "Days between Personalize's automatic trainings in automatic mode (rate(N days)).", "training",
         "auto_training_days", minimum=1, maximum=30),
    _key("trainingSurfaceMetrics", "array", [],
         "Per surface, the offline metric its gate compares, as surface=metric (default: the for-you metric is "
         "trainingMetric, related and ranking use normalized_discounted_cumulative_gain_at_10; trending has no gate: "
         "Trending-Now finds new trends without new versions, so it is trained once).", "training", "surface_metrics",
         max_items=3,
         unique=True, pattern=(r"^(for-you|related|ranking)=(coverage|mean_reciprocal_rank_at_25|"
                               r"normalized_discounted_cumulative_gain_at_(5|10|25)|precision_at_(5|10|25))$",
                               "surface=metric, the surface for-you, related or ranking, the metric one of the "
                               "solution metrics")),
    _key("userSegments", "boolean", False,
         "Train the Item-Affinity and Item-Attribute-Affinity solutions with every training (two more trainings per "
         "run, no campaign) and deploy the segments state machine (`python -m tools.segments`).", "training",
         "user_segments"),
    _key("segmentSchedule", "string", "",
         "EventBridge Scheduler expression for the user segments job over the newest posts, e.g. rate(1 day); empty: "
         "on demand only (`python -m tools.segments`).", "training", "segment_schedule",
         pattern=(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]{9,100}\))$",
                  "rate(<n> minutes|hours|days) or cron(<6 fields>)")),
    _key("alarmEmails", "array", [],
         "E-mail addresses subscribed to the operations alarms topic (each must confirm the subscription).",
         "alarms", "emails", max_items=20, unique=True, pattern=_EMAIL),
    _key("alarmIteratorAgeSeconds", "integer", 300,
         "Alarm when the event processor falls this many seconds behind the stream.", "alarms",
         "iterator_age_seconds", minimum=60, maximum=86400),
    _key("alarmApi5xxPercent", "integer", 1, "Alarm when this share (%) of API requests fail with 5xx.", "alarms",
         "api_5xx_percent", minimum=1, maximum=100),
    _key("alarmFallbackPercent", "integer", 20,
         "Alarm when this share (%) of recommendations come from the fallback list.", "alarms", "fallback_percent",
         minimum=1, maximum=100),
    _key("alarmFirehoseFreshnessSeconds", "integer", 900,
         "Alarm when the oldest record not yet in S3 is this many seconds old.", "alarms",
         "firehose_freshness_seconds", minimum=60, maximum=86400),
    _key("alarmWafBlockedPer5Minutes", "integer", 1000,
         "Alarm when AWS WAF blocks more requests than this in 5 minutes.", "alarms", "waf_blocked_per_5_minutes",
         minimum=1, maximum=10_000_000),
    _key("replicaRegion", "string", "",
         "Region the raw clickstream bucket is replicated to for disaster recovery (with its own KMS key there). "
         "Must differ from the stack's region.", "stack", "replica_region",
         pattern=("^(" + "|".join(map(re.escape, REGION_CODES)) + ")$",
                  "one of the supported regions (" + ", ".join(REGION_CODES) + ")")),
    _key("manageApiGatewayAccount", "boolean", True,
         "Set the region's API Gateway CloudWatch role (an account-wide setting needed for execution logs). Only one "
         "stack per account and region may manage it: set false in the others.", "ingestion",
         "manage_api_gateway_account"),
)

CONFIG_KEYS_BY_NAME: Mapping[str, ConfigKey] = {key.name: key for key in CONFIG_KEYS}


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
    audit_log_retention_days: int


@dataclass(frozen=True)
class SiteSettings:
    """The sites whose pages call the collection and serving APIs."""

    cors_allowed_origins: tuple[str, ...]
    reader_token_issuer: str = ""
    reader_token_audience: str = "clickstream-readers"  # noqa: S105 (a JWT audience, not a secret)
    reader_token_cache_seconds: int = 300
    reader_token_max_lifetime_seconds: int = 3600

    @property
    def verify_readers(self) -> bool:
        """Readers sign in where the stack names their tokens' issuer."""
        return bool(self.reader_token_issuer)


@dataclass(frozen=True)
class PublishedSettings:
    """What training publishes for the functions, and how long the functions cache it."""

    filters: Mapping[str, str]
    parameter_cache_seconds: int
    surfaces: tuple[str, ...]
    metadata_surfaces: tuple[str, ...]


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


@dataclass(frozen=True)
class ServingSettings:
    throttle_rate_limit: int
    throttle_burst_limit: int
    cms_principal_arns: tuple[str, ...]
    deadline_ms: int
    fresh_posts_percent: int
    fresh_posts_hours: int


@dataclass(frozen=True)
class WafSettings:
    rate_limit_per_5_minutes: int
    block_anonymous_ips: bool
    count_only_rules: tuple[tuple[str, str], ...]
    bot_control: bool


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
    mode: str
    auto_training_days: int
    surface_metrics: tuple[tuple[str, str], ...]
    user_segments: bool
    segment_schedule: str


@dataclass(frozen=True)
class AlarmSettings:
    emails: tuple[str, ...]
    iterator_age_seconds: int
    api_5xx_percent: int
    fallback_percent: int
    firehose_freshness_seconds: int
    waf_blocked_per_5_minutes: int


@dataclass(frozen=True)
class StackBasics:
    """What every component needs to name, tag and run its children: the stack, its region and its conventions."""

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
    replica_region: str

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


@dataclass(frozen=True)
class StackSettings(StackBasics):
    """The whole validated configuration: the stack's basics and one group per capability."""

    ingestion: IngestionSettings
    sites: SiteSettings
    published: PublishedSettings
    realtime: RealtimeSettings
    serving: ServingSettings
    waf: WafSettings
    training: TrainingSettings
    alarms: AlarmSettings


def _qualified(key: str) -> str:
    return f"{PROJECT}:{key}"


class _Reader:
    """Reads raw (string) config values against the key table, recording one problem per bad key or entry."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []

    def problem(self, key: str, raw: object, allowed: str) -> None:
        self.problems.append(f"{_qualified(key)} = {raw!r} is invalid: {allowed}")

    def read(self, key: ConfigKey) -> Any:
        """The key's value, typed and checked against its limits; the default (after a problem) when invalid."""
        raw = self.values.get(key.name)
        if raw is None or (raw == "" and key.default is None):
            if key.default is None:
                self.problems.append(f"{_qualified(key.name)} is required: {key.allowed} "
                                     f"(set it with `pulumi config set {key.name} <value>`)")
                return ""
            return list(key.default) if isinstance(key.default, list) else key.default
        if key.type == "boolean":
            return self._boolean(key, raw)
        if key.type == "array":
            return self._array(key, raw)
        return self._number(key, raw) if key.type == "integer" or key.decimal else self._string(key, raw)

    def _boolean(self, key: ConfigKey, raw: str) -> bool:
        value = raw.strip().lower()
        if value not in ("true", "false"):
            self.problem(key.name, raw, "must be true or false")
            return bool(key.default)
        return value == "true"

    def _number(self, key: ConfigKey, raw: str) -> float | int:
        default = float(str(key.default)) if key.decimal else key.default
        assert isinstance(default, int | float)
        try:
            value: float | int = float(raw.strip()) if key.decimal else int(raw.strip())
        except ValueError:
            self.problem(key.name, raw, f"must be {'a number' if key.decimal else 'an integer'}; {key.allowed}")
            return default
        in_range = ((key.minimum is None or value >= key.minimum) and (key.maximum is None or value <= key.maximum)
                    and (not key.choices or value in key.choices))
        if not (in_range or (key.off is not None and value == key.off[0])):
            self.problem(key.name, raw, f"must be {key.allowed}")
            return default
        return value

    def _string(self, key: ConfigKey, raw: str) -> str:
        if key.choices and raw not in key.choices:
            self.problem(key.name, raw, f"must be {key.allowed}")
            return str(key.default)
        if key.pattern and raw != "" and not re.match(key.pattern[0], raw):
            self.problem(key.name, raw, f"must be {key.allowed}")
        return raw

    def _array(self, key: ConfigKey, raw: str) -> list[str]:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(key.name, raw, "must be a list of strings")
            return []
        good = []
        for entry in value:
            if key.pattern and not re.match(key.pattern[0], entry, re.DOTALL):
                self.problem(key.name, entry, f"each entry must be {key.pattern[1]}")
            else:
                good.append(entry)
        if len(value) < key.min_items or (key.max_items is not None and len(value) > key.max_items) or (
                key.unique and len(set(value)) != len(value)):
            self.problem(key.name, value, f"must be {key.allowed}")
        return good

    def group(self, group: Group) -> dict[str, Any]:
        return {key.field: self.read(key) for key in CONFIG_KEYS if key.group == group}


def _tags(reader: _Reader, entries: list[str], environment: str, stack: str) -> dict[str, str]:
    tags = {"app": APP_TAG, "environment": environment, "stack": stack}
    for entry in entries:
        key, _, value = entry.partition("=")
        if key.lower().startswith("aws:"):
            reader.problem("extraTags", entry, "tag keys starting with 'aws:' are reserved by AWS")
        elif key in RESERVED_TAG_KEYS:
            reader.problem("extraTags", entry, f"the tag key {key!r} is set by the program and cannot be overridden")
        elif key in tags:
            reader.problem("extraTags", entry, f"the tag key {key!r} is given twice")
        else:
            tags[key] = value
    return tags


def filter_expression_problem(expression: str) -> str | None:
    """Why Personalize would refuse ``expression`` (checked offline: its shape, parentheses and quotes), or None."""
    if not re.match(r"^(INCLUDE|EXCLUDE) (ItemID|UserID) WHERE (Items|Interactions|Users)\.[A-Z_]+ ", expression):
        return "a filter expression starts INCLUDE|EXCLUDE ItemID WHERE <Items|Interactions|Users>.<FIELD> ..."
    depth, quoted = 0, False
    for char in expression:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
            if depth < 0:
                break
    if quoted or depth:
        return "the expression's quotes or parentheses are unbalanced"
    return None


def _filters(reader: _Reader, entries: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for entry in entries:
        name, _, expression = entry.partition("=")
        problem = "the filter name is given twice" if name in filters else filter_expression_problem(expression)
        if problem:
            reader.problem("personalizeFilters", entry, problem)
        else:
            filters[name] = expression.strip()
    return filters


def _burst_covers_rate(reader: _Reader, burst_key: str, rate_key: str, values: Mapping[str, Any]) -> None:
    """A burst limit below its rate limit would throttle every burst (up to the largest burst API Gateway takes)."""
    burst, rate = values["throttle_burst_limit"], values["throttle_rate_limit"]
    if burst < min(rate, CONFIG_KEYS_BY_NAME[burst_key].maximum or rate):
        reader.problem(burst_key, burst, f"must be at least {rate_key} ({rate})")


def _surfaces_agree(reader: _Reader, published: Mapping[str, Any], training: Mapping[str, Any]) -> None:
    """Metadata and metrics only for surfaces the stack trains; for-you metadata only with User-Personalization-v2."""
    if published["surfaces"] and "for-you" not in published["surfaces"]:
        reader.problem("personalizeSurfaces", list(published["surfaces"]),
                       "must include for-you (GET /recommendations/{userId} is always served)")
    for surface in published["metadata_surfaces"]:
        if surface not in published["surfaces"]:
            reader.problem("personalizeMetadataSurfaces", surface, "must be one of personalizeSurfaces")
        elif surface == "for-you" and training["recipe"] != "aws-user-personalization-v2":
            reader.problem("personalizeMetadataSurfaces", surface,
                           "needs trainingRecipe aws-user-personalization-v2 (the only for-you recipe with metadata)")
    for surface, _ in training["surface_metrics"]:
        if surface not in published["surfaces"]:
            reader.problem("trainingSurfaceMetrics", surface, "must name one of personalizeSurfaces")
    if training["segment_schedule"] and not training["user_segments"]:
        reader.problem("segmentSchedule", training["segment_schedule"], "needs userSegments: true")


def parse_settings(values: Mapping[str, str], *, region: str | None, stack: str,
                   project: str = PROJECT) -> StackSettings:
    """Validate raw config values (``key -> string``, without namespace) into ``StackSettings``.

    Raises ``SettingsError`` listing every problem; creates nothing.
    """
    reader = _Reader(values)
    for key in sorted(set(values) - set(CONFIG_KEYS_BY_NAME)):
        close = difflib.get_close_matches(key, CONFIG_KEYS_BY_NAME, n=1)
        hint = f"did you mean {close[0]}?" if close else "the keys are " + ", ".join(CONFIG_KEYS_BY_NAME)
        reader.problem(key, values[key], f"unknown key; {hint}")

    if region is None:
        reader.problems.append("aws:region is required (set it with `pulumi config set aws:region <region>`)")
        region = ""
    elif region not in REGION_CODES:
        reader.problems.append(f"aws:region = {region!r} is invalid: Amazon Personalize and AWS WAF are both offered "
                               f"only in " + ", ".join(sorted(REGION_CODES)))

    basics = reader.group("stack")
    groups = {group: reader.group(group) for group in ("ingestion", "sites", "published", "realtime", "serving",
                                                       "waf", "training", "alarms")}
    ingestion, training, waf = groups["ingestion"], groups["training"], groups["waf"]
    _burst_covers_rate(reader, "apiThrottleBurstLimit", "apiThrottleRateLimit", ingestion)
    _burst_covers_rate(reader, "servingThrottleBurstLimit", "servingThrottleRateLimit", groups["serving"])
    if ingestion["raw_expiration_days"] and ingestion["raw_transition_days"] and (
            ingestion["raw_expiration_days"] <= ingestion["raw_transition_days"]):
        reader.problem("rawDataExpirationDays", ingestion["raw_expiration_days"],
                       f"must be greater than rawDataTransitionDays ({ingestion['raw_transition_days']}) or 0")
    if basics["replica_region"] and basics["replica_region"] == region:
        reader.problem("replicaRegion", basics["replica_region"], "must differ from the stack's region")
    if not basics["name_prefix"] and basics["environment"] and region in REGION_CODES and not reader.problems:
        basics["name_prefix"] = f"cp-{basics['environment']}-{REGION_CODES[region]}"
    basics["tags"] = _tags(reader, basics["tags"], basics["environment"], stack)
    groups["published"]["filters"] = _filters(reader, groups["published"]["filters"])
    filters_invalid = any(_qualified("personalizeFilters") in problem for problem in reader.problems)
    if groups["serving"]["fresh_posts_percent"] and not filters_invalid and groups["published"]["filters"].get(
            FRESH_FILTER) != FRESH_FILTER_EXPRESSION:
        reader.problem("freshPostsPercent", groups["serving"]["fresh_posts_percent"],
                       f"needs the filter {FRESH_FILTER}={FRESH_FILTER_EXPRESSION} in personalizeFilters, or 0")
    waf["count_only_rules"] = tuple(tuple(entry.split(":", 1)) for entry in waf["count_only_rules"])
    for group, fields in (("ingestion", ("event_types",)), ("sites", ("cors_allowed_origins",)),
                          ("training", ("notification_emails",)), ("alarms", ("emails",)),
                          ("serving", ("cms_principal_arns",))):
        for field in fields:
            groups[group][field] = tuple(groups[group][field])
    training["metric_tolerance"] = float(training["metric_tolerance"])
    training["surface_metrics"] = tuple(tuple(entry.split("=", 1)) for entry in training["surface_metrics"])
    for field in ("surfaces", "metadata_surfaces"):
        groups["published"][field] = tuple(groups["published"][field])
    _surfaces_agree(reader, groups["published"], training)

    if reader.problems:
        raise SettingsError(reader.problems)
    return StackSettings(
        project=project, stack=stack, region=region, **basics,
        ingestion=IngestionSettings(**ingestion), sites=SiteSettings(**groups["sites"]),
        published=PublishedSettings(**groups["published"]), realtime=RealtimeSettings(**groups["realtime"]),
        serving=ServingSettings(**groups["serving"]), waf=WafSettings(**waf), training=TrainingSettings(**training),
        alarms=AlarmSettings(**groups["alarms"]),
    )


def _namespace_problems(config: Mapping[str, str], project: str) -> list[str]:
    """Keys outside the project's and the AWS provider's namespaces, or unknown AWS keys, are typos: say so."""
    problems = []
    for key in sorted(config):
        namespace, _, name = key.partition(":")
        if namespace == "aws" and name not in AWS_PROVIDER_KEYS:
            close = difflib.get_close_matches(name, AWS_PROVIDER_KEYS, n=1)
            problems.append(f"{key} is not a setting of the AWS provider"
                            + (f"; did you mean aws:{close[0]}?" if close else ""))
        elif namespace not in (project, "aws", "pulumi"):
            problems.append(f"{key}: unknown namespace {namespace!r}; this project's keys are {project}:<key>"
                            + (f" (did you mean {project}:{name}?)" if name in CONFIG_KEYS_BY_NAME else ""))
    return problems


def load_settings_from_values(config: Mapping[str, str], stack: str, project: str = PROJECT) -> StackSettings:
    """Settings from a stack's full config map (``namespace:key`` → string), as the tools read stack files."""
    namespace = f"{project}:"
    values = {k[len(namespace):]: v for k, v in config.items() if k.startswith(namespace)}
    typos = _namespace_problems(config, project)
    try:
        settings = parse_settings(values, region=config.get("aws:region"), stack=stack, project=project)
    except SettingsError as error:
        raise SettingsError(typos + error.problems) from None
    if typos:
        raise SettingsError(typos)
    return settings


def load_settings() -> StackSettings:
    """Read the running stack's configuration through Pulumi's runtime and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    all_config = {k: str(v) for k, v in {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}.items()}
    return load_settings_from_values(all_config, pulumi.get_stack(), pulumi.get_project())
