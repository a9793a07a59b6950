"""The rules of the clickstream-personalization policy pack, importable without starting the analyzer."""

from pulumi_policy import Policy

from . import cloudwatch, kms, lambda_

PACK_NAME = "clickstream-personalization"

POLICIES: list[Policy] = [*kms.POLICIES, *cloudwatch.POLICIES, *lambda_.POLICIES]
