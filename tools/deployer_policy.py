"""The least-privilege IAM policy for running `pulumi up` (and `pulumi destroy`) of this program, generated from the
resource types the synthesized stacks register, and example GitHub Actions OIDC roles for the workflows.

    python -m tools.deployer_policy [--account-id 111122223333] [--repo owner/name] [--write docs/deployer]

``ACTIONS`` maps each resource type to the API calls the AWS provider makes to create, read, update, tag and delete
it; a type the program uses that the table lacks is an error (exit 2), so the policy cannot silently fall behind.
Resources are scoped to the stacks' name prefixes wherever IAM supports a resource for the action (ARN formats from
the IAM service authorization reference that parliament ships), ``*`` only where it does not. The preview role gets
the read actions only. Without ``--write`` the deploy policy is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from parliament import iam_definition  # type: ignore[import-untyped]

from components.settings import POWERTOOLS_LAYER_ACCOUNT
from tools.synth import ROOT, stack_names, synthesize_stack

# type → (read actions, write actions). Reads are what `pulumi preview`/refresh needs; writes create/update/delete.
ACTIONS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pulumi:providers:aws": (("sts:GetCallerIdentity",), ()),
    "aws:apigateway/account:Account": (("apigateway:GET",), ("apigateway:PATCH", "iam:PassRole")),
    "aws:apigateway/authorizer:Authorizer": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                                    "apigateway:DELETE")),
    "aws:apigateway/apiKey:ApiKey": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                            "apigateway:DELETE", "apigateway:PUT")),
    "aws:apigateway/deployment:Deployment": (("apigateway:GET",), ("apigateway:POST", "apigateway:DELETE",
                                                                    "apigateway:PATCH")),
    "aws:apigateway/integration:Integration": (("apigateway:GET",), ("apigateway:PUT", "apigateway:PATCH",
                                                                      "apigateway:DELETE", "iam:PassRole")),
    "aws:apigateway/integrationResponse:IntegrationResponse": (("apigateway:GET",), (
        "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE")),
    "aws:apigateway/method:Method": (("apigateway:GET",), ("apigateway:PUT", "apigateway:PATCH",
                                                            "apigateway:DELETE")),
    "aws:apigateway/methodResponse:MethodResponse": (("apigateway:GET",), ("apigateway:PUT", "apigateway:PATCH",
                                                                            "apigateway:DELETE")),
    "aws:apigateway/methodSettings:MethodSettings": (("apigateway:GET",), ("apigateway:PATCH",)),
    "aws:apigateway/model:Model": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                          "apigateway:DELETE")),
    "aws:apigateway/requestValidator:RequestValidator": (("apigateway:GET",), (
        "apigateway:POST", "apigateway:PATCH", "apigateway:DELETE")),
    "aws:apigateway/resource:Resource": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                                "apigateway:DELETE")),
    "aws:apigateway/response:Response": (("apigateway:GET",), ("apigateway:PUT", "apigateway:PATCH",
                                                                "apigateway:DELETE")),
    "aws:apigateway/restApi:RestApi": (("apigateway:GET",), ("apigateway:POST", "apigateway:PUT",
                                                              "apigateway:PATCH", "apigateway:DELETE")),
    "aws:apigateway/stage:Stage": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                          "apigateway:DELETE", "apigateway:PUT")),
    "aws:apigateway/usagePlan:UsagePlan": (("apigateway:GET",), ("apigateway:POST", "apigateway:PATCH",
                                                                  "apigateway:DELETE", "apigateway:PUT")),
    "aws:apigateway/usagePlanKey:UsagePlanKey": (("apigateway:GET",), ("apigateway:POST", "apigateway:DELETE")),
    "aws:cloudtrail/trail:Trail": (("cloudtrail:DescribeTrails", "cloudtrail:GetTrail", "cloudtrail:GetTrailStatus",
                                    "cloudtrail:GetEventSelectors", "cloudtrail:GetInsightSelectors",
                                    "cloudtrail:ListTags"), (
        "cloudtrail:CreateTrail", "cloudtrail:UpdateTrail", "cloudtrail:DeleteTrail", "cloudtrail:StartLogging",
        "cloudtrail:StopLogging", "cloudtrail:PutEventSelectors", "cloudtrail:AddTags", "cloudtrail:RemoveTags")),
    "aws:cloudwatch/dashboard:Dashboard": (("cloudwatch:GetDashboard",), ("cloudwatch:PutDashboard",
                                                                          "cloudwatch:DeleteDashboards")),
    "aws:cloudwatch/logGroup:LogGroup": (("logs:DescribeLogGroups", "logs:ListTagsForResource"), (
        "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:DeleteRetentionPolicy",
        "logs:AssociateKmsKey", "logs:DisassociateKmsKey", "logs:TagResource", "logs:UntagResource")),
    "aws:cloudwatch/logStream:LogStream": (("logs:DescribeLogStreams",), ("logs:CreateLogStream",
                                                                          "logs:DeleteLogStream")),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (("cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"), (
        "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:TagResource",
        "cloudwatch:UntagResource")),
    "aws:iam/role:Role": (("iam:GetRole", "iam:ListRolePolicies", "iam:ListAttachedRolePolicies",
                           "iam:ListInstanceProfilesForRole", "iam:ListRoleTags"), (
        "iam:CreateRole", "iam:DeleteRole", "iam:UpdateRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole",
        "iam:UntagRole")),
    "aws:iam/rolePolicy:RolePolicy": (("iam:GetRolePolicy",), ("iam:PutRolePolicy", "iam:DeleteRolePolicy")),
    "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream": (
        ("firehose:DescribeDeliveryStream", "firehose:ListTagsForDeliveryStream"), (
            "firehose:CreateDeliveryStream", "firehose:DeleteDeliveryStream", "firehose:UpdateDestination",
            "firehose:TagDeliveryStream", "firehose:UntagDeliveryStream", "firehose:StartDeliveryStreamEncryption",
            "firehose:StopDeliveryStreamEncryption", "iam:PassRole")),
    "aws:kinesis/stream:Stream": (("kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                                   "kinesis:ListTagsForStream"), (
        "kinesis:CreateStream", "kinesis:DeleteStream", "kinesis:AddTagsToStream", "kinesis:RemoveTagsFromStream",
        "kinesis:StartStreamEncryption", "kinesis:StopStreamEncryption", "kinesis:IncreaseStreamRetentionPeriod",
        "kinesis:DecreaseStreamRetentionPeriod", "kinesis:UpdateShardCount", "kinesis:UpdateStreamMode",
        "kinesis:EnableEnhancedMonitoring", "kinesis:DisableEnhancedMonitoring")),
    "aws:kms/alias:Alias": (("kms:ListAliases",), ("kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias")),
    "aws:kms/key:Key": (("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"), (
        "kms:CreateKey", "kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:DisableKeyRotation", "kms:TagResource",
        "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:UpdateKeyDescription", "kms:EnableKey",
        "kms:DisableKey")),
    "aws:lambda/eventSourceMapping:EventSourceMapping": (("lambda:GetEventSourceMapping",), (
        "lambda:CreateEventSourceMapping", "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping")),
    "aws:lambda/function:Function": (("lambda:GetFunction", "lambda:GetFunctionConfiguration",
                                      "lambda:ListVersionsByFunction", "lambda:GetFunctionCodeSigningConfig",
                                      "lambda:ListTags", "lambda:GetLayerVersion"), (
        "lambda:CreateFunction", "lambda:DeleteFunction", "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration", "lambda:TagResource", "lambda:UntagResource",
        "lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency", "iam:PassRole")),
    "aws:lambda/permission:Permission": (("lambda:GetPolicy",), ("lambda:AddPermission", "lambda:RemovePermission")),
    "aws:s3/bucket:Bucket": (("s3:ListBucket", "s3:GetBucketTagging", "s3:GetBucketAcl", "s3:GetBucketCORS",
                              "s3:GetBucketWebsite", "s3:GetAccelerateConfiguration", "s3:GetBucketRequestPayment",
                              "s3:GetBucketLogging", "s3:GetBucketObjectLockConfiguration", "s3:GetBucketPolicy",
                              "s3:GetBucketLocation"), (
        "s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketTagging")),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (("s3:GetLifecycleConfiguration",), (
        "s3:PutLifecycleConfiguration",)),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (("s3:GetBucketOwnershipControls",), (
        "s3:PutBucketOwnershipControls",)),
    "aws:s3/bucketPolicy:BucketPolicy": (("s3:GetBucketPolicy",), ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy")),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (("s3:GetBucketPublicAccessBlock",), (
        "s3:PutBucketPublicAccessBlock",)),
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": (("s3:GetReplicationConfiguration",), (
        "s3:PutReplicationConfiguration", "iam:PassRole")),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        ("s3:GetEncryptionConfiguration",), ("s3:PutEncryptionConfiguration",)),
    "aws:s3/bucketVersioning:BucketVersioning": (("s3:GetBucketVersioning",), ("s3:PutBucketVersioning",)),
    "aws:scheduler/schedule:Schedule": (("scheduler:GetSchedule",), ("scheduler:CreateSchedule",
                                                                     "scheduler:UpdateSchedule",
                                                                     "scheduler:DeleteSchedule", "iam:PassRole")),
    "aws:sfn/stateMachine:StateMachine": (("states:DescribeStateMachine", "states:ListStateMachineVersions",
                                           "states:ListTagsForResource"), (
        "states:CreateStateMachine", "states:UpdateStateMachine", "states:DeleteStateMachine", "states:TagResource",
        "states:UntagResource", "iam:PassRole", "logs:CreateLogDelivery", "logs:GetLogDelivery",
        "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
        "logs:PutResourcePolicy", "logs:DescribeResourcePolicies")),
    "aws:secretsmanager/secret:Secret": (("secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"), (
        "secretsmanager:CreateSecret", "secretsmanager:UpdateSecret", "secretsmanager:DeleteSecret",
        "secretsmanager:TagResource", "secretsmanager:UntagResource")),
    "aws:sns/topic:Topic": (("sns:GetTopicAttributes", "sns:ListTagsForResource"), (
        "sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes", "sns:TagResource", "sns:UntagResource")),
    "aws:sns/topicSubscription:TopicSubscription": (("sns:GetSubscriptionAttributes",), (
        "sns:Subscribe", "sns:Unsubscribe", "sns:SetSubscriptionAttributes")),
    "aws:sqs/queue:Queue": (("sqs:GetQueueAttributes", "sqs:ListQueueTags", "sqs:GetQueueUrl"), (
        "sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue")),
    "aws:wafv2/webAcl:WebAcl": (("wafv2:GetWebACL", "wafv2:ListTagsForResource"), (
        "wafv2:CreateWebACL", "wafv2:UpdateWebACL", "wafv2:DeleteWebACL", "wafv2:TagResource",
        "wafv2:UntagResource")),
    "aws:wafv2/webAclAssociation:WebAclAssociation": (("wafv2:GetWebACLForResource",), (
        "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "apigateway:SetWebACL")),
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration": (("wafv2:GetLoggingConfiguration",), (
        "wafv2:PutLoggingConfiguration", "wafv2:DeleteLoggingConfiguration", "logs:CreateLogDelivery",
        "logs:DeleteLogDelivery", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups")),
}

# What the operator runs besides `pulumi up`: training and teardown runs (`python -m tools.train`) and emptying the
# versioned buckets before `pulumi destroy` (`--teardown --empty-buckets`).
OPERATIONS: tuple[str, ...] = ("states:StartExecution", "states:DescribeExecution", "states:GetExecutionHistory",
                               "s3:ListBucketVersions", "s3:DeleteObjectVersion")

# API Gateway's IAM resources are paths; the program's APIs, keys and plans are all it creates.
APIGATEWAY_RESOURCES = ("/restapis", "/restapis/*", "/apikeys", "/apikeys/*", "/usageplans", "/usageplans/*",
                        "/account", "/tags/*")
# Resources of another owner the program reads: the Powertools layer (AWS's account) and managed WAF rule groups.
FOREIGN_RESOURCES: Mapping[str, tuple[str, ...]] = {
    "lambda:GetLayerVersion": (f"arn:aws:lambda:*:{POWERTOOLS_LAYER_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-*:*",),
    "wafv2:CreateWebACL": ("arn:aws:wafv2:*:*:regional/managedruleset/*/*",),
    "wafv2:UpdateWebACL": ("arn:aws:wafv2:*:*:regional/managedruleset/*/*",),
}
# ARN variables that hold ids AWS assigns (not our names): any value.
_ID_VARIABLES = ("Id", "UUID", "Version", "Qualifier", "Arn")
_PRIVILEGES = {(s["prefix"], p["privilege"]): p for s in iam_definition for p in s["privileges"]}
_RESOURCE_ARNS = {(s["prefix"], r["resource"]): r["arn"] for s in iam_definition for r in s["resources"]}
MANAGED_POLICY_LIMIT = 6144  # characters of a customer managed policy, whitespace excluded (IAM quotas)
OIDC_PROVIDER = "token.actions.githubusercontent.com"


class MissingTypesError(Exception):
    def __init__(self, types: Iterable[str]) -> None:
        self.types = sorted(types)
        super().__init__("the deployer policy has no actions for resource type(s) " + ", ".join(self.types)
                         + ": add them to ACTIONS in tools/deployer_policy.py")


def used_types(stacks: Sequence[str]) -> set[str]:
    """The resource types (not components) the stacks register."""
    return {r.type for stack in stacks for r in synthesize_stack(stack, preview=False).resources if r.custom}


def name_prefixes(stacks: Sequence[str]) -> list[str]:
    prefixes = set()
    for stack in stacks:
        prefix = synthesize_stack(stack, preview=True).outputs.get("namePrefix")
        if isinstance(prefix, str) and prefix:
            prefixes.add(prefix)
    return sorted(prefixes)


def _substitute(arn_format: str, account: str, prefixes: Sequence[str]) -> list[str]:
    arn = arn_format.replace("${Partition}", "aws").replace("${Region}", "*").replace("${Account}", account)
    variables = [part.split("}", 1)[0] for part in arn.split("${")[1:]]
    named = [v for v in variables if not v.endswith(_ID_VARIABLES)]
    for variable in variables:
        if variable not in named[:1]:
            arn = arn.replace("${" + variable + "}", "*")
    if not named:
        return [arn]
    return [arn.replace("${" + named[0] + "}", f"*{prefix}*") for prefix in prefixes]


def resources_for(action: str, account: str, prefixes: Sequence[str]) -> list[str]:
    """The ARNs ``action`` is allowed on: the program's own resources of the types IAM lists, else ``*``."""
    service, name = action.split(":", 1)
    if service == "apigateway" and action != "apigateway:SetWebACL":
        return [f"arn:aws:apigateway:*::{path}" for path in APIGATEWAY_RESOURCES]
    privilege = _PRIVILEGES.get((service, name))
    if privilege is None:
        raise ValueError(f"unknown IAM action {action} (not in the IAM service authorization reference)")
    types = [t["resource_type"] for t in privilege["resource_types"] if t["resource_type"]]
    required = [t.rstrip("*") for t in types if t.endswith("*")] or [t.rstrip("*") for t in types]
    arns = [arn for t in required if (service, t) in _RESOURCE_ARNS
            for arn in _substitute(_RESOURCE_ARNS[(service, t)], account, prefixes)]
    return [*arns, *FOREIGN_RESOURCES.get(action, ())] if arns else ["*"]


