"""Verified readers: the reader-token secret and the Lambda REQUEST authorizer the collection and serving APIs share.

Made only where readers sign in (``readerTokenIssuer`` set). The sites' backend mints short-lived HS256 JWTs with the
secret (``tools/reader_token.py``); the authorizer (``handlers/reader_authorizer.py``) verifies them, and API Gateway
caches its answer per token for ``readerTokenCacheSeconds``. The secret's value never passes through Pulumi: the
stack creates the secret, the operator sets and rotates its value (``tools/reader_token.py rotate``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from common.contract import Env
from components.apistage import ApiDefinition
from components.function import FunctionArgs, LambdaFunction
from components.settings import SiteSettings, StackBasics

# How long the authorizer caches the secret's versions: a rotation reaches every warm authorizer within this.
SECRET_CACHE_SECONDS = 300
# Identity sources: the serving API's widget sends a header; beacons cannot, so collection reads the query string.
HEADER_IDENTITY = "method.request.header.Authorization"
QUERY_IDENTITY = "method.request.querystring.token"


@dataclass(frozen=True)
class ReaderAuthArgs:
    stack: StackBasics
    sites: SiteSettings
    key_arn: pulumi.Input[str]


class ReaderAuth(pulumi.ComponentResource):
    secret: aws.secretsmanager.Secret
    authorizer: LambdaFunction

    def __init__(self, name: str, args: ReaderAuthArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("clickstream:readers:ReaderAuth", name, None, opts)
        stack, sites = args.stack, args.sites
        if not sites.verify_readers:
            raise ValueError("ReaderAuth needs readerTokenIssuer: readers are verified only where they sign in")
        child = pulumi.ResourceOptions(parent=self)
        self._cache_seconds = sites.reader_token_cache_seconds
        self._authorizer_name = stack.physical_name("reader-token")
        self.secret = aws.secretsmanager.Secret(
            f"{name}-secret", name=stack.physical_name("reader-token-secret"),
            description="HS256 key of the reader tokens the sites' backend mints (set and rotated by the operator)",
            kms_key_id=args.key_arn, recovery_window_in_days=7, opts=child)
        self.authorizer = LambdaFunction(f"{name}-authorizer", FunctionArgs(
            stack=stack, key_arn=args.key_arn, handler_module="reader_authorizer",
            description="API Gateway authorizer: verifies reader tokens (HS256 JWT) for the reader's routes",
            timeout_seconds=5, memory_mb=256,
            environment={Env.READER_JWT_KEY_ARN: self.secret.arn,
                         Env.READER_JWT_ISSUER: sites.reader_token_issuer,
                         Env.READER_JWT_AUDIENCE: sites.reader_token_audience,
                         Env.READER_JWT_MAX_LIFETIME_SECONDS: str(sites.reader_token_max_lifetime_seconds),
                         Env.PARAMETER_CACHE_SECONDS: str(SECRET_CACHE_SECONDS)},
            statements=[
                {"Sid": "ReadReaderTokenSecret", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                 "Resource": self.secret.arn},
                {"Sid": "DecryptReaderTokenSecret", "Effect": "Allow", "Action": ["kms:Decrypt"],
                 "Resource": args.key_arn,
                 "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{stack.region}.amazonaws.com"}}},
            ],
        ), opts=child)
        self.register_outputs({"secretArn": self.secret.arn})

    def attach(self, definition: ApiDefinition, name: str, identity_source: str) -> aws.apigateway.Authorizer:
        """The authorizer of one API (cached per token), and the permission for that API alone to invoke it."""
        authorizer = definition.add(
            aws.apigateway.Authorizer, f"{name}-reader-authorizer", name=self._authorizer_name, type="REQUEST",
            authorizer_uri=self.authorizer.function.invoke_arn, identity_source=identity_source,
            authorizer_result_ttl_in_seconds=self._cache_seconds)
        aws.lambda_.Permission(
            f"{name}-reader-authorizer-permission", action="lambda:InvokeFunction",
            function=self.authorizer.function.name, principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(definition.api.execution_arn, "/authorizers/", authorizer.id),
            opts=pulumi.ResourceOptions(parent=definition.parent))
        return authorizer
