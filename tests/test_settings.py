"""Stack settings: valid configurations parse, every invalid one is rejected with key, value and what is allowed."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from components.settings import (
    CONFIG_KEYS,
    LOG_RETENTION_DAYS,
    REGION_CODES,
    ConfigKey,
    SettingsError,
    load_settings_from_values,
    parse_settings,
)

VALID = {"environment": "dev"}
EXPRESSION = 'EXCLUDE ItemID WHERE Items.CATEGORY IN ("x")'


def parse(overrides: dict[str, str], region: str | None = "eu-west-1") -> object:
    return parse_settings({**VALID, **overrides}, region=region, stack="dev")


def test_defaults_come_from_the_key_table() -> None:
    settings = parse_settings(VALID, region="eu-west-1", stack="dev")

    defaults = {key.name: key.default for key in CONFIG_KEYS}
    assert settings.log_retention_days == defaults["logRetentionDays"]
    assert settings.kms_key_deletion_window_days == defaults["kmsKeyDeletionWindowDays"]
    assert settings.lambda_architecture == defaults["lambdaArchitecture"]
    assert settings.powertools_layer_version == defaults["powertoolsLayerVersion"]
    assert settings.name_prefix == "cp-dev-euw1"
    assert settings.tags == {"app": "clickstream-personalization", "environment": "dev", "stack": "dev"}


def test_every_value_is_read_from_its_key() -> None:
    settings = parse_settings({
        "environment": "prod",
        "namePrefix": "media-prod",
        "extraTags": json.dumps(["owner=ml-team", "cost-center=4711"]),
        "logRetentionDays": "90",
        "kmsKeyDeletionWindowDays": "7",
        "lambdaArchitecture": "x86_64",
        "powertoolsLayerVersion": "12",
    }, region="us-east-1", stack="prod-us")

    assert settings.environment == "prod"
    assert settings.physical_name("raw") == "media-prod-raw"
    assert settings.tags == {"app": "clickstream-personalization", "environment": "prod", "stack": "prod-us",
                             "owner": "ml-team", "cost-center": "4711"}
    assert (settings.log_retention_days, settings.kms_key_deletion_window_days) == (90, 7)
    assert settings.powertools_layer_arn() == (
        "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:12")


def test_default_prefixes_differ_per_environment_and_region() -> None:
    prefixes = {parse_settings({"environment": env}, region=region, stack="s").name_prefix
                for env in ("dev", "prod") for region in REGION_CODES}

    assert len(prefixes) == 2 * len(REGION_CODES)


@pytest.mark.parametrize(("overrides", "region", "expected"), [
    ({"environment": ""}, "eu-west-1", "clickstream-personalization:environment is required"),
    ({"environment": "Dev"}, "eu-west-1",
     "clickstream-personalization:environment = 'Dev' is invalid: must be 2-12 lowercase"),
    ({"environment": "a-very-long-environment"}, "eu-west-1", "environment = 'a-very-long-environment' is invalid"),
    ({}, None, "aws:region is required"),
    ({}, "eu-west-3", "aws:region = 'eu-west-3' is invalid: Amazon Personalize and AWS WAF are both offered only in"),
    ({}, "cn-north-1", "aws:region = 'cn-north-1' is invalid"),
    ({"namePrefix": "Bad_Prefix"}, "eu-west-1", "namePrefix = 'Bad_Prefix' is invalid: must be 3-24 lowercase"),
    ({"namePrefix": "ends-with-"}, "eu-west-1", "namePrefix = 'ends-with-' is invalid"),
    ({"namePrefix": "x" * 25}, "eu-west-1", "namePrefix = '" + "x" * 25 + "' is invalid"),
    ({"logRetentionDays": "13"}, "eu-west-1", "logRetentionDays = '13' is invalid: must be one of 1, 3, 5"),
    ({"logRetentionDays": "a month"}, "eu-west-1", "logRetentionDays = 'a month' is invalid: must be an integer"),
    ({"kmsKeyDeletionWindowDays": "6"}, "eu-west-1", "kmsKeyDeletionWindowDays = '6' is invalid: must be between 7"),
    ({"kmsKeyDeletionWindowDays": "31"}, "eu-west-1", "kmsKeyDeletionWindowDays = '31' is invalid"),
    ({"lambdaArchitecture": "x86"}, "eu-west-1", "lambdaArchitecture = 'x86' is invalid: must be one of arm64, x86_64"),
    ({"powertoolsLayerVersion": "0"}, "eu-west-1", "powertoolsLayerVersion = '0' is invalid: must be at least 1"),
    ({"extraTags": "owner=me"}, "eu-west-1", "extraTags = 'owner=me' is invalid: must be a list of strings"),
    ({"extraTags": '["no-equals-sign"]'}, "eu-west-1", "extraTags = 'no-equals-sign' is invalid: each entry"),
    ({"extraTags": '["aws:owner=me"]'}, "eu-west-1", "'aws:owner=me' is invalid: tag keys starting with 'aws:'"),
    ({"extraTags": '["environment=prod"]'}, "eu-west-1", "the tag key 'environment' is set by the program"),
    ({"extraTags": '["a=1", "a=2"]'}, "eu-west-1", "the tag key 'a' is given twice"),
    ({"extraTags": json.dumps([f"k{i}=v" for i in range(48)])}, "eu-west-1", "must be at most 47 entries"),
    ({"extraTags": json.dumps(["bad<key>=v"])}, "eu-west-1", "'bad<key>=v' is invalid"),
    ({"logRetentionDay": "30"}, "eu-west-1",
     "logRetentionDay = '30' is invalid: unknown key; did you mean logRetentionDays?"),
    ({"eventTypes": "[]"}, "eu-west-1", "eventTypes = [] is invalid: must be 1-20 distinct entries"),
    ({"eventTypes": '["view", "view"]'}, "eu-west-1", "eventTypes = ['view', 'view'] is invalid"),
    ({"eventTypes": '["page view"]'}, "eu-west-1",
     "eventTypes = 'page view' is invalid: each entry must be a letter then"),
    ({"eventTypes": json.dumps([f"t{i}" for i in range(21)])}, "eu-west-1", "must be 1-20 distinct entries"),
    ({"collectClientDetails": "yes"}, "eu-west-1", "collectClientDetails = 'yes' is invalid: must be true or false"),
    ({"collectionApiKeyRequired": "1"}, "eu-west-1", "collectionApiKeyRequired = '1' is invalid"),
    ({"corsAllowedOrigins": '["*"]'}, "eu-west-1",
     "corsAllowedOrigins = '*' is invalid: each entry must be https://host"),
    ({"corsAllowedOrigins": '["http://www.example.com"]'}, "eu-west-1",
     "'http://www.example.com' is invalid: each entry"),
    ({"corsAllowedOrigins": '["https://example.com/path"]'}, "eu-west-1",
     "'https://example.com/path' is invalid: each entry must be"),
    ({"corsAllowedOrigins": '["https://Example.com"]'}, "eu-west-1", "'https://Example.com' is invalid"),
    ({"apiThrottleRateLimit": "0"}, "eu-west-1", "apiThrottleRateLimit = '0' is invalid: must be between 1 and 10000"),
    ({"apiThrottleBurstLimit": "5001"}, "eu-west-1", "apiThrottleBurstLimit = '5001' is invalid"),
    ({"apiThrottleRateLimit": "2000"}, "eu-west-1",
     "apiThrottleBurstLimit = 1000 is invalid: must be at least apiThrottleRateLimit (2000)"),
    ({"apiQuotaPerDay": "-1"}, "eu-west-1", "apiQuotaPerDay = '-1' is invalid: must be 0 (no quota) or at least 1"),
    ({"streamMode": "on-demand"}, "eu-west-1", "streamMode = 'on-demand' is invalid: must be one of ON_DEMAND"),
    ({"streamShardCount": "0"}, "eu-west-1", "streamShardCount = '0' is invalid: must be between 1 and 500"),
    ({"streamRetentionHours": "12"}, "eu-west-1", "streamRetentionHours = '12' is invalid: must be between 24"),
    ({"firehoseBufferSeconds": "30"}, "eu-west-1", "firehoseBufferSeconds = '30' is invalid: must be between 60"),
    ({"firehoseBufferMiB": "129"}, "eu-west-1", "firehoseBufferMiB = '129' is invalid: must be between 1 and 128"),
    ({"rawDataTransitionDays": "10"}, "eu-west-1", "rawDataTransitionDays = '10' is invalid: must be 0"),
    ({"rawDataExpirationDays": "20"}, "eu-west-1",
     "rawDataExpirationDays = 20 is invalid: must be greater than rawDataTransitionDays (30) or 0"),
    ({"noncurrentVersionExpirationDays": "0"}, "eu-west-1", "noncurrentVersionExpirationDays = '0' is invalid"),
    ({"manageApiGatewayAccount": "maybe"}, "eu-west-1", "manageApiGatewayAccount = 'maybe' is invalid"),
    ({"processorBatchSize": "0"}, "eu-west-1", "processorBatchSize = '0' is invalid: must be between 1 and 10000"),
    ({"processorParallelizationFactor": "11"}, "eu-west-1", "processorParallelizationFactor = '11' is invalid"),
    ({"processorMaximumRecordAgeSeconds": "-1"}, "eu-west-1",
     "processorMaximumRecordAgeSeconds = '-1' is invalid: must be between 60 and 604800"),
    ({"processorMaximumRetryAttempts": "-1"}, "eu-west-1", "processorMaximumRetryAttempts = '-1' is invalid"),
    ({"processorConcurrency": "65"}, "eu-west-1", "processorConcurrency = '65' is invalid: must be between 1 and 64"),
    ({"parameterCacheSeconds": "0"}, "eu-west-1", "parameterCacheSeconds = '0' is invalid"),
    ({"personalizeFilters": '["unread"]'}, "eu-west-1",
     "personalizeFilters = 'unread' is invalid: each entry must be name=expression"),
    ({"personalizeFilters": '["Un-Read=EXCLUDE ItemID"]'}, "eu-west-1", "'Un-Read=EXCLUDE ItemID' is invalid"),
    ({"personalizeFilters": json.dumps([f"a={EXPRESSION}", EXPRESSION.join(("a=", " "))])}, "eu-west-1",
     "is invalid: the filter name is given twice"),
    ({"personalizeFilters": '["unread=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\\"read\\""]'}, "eu-west-1",
     "is invalid: the expression's quotes or parentheses are unbalanced"),
    ({"personalizeFilters": '["unread=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN (\\"read)"]'}, "eu-west-1",
     "is invalid: the expression's quotes or parentheses are unbalanced"),
    ({"personalizeFilters": '["unread=read items"]'}, "eu-west-1", "a filter expression starts INCLUDE|EXCLUDE"),
    ({"personalizeFilters": json.dumps([f"f{i}={EXPRESSION}" for i in range(11)])}, "eu-west-1",
     "must be at most 10 entries"),
    ({"trainingRecipe": "user-personalization"}, "eu-west-1", "trainingRecipe = 'user-personalization' is invalid"),
    ({"trainingRecipe": "aws-user-personalisation"}, "eu-west-1",
     "'aws-user-personalisation' is invalid: must be one of aws-user-personalization-v2,"),
    ({"trainingMetric": "NDCG@25"}, "eu-west-1", "trainingMetric = 'NDCG@25' is invalid"),
    ({"trainingMetric": "normalized_discounted_cumulative_gain_at_20"}, "eu-west-1", "must be one of coverage,"),
    ({"trainingMetricTolerance": "-0.1"}, "eu-west-1",
     "trainingMetricTolerance = '-0.1' is invalid: must be between 0 and 1"),
    ({"trainingMetricTolerance": "a bit"}, "eu-west-1", "trainingMetricTolerance = 'a bit' is invalid"),
    ({"trainingMinInteractions": "999"}, "eu-west-1", "trainingMinInteractions = '999' is invalid: must be at least"),
    ({"trainingMinUsersWithTwoInteractions": "24"}, "eu-west-1",
     "trainingMinUsersWithTwoInteractions = '24' is invalid: must be at least 25"),
    ({"campaignMinProvisionedTps": "0"}, "eu-west-1", "campaignMinProvisionedTps = '0' is invalid"),
    ({"trainingSchedule": "weekly"}, "eu-west-1", "trainingSchedule = 'weekly' is invalid: must be rate(<n>"),
    ({"trainingNotificationEmails": '["not-an-address"]'}, "eu-west-1", "'not-an-address' is invalid: each entry"),
    ({"trainingShards": "65"}, "eu-west-1", "trainingShards = '65' is invalid"),
    ({"trainingPollSeconds": "5"}, "eu-west-1", "trainingPollSeconds = '5' is invalid"),
    ({"wafRateLimitPer5Minutes": "5"}, "eu-west-1", "wafRateLimitPer5Minutes = '5' is invalid"),
    ({"wafCountOnlyRules": '["SQLi_BODY"]'}, "eu-west-1", "'SQLi_BODY' is invalid: each entry must be AWSManagedRules"),
    ({"servingThrottleRateLimit": "900"}, "eu-west-1",
     "servingThrottleBurstLimit = 400 is invalid: must be at least servingThrottleRateLimit (900)"),
])
def test_invalid_values_are_rejected_with_key_value_and_allowed(overrides: dict[str, str], region: str | None,
                                                                expected: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse(overrides, region)

    assert expected in str(excinfo.value)
    assert len(excinfo.value.problems) == 1


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse({"logRetentionDays": "13", "lambdaArchitecture": "sparc"}, region="mars-1")

    assert len(excinfo.value.problems) == 3


def test_ingestion_values_are_read_from_their_keys() -> None:
    ingestion = parse_settings({
        "environment": "dev", "eventTypes": '["view", "play"]', "collectClientDetails": "true",
        "collectionApiKeyRequired": "false",
        "apiThrottleRateLimit": "100", "apiThrottleBurstLimit": "200", "apiQuotaPerDay": "5000",
        "streamMode": "PROVISIONED", "streamShardCount": "3", "streamRetentionHours": "168",
        "firehoseBufferSeconds": "900", "firehoseBufferMiB": "128", "rawDataTransitionDays": "60",
        "rawDataExpirationDays": "730", "noncurrentVersionExpirationDays": "7", "manageApiGatewayAccount": "false",
    }, region="eu-west-1", stack="dev").ingestion

    assert ingestion.event_types == ("view", "play")
    assert ingestion.collect_client_details is True and ingestion.api_key_required is False
    assert (ingestion.throttle_rate_limit, ingestion.throttle_burst_limit, ingestion.quota_per_day) == (100, 200, 5000)
    assert (ingestion.stream_mode, ingestion.stream_shard_count, ingestion.stream_retention_hours) == (
        "PROVISIONED", 3, 168)
    assert (ingestion.firehose_buffer_seconds, ingestion.firehose_buffer_mib) == (900, 128)
    assert (ingestion.raw_transition_days, ingestion.raw_expiration_days) == (60, 730)
    assert ingestion.noncurrent_version_expiration_days == 7
    assert ingestion.manage_api_gateway_account is False


def test_retention_accepts_every_cloudwatch_value() -> None:
    for days in LOG_RETENTION_DAYS:
        assert parse({"logRetentionDays": str(days)}).log_retention_days == days  # type: ignore[attr-defined]


def test_supported_regions_offer_personalize_and_waf_per_botocore() -> None:
    session = boto3.session.Session()
    offered = set(session.get_available_regions("personalize")) & set(session.get_available_regions("wafv2"))

    assert set(REGION_CODES) <= offered
    assert len(set(REGION_CODES.values())) == len(REGION_CODES)


def test_physical_names_longer_than_the_limit_are_refused() -> None:
    settings = parse_settings(VALID, region="eu-west-1", stack="dev")

    with pytest.raises(ValueError, match="longer than 20 characters"):
        settings.physical_name("a-rather-long-suffix", max_length=20)


def test_sites_values_are_read_from_their_keys() -> None:
    origins = '["https://www.example.com", "http://localhost:3000"]'

    sites = parse_settings({**VALID, "corsAllowedOrigins": origins}, region="eu-west-1", stack="dev").sites

    assert sites.cors_allowed_origins == ("https://www.example.com", "http://localhost:3000")


RANGED = [k for k in CONFIG_KEYS if k.type == "integer" and k.minimum is not None and not k.choices]


@pytest.mark.parametrize("key", RANGED, ids=[k.name for k in RANGED])
def test_each_integer_key_accepts_its_bounds_and_refuses_one_beyond(key: ConfigKey) -> None:
    """The limits written on the key are the check: at the bounds accepted, one beyond refused naming them."""
    bounds = [int(key.minimum or 0)] + ([int(key.maximum)] if key.maximum is not None else [])
    beyond = [int(key.minimum or 0) - 1] + ([int(key.maximum) + 1] if key.maximum is not None else [])
    # Keys whose burst must cover their rate, or whose expiry must follow the transition, are set consistently.
    related = {"rawDataTransitionDays": "0", **({"apiThrottleRateLimit": "1", "servingThrottleRateLimit": "1"}
                                                if "Burst" in key.name else
                                                {"apiThrottleBurstLimit": "5000", "servingThrottleBurstLimit": "5000"})}
    for value in bounds:
        parse({**related, key.name: str(value)})
    for value in beyond:
        if key.off and value == key.off[0]:
            continue
        with pytest.raises(SettingsError, match=re.escape(f"{key.name} = '{value}' is invalid: must be {key.allowed}")):
            parse({**related, key.name: str(value)})


def test_descriptions_carry_the_generated_allowed_values() -> None:
    descriptions = {k.name: k.description for k in CONFIG_KEYS}

    assert descriptions["apiThrottleRateLimit"].endswith("Allowed: between 1 and 10000.")
    assert descriptions["apiQuotaPerDay"].endswith("Allowed: 0 (no quota) or at least 1.")
    assert descriptions["streamMode"].endswith("Allowed: one of ON_DEMAND, PROVISIONED.")
    assert "Allowed: 1-20 distinct entries, each a letter" in descriptions["eventTypes"]


@pytest.mark.parametrize(("config", "expected"), [
    ({"clickstream-personalisation:environment": "dev"},
     "clickstream-personalisation:environment: unknown namespace 'clickstream-personalisation'; this project's keys "
     "are clickstream-personalization:<key> (did you mean clickstream-personalization:environment?)"),
    ({"clickstream:alarmEmails": "[]"}, "clickstream:alarmEmails: unknown namespace 'clickstream'; this project's keys "
     "are clickstream-personalization:<key> (did you mean clickstream-personalization:alarmEmails?)"),
    ({"aws:regoin": "eu-west-1"}, "aws:regoin is not a setting of the AWS provider; did you mean aws:region?"),
])
def test_typos_in_namespaces_and_aws_keys_are_named(config: dict[str, str], expected: str) -> None:
    full = {"aws:region": "eu-west-1", "clickstream-personalization:environment": "dev", **config}
    if "aws:regoin" in config:
        del full["aws:region"]

    with pytest.raises(SettingsError) as excinfo:
        load_settings_from_values(full, stack="dev")

    assert expected in excinfo.value.problems


def test_provider_and_pulumi_keys_are_accepted() -> None:
    settings = load_settings_from_values({"aws:region": "eu-west-1", "aws:profile": "media",
                                          "pulumi:tags": "{}", "clickstream-personalization:environment": "dev"},
                                         stack="dev")

    assert settings.region == "eu-west-1"
