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
    CAMPAIGN_ARNS_PARAMETER: Final = "CAMPAIGN_ARNS_PARAMETER"
    SERVED_SURFACES: Final = "SERVED_SURFACES"
    DEADLINE_MS: Final = "DEADLINE_MS"
    FRESH_POSTS_PERCENT: Final = "FRESH_POSTS_PERCENT"
    FRESH_POSTS_HOURS: Final = "FRESH_POSTS_HOURS"
    METADATA_SURFACES: Final = "METADATA_SURFACES"
    # "true" when the stack verifies signed-in readers (reader tokens): then the surfaces other than for you take a
    # ``userId`` only when the request carries that reader's verified identity, else a ``sessionId``.
    READERS_VERIFIED: Final = "READERS_VERIFIED"
    READER_JWT_KEY_ARN: Final = "READER_JWT_KEY_ARN"
    READER_JWT_ISSUER: Final = "READER_JWT_ISSUER"
    READER_JWT_AUDIENCE: Final = "READER_JWT_AUDIENCE"
    READER_JWT_MAX_LIFETIME_SECONDS: Final = "READER_JWT_MAX_LIFETIME_SECONDS"


class Metric:
    """Custom metrics (namespace ``METRICS_NAMESPACE``, dimension ``service`` = the function's ``Service``)."""

    EVENTS_SENT: Final = "EventsSent"
    EVENTS_SKIPPED: Final = "EventsSkippedBeforeTraining"
    EVENTS_FROM_BOTS: Final = "EventsFromBotsSkipped"
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
    # The other surfaces' counterparts of RECOMMENDATIONS_SERVED and FALLBACK_SERVED (see SURFACE_METRICS).
    RELATED_SERVED: Final = "RelatedServed"
    RELATED_FALLBACK_SERVED: Final = "RelatedFallbackServed"
    TRENDING_SERVED: Final = "TrendingServed"
    TRENDING_FALLBACK_SERVED: Final = "TrendingFallbackServed"
    RANKING_SERVED: Final = "RankingServed"
    RANKING_FALLBACK_SERVED: Final = "RankingFallbackServed"
    READER_TOKENS_ACCEPTED: Final = "ReaderTokensAccepted"
    READER_TOKENS_REJECTED: Final = "ReaderTokensRejected"


class Service:
    """The ``service`` metric dimension (Powertools' service name) of each function, by handler module."""

    EVENT_PROCESSOR: Final = "event-processor"
    RECOMMENDATIONS: Final = "recommendations"
    ITEMS: Final = "items"
    TRAINING_STEPS: Final = "training-steps"
    READER_AUTHORIZER: Final = "reader-authorizer"


class Surface:
    """The recommendation surfaces a stack may offer, each with its own solution, campaign and fallback chain."""

    FOR_YOU: Final = "for-you"  # GET /recommendations/{userId}: User-Personalization-v2
    RELATED: Final = "related"  # GET /items/{itemId}/related: Similar-Items
    TRENDING: Final = "trending"  # GET /trending: Trending-Now
    RANKING: Final = "ranking"  # POST /rank: Personalized-Ranking-v2


SURFACES: Final = (Surface.FOR_YOU, Surface.RELATED, Surface.TRENDING, Surface.RANKING)
# Per surface: the metric counting its answers and the one counting its fallback answers. A metric name per surface
# (not a dimension) keeps the for-you alarm on the (service)-only dimension set it has always watched.
SURFACE_METRICS: Final = {
    Surface.FOR_YOU: (Metric.RECOMMENDATIONS_SERVED, Metric.FALLBACK_SERVED),
    Surface.RELATED: (Metric.RELATED_SERVED, Metric.RELATED_FALLBACK_SERVED),
    Surface.TRENDING: (Metric.TRENDING_SERVED, Metric.TRENDING_FALLBACK_SERVED),
    Surface.RANKING: (Metric.RANKING_SERVED, Metric.RANKING_FALLBACK_SERVED),
}