def policy(types: Iterable[str], prefixes: Sequence[str], *, account: str = "*", read_only: bool = False
           ) -> dict[str, Any]:
    """One IAM policy document for ``types``: a statement per service and resource set."""
    types = set(types)
    missing = types - set(ACTIONS)
    if missing:
        raise MissingTypesError(missing)
    actions = {a for t in types for a in ACTIONS[t][0] + (() if read_only else ACTIONS[t][1])}
    if not read_only:
        actions.update(OPERATIONS)
    by_resources: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for action in sorted(actions):
        resources = tuple(sorted(set(resources_for(action, account, prefixes))))
        # PassRole gets its own statement: its condition key applies to it alone.
        group = "passrole" if action == "iam:PassRole" else action.split(":")[0]
        by_resources.setdefault((group, resources), []).append(action)
    statements: list[dict[str, Any]] = []
    for (service, resources), grouped in sorted(by_resources.items()):
        statement: dict[str, Any] = {"Sid": f"{service.title().replace('-', '')}{len(statements) + 1}",
                                     "Effect": "Allow", "Action": grouped,
                                     "Resource": resources[0] if resources == ("*",) else list(resources)}
        if "iam:PassRole" in grouped:
            statement["Condition"] = {"StringEquals": {"iam:PassedToService": sorted(PASSED_TO)}}
        statements.append(statement)
    return {"Version": "2012-10-17", "Statement": statements}


