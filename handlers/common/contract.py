"""The contract between the stack and its functions: the names both sides use. Data only.

The program (``components/``) builds function environments, IAM statements, alarms and dashboards from these names;
the handlers read them. It ships inside every function's ``common`` package, and the program reads the same file, so a
renamed variable, metric, key or parameter changes both sides at once (and the tests see it if only one side moves).
"""

from __future__ import annotations

from typing import Final

METRICS_NAMESPACE: Final = "ClickstreamPersonalization"


class Env:
    """Environment variables of the functions (the program sets them; ``common.config.required_env`` reads them)."""

    DATA_BUCKET: Final = "DATA_BUCKET"
    EVENT_TYPES: Final = "EVENT_TYPES"
    PARAMETER_CACHE_SECONDS: Final = "PARAMETER_CACHE_SECONDS"
    TRACKING_ID_PARAMETER: Final = "TRACKING_ID_PARAMETER"
    CAMPAIGN_ARN_PARAMETER: Final = "CAMPAIGN_ARN_PARAMETER"
    FILTER_ARNS_PARAMETER: Final = "FILTER_ARNS_PARAMETER"
    ITEMS_DATASET_PARAMETER: Final = "ITEMS_DATASET_PARAMETER"
    FILTER_NAMES: Final = "FILTER_NAMES"
    CORS_ALLOWED_ORIGINS: Final = "CORS_ALLOWED_ORIGINS"
    DEAD_LETTER_QUEUE_URL: Final = "DEAD_LETTER_QUEUE_URL"
    MAX_CONCURRENCY: Final = "MAX_CONCURRENCY"
    MIN_INTERACTIONS: Final = "MIN_INTERACTIONS"
    MIN_USERS_WITH_TWO: Final = "MIN_USERS_WITH_TWO"


class Metric:
    """Custom metrics (namespace ``METRICS_NAMESPACE``, dimension ``service`` = the function's ``Service``)."""

    EVENTS_SENT: Final = "EventsSent"
    EVENTS_SKIPPED: Final = "EventsSkippedBeforeTraining"
    EVENTS_RETRIED: Final = "EventsReportedForRetry"
    EVENTS_DEAD_LETTERED: Final = "EventsDeadLettered"
    PUT_EVENTS_CALLS: Final = "PutEventsCalls"
    PUT_EVENTS_RETRIES: Final = "PutEventsRetries"
    PUT_EVENTS_LATENCY: Final = "PutEventsLatency"
    RECOMMENDATIONS_SERVED: Final = "RecommendationsServed"
    FALLBACK_SERVED: Final = "FallbackServed"
    RECOMMENDATION_BAD_REQUESTS: Final = "RecommendationBadRequests"
    ITEMS_STORED: Final = "ItemsStored"
    ITEMS_SENT: Final = "ItemsSentToPersonalize"
    ITEMS_BAD_REQUESTS: Final = "ItemsBadRequests"
    ITEMS_STORE_FAILURES: Final = "ItemsStoreFailures"


class Service:
    """The ``service`` metric dimension (Powertools' service name) of each function, by handler module."""

    EVENT_PROCESSOR: Final = "event-processor"
    RECOMMENDATIONS: Final = "recommendations"
    ITEMS: Final = "items"
    TRAINING_STEPS: Final = "training-steps"


class Parameter:
    """Keys of the SSM parameters training publishes under ``/<prefix>/personalize/`` and the functions read."""

    TRACKING_ID: Final = "tracking-id"
    CAMPAIGN_ARN: Final = "campaign-arn"
    FILTER_ARNS: Final = "filter-arns"
    ITEMS_DATASET_ARN: Final = "items-dataset-arn"
    METRICS: Final = "metrics"


PUBLISHED_PARAMETERS: Final = (Parameter.TRACKING_ID, Parameter.CAMPAIGN_ARN, Parameter.FILTER_ARNS,
                               Parameter.ITEMS_DATASET_ARN, Parameter.METRICS)


class Key:
    """Prefixes and keys of the data bucket."""

    EVENTS: Final = "events/"
    ERRORS: Final = "errors/"
    ITEMS: Final = "items/"
    ITEMS_BY_ID: Final = "items/by-id/"
    ITEMS_BY_TIME: Final = "items/by-time/"
    PREPARED: Final = "prepared/"
    POPULAR_ITEMS: Final = "published/popular-items.json"
