"""Stack settings: valid configurations parse, every invalid one is rejected with key, value and what is allowed."""

from __future__ import annotations

import json

import boto3
import pytest

from components.settings import (
    CONFIG_KEYS,
    LOG_RETENTION_DAYS,
    REGION_CODES,
    SettingsError,
    parse_settings,
)

VALID = {"environment": "dev"}


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
    assert settings.region_code == "use1"
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
    ({"environment": "Dev"}, "eu-west-1", "clickstream-personalization:environment = 'Dev' is invalid: 2-12 lowercase"),
    ({"environment": "a-very-long-environment"}, "eu-west-1", "environment = 'a-very-long-environment' is invalid"),
    ({}, None, "aws:region is required"),
    ({}, "eu-west-3", "aws:region = 'eu-west-3' is invalid: Amazon Personalize and AWS WAF are both offered only in"),
    ({}, "cn-north-1", "aws:region = 'cn-north-1' is invalid"),
    ({"namePrefix": "Bad_Prefix"}, "eu-west-1", "namePrefix = 'Bad_Prefix' is invalid: 3-24 lowercase"),
    ({"namePrefix": "ends-with-"}, "eu-west-1", "namePrefix = 'ends-with-' is invalid"),
    ({"namePrefix": "x" * 25}, "eu-west-1", "namePrefix = '" + "x" * 25 + "' is invalid"),
    ({"logRetentionDays": "13"}, "eu-west-1", "logRetentionDays = '13' is invalid: must be one of 1, 3, 5"),
    ({"logRetentionDays": "a month"}, "eu-west-1", "logRetentionDays = 'a month' is invalid: must be an integer"),
    ({"kmsKeyDeletionWindowDays": "6"}, "eu-west-1", "kmsKeyDeletionWindowDays = '6' is invalid: must be between 7"),
    ({"kmsKeyDeletionWindowDays": "31"}, "eu-west-1", "kmsKeyDeletionWindowDays = '31' is invalid"),
    ({"lambdaArchitecture": "x86"}, "eu-west-1", "lambdaArchitecture = 'x86' is invalid: must be one of arm64, x86_64"),
    ({"powertoolsLayerVersion": "0"}, "eu-west-1", "powertoolsLayerVersion = '0' is invalid: must be a positive"),
    ({"extraTags": "owner=me"}, "eu-west-1", "extraTags = 'owner=me' is invalid: must be a list of strings"),
    ({"extraTags": '["no-equals-sign"]'}, "eu-west-1", "extraTags = 'no-equals-sign' is invalid: each entry"),
    ({"extraTags": '["aws:owner=me"]'}, "eu-west-1", "'aws:owner=me' is invalid: tag keys starting with 'aws:'"),
    ({"extraTags": '["environment=prod"]'}, "eu-west-1", "the tag key 'environment' is set by the program"),
    ({"extraTags": '["a=1", "a=2"]'}, "eu-west-1", "the tag key 'a' is given twice"),
    ({"extraTags": json.dumps([f"k{i}=v" for i in range(48)])}, "eu-west-1", "at most 47 extra tags"),
    ({"extraTags": json.dumps(["bad<key>=v"])}, "eu-west-1", "'bad<key>=v' is invalid"),
    ({"logRetentionDay": "30"}, "eu-west-1", "logRetentionDay = '30' is invalid: unknown key; the keys are"),
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