PASSED_TO = ("apigateway.amazonaws.com", "firehose.amazonaws.com", "lambda.amazonaws.com", "s3.amazonaws.com",
             "scheduler.amazonaws.com", "states.amazonaws.com")


def split_statements(document: Mapping[str, Any], limit: int = MANAGED_POLICY_LIMIT) -> list[dict[str, Any]]:
    """The document as several managed policies of at most ``limit`` characters (whitespace excluded) each."""
    parts: list[list[Any]] = [[]]
    for statement in document["Statement"]:
        candidate = [*parts[-1], statement]
        if parts[-1] and policy_size({"Version": "2012-10-17", "Statement": candidate}) > limit:
            parts.append([statement])
        else:
            parts[-1] = candidate
    return [{"Version": "2012-10-17", "Statement": statements} for statements in parts]


def policy_size(document: Mapping[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":")))


def trust_policy(repo: str, subjects: Sequence[str], account: str) -> dict[str, Any]:
    """A role trusting GitHub's OIDC provider, for workflow runs of ``repo`` whose token subject is in ``subjects``
    (``environment:<name>`` for jobs with an environment, ``pull_request``, ``ref:refs/heads/<branch>``)."""
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{OIDC_PROVIDER}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{OIDC_PROVIDER}:aud": "sts.amazonaws.com",
                                       f"{OIDC_PROVIDER}:sub": [f"repo:{repo}:{s}" for s in subjects]}},
    }]}


