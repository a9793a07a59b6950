"""The rules of the clickstream-personalization policy pack, importable without starting the analyzer."""

from pulumi_policy import Policy

from . import apigateway, cloudwatch, iam, kinesis, kms, lambda_, s3, sfn, sns, sqs, wafv2

PACK_NAME = "clickstream-personalization"

POLICIES: list[Policy] = [*kms.POLICIES, *cloudwatch.POLICIES, *lambda_.POLICIES, *kinesis.POLICIES, *s3.POLICIES,
                          *apigateway.POLICIES, *sqs.POLICIES, *wafv2.POLICIES, *iam.POLICIES,
                          *sns.POLICIES, *sfn.POLICIES]