# Fresh posts: the recommendation filter training creates (one of the published filters, ``personalizeFilters``) and
# the serving function uses as the promotion of recently published posts, with ``$SINCE`` = now - freshPostsHours
# (epoch seconds) computed per request.
FRESH_FILTER: Final = "fresh"
FRESH_SINCE_VALUE: Final = "SINCE"
FRESH_FILTER_EXPRESSION: Final = f"INCLUDE ItemID WHERE Items.CREATION_TIMESTAMP > ${FRESH_SINCE_VALUE}"
# POST /rank: at most this many candidates (GetPersonalizedRanking's inputList limit as Personalize documents it;
# botocore's model declares no bound).
MAX_RANK_CANDIDATES: Final = 500


class Parameter:
    """Keys of the SSM parameters training publishes under ``/<prefix>/personalize/`` and the functions read."""

    TRACKING_ID: Final = "tracking-id"
    CAMPAIGN_ARN: Final = "campaign-arn"
    # JSON object: surface (``Surface``) -> campaign ARN, for every surface the stack trains.
    CAMPAIGN_ARNS: Final = "campaign-arns"
    FILTER_ARNS: Final = "filter-arns"
    ITEMS_DATASET_ARN: Final = "items-dataset-arn"
    # JSON object: the offline metrics of the version the for-you campaign serves (GetSolutionMetrics' "metrics").
    METRICS: Final = "metrics"


# ``campaign-arn`` (the for-you campaign) stays published next to ``campaign-arns`` so that functions deployed before
# the surfaces existed keep serving during an upgrade.
PUBLISHED_PARAMETERS: Final = (Parameter.TRACKING_ID, Parameter.CAMPAIGN_ARN, Parameter.CAMPAIGN_ARNS,
                               Parameter.FILTER_ARNS, Parameter.ITEMS_DATASET_ARN, Parameter.METRICS)


class ItemColumn:
    """Columns of the Personalize items dataset (training's items CSV header, in this order; the items store has the
    same fields in camelCase: ``itemId``, ``creationTimestamp``, ``category``, ``tags``, ``title``, ``url``)."""

    ITEM_ID: Final = "ITEM_ID"
    CREATION_TIMESTAMP: Final = "CREATION_TIMESTAMP"
    CATEGORY: Final = "CATEGORY"
    TAGS: Final = "TAGS"
    TITLE: Final = "TITLE"  # textual (unstructured text the recipes that use text learn from; <= 20,000 chars)
    URL: Final = "URL"  # neither categorical nor textual: Personalize keeps it for metadata and does not train on it


ITEM_COLUMNS: Final = (ItemColumn.ITEM_ID, ItemColumn.CREATION_TIMESTAMP, ItemColumn.CATEGORY, ItemColumn.TAGS,
                       ItemColumn.TITLE, ItemColumn.URL)


class Key:
    """Prefixes and keys of the data bucket."""

    EVENTS: Final = "events/"
    ERRORS: Final = "errors/"
    ITEMS: Final = "items/"
    ITEMS_BY_ID: Final = "items/by-id/"
    ITEMS_BY_TIME: Final = "items/by-time/"
    PREPARED: Final = "prepared/"
    POPULAR_ITEMS: Final = "published/popular-items.json"
    # User segments: the segments machine writes SEGMENTS_INPUT<execution>.jsonl, Personalize writes
    # SEGMENTS_OUTPUT<execution>/<execution>.jsonl.out (JSON lines; see README, "User segments").
    SEGMENTS_INPUT: Final = "segments/input/"
    SEGMENTS_OUTPUT: Final = "segments/output/"


# Pure-Python third-party packages packed into a function's archive next to ``common`` (their installed files; the
# versions are pinned in requirements.txt), by handler module.
VENDORED_PACKAGES: Final = {"reader_authorizer": ("jwt",)}


class ReaderRoute:
    """Where readers are verified: the routes of signed-in and of anonymous readers."""

    # POST /events/reader?token=<jwt>: a signed-in reader's events (the token in the query: beacons send no headers).
    SIGNED_IN_EVENTS: Final = "reader"
    QUERY_PARAMETER: Final = "token"
    # GET /recommendations/anonymous/{userId}: an anonymous reader's recommendations, no token.
    ANONYMOUS_RECOMMENDATIONS: Final = "anonymous"


# The ids of anonymous readers (the tracker's widget makes them): never a signed-in reader's (the authorizer refuses
# a token whose sub has this prefix), so the anonymous route cannot read a signed-in reader's recommendations.
ANONYMOUS_ID_PREFIX: Final = "anon-"