def documents(stacks: Sequence[str], account: str, repo: str, branch: str) -> dict[str, dict[str, Any]]:
    types, prefixes = used_types(stacks), name_prefixes(stacks)
    deploy = split_statements(policy(types, prefixes, account=account))
    preview = split_statements(policy(types, prefixes, account=account, read_only=True))
    trust_account = account if account != "*" else "111122223333"
    files = {f"deployer-policy-{i + 1}.json": doc for i, doc in enumerate(deploy)}
    files.update({f"preview-policy-{i + 1}.json": doc for i, doc in enumerate(preview)})
    # deploy.yml's jobs run in the dev and production environments; pull-request.yml's preview on pull requests.
    files["github-oidc-trust-deploy.json"] = trust_policy(
        repo, ["environment:dev", "environment:production", f"ref:refs/heads/{branch}"], trust_account)
    files["github-oidc-trust-preview.json"] = trust_policy(repo, ["pull_request"], trust_account)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deployer_policy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", action="append", help="stack(s) to cover (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--account-id", default="*", help="the AWS account the stacks deploy to (default: any)")
    parser.add_argument("--repo", default="OWNER/REPO", help="GitHub repository owner/name for the OIDC trust")
    parser.add_argument("--branch", default="main", help="branch allowed to deploy (default main)")
    parser.add_argument("--write", metavar="DIR", help="write the policies and trust policies as JSON files to DIR")
    args = parser.parse_args(argv)
    stacks = args.stack or stack_names()
    unknown = sorted(set(stacks) - set(stack_names()))
    if unknown:
        print(f"error: no stack file Pulumi.{unknown[0]}.yaml; stacks: {', '.join(stack_names())}", file=sys.stderr)
        return 2
    if args.account_id != "*" and not (args.account_id.isdigit() and len(args.account_id) == 12):
        print(f"error: --account-id must be 12 digits, got {args.account_id!r}", file=sys.stderr)
        return 2
    try:
        files = documents(stacks, args.account_id, args.repo, args.branch)
    except MissingTypesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - a stack that cannot be synthesized is reported, not traced back
        print(f"error: the stacks cannot be synthesized: {error}", file=sys.stderr)
        return 2
    if args.write:
        target = Path(args.write)
        target.mkdir(parents=True, exist_ok=True)
        for name, document in files.items():
            (target / name).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {', '.join(sorted(files))} to {target}")
    else:
        for name, document in files.items():
            if name.startswith("deployer-policy"):
                print(f"// {name}")
                print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ACTIONS", "ROOT", "MissingTypesError", "documents", "policy", "resources_for", "trust_policy"]
