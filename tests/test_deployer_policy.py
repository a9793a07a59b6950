"""The deployer's least-privilege policy: generated from the resource types the stacks use, complete (a type without
actions fails), linted with parliament, within IAM's size limit, and example OIDC roles for the workflows."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

from tools import deployer_policy
from tools.deployer_policy import (
    ACTIONS,
    MANAGED_POLICY_LIMIT,
    OIDC_PROVIDER,
    MissingTypesError,
    documents,
    policy,
    policy_size,
    used_types,
)
from tools.synth import stack_names

# A deployer that writes bucket policies can always grant itself object access: that is what deploying a bucket
# policy means, so parliament's warning about it is expected for this role (and only for s3:PutBucketPolicy).
ACCEPTED = {"RESOURCE_POLICY_PRIVILEGE_ESCALATION"}


@cache
def all_documents() -> dict[str, dict[str, Any]]:
    return documents(stack_names(), "111122223333", "acme/news-site", "main")


def actions_of(files: dict[str, dict[str, Any]], prefix: str) -> set[str]:
    return {a for name, doc in files.items() if name.startswith(prefix) for s in doc["Statement"] for a in s["Action"]}


def test_every_resource_type_the_stacks_use_has_actions() -> None:
    # GIVEN every shipped stack, synthesized as `pulumi up` sees it THEN the table covers each type it registers
    types = used_types(stack_names())

    assert types - set(ACTIONS) == set()
    assert {"aws:kinesis/stream:Stream", "aws:s3/bucketReplicationConfig:BucketReplicationConfig"} <= types


def test_a_type_the_table_lacks_fails() -> None:
    with pytest.raises(MissingTypesError, match="aws:dynamodb/table:Table: add them to ACTIONS"):
        policy({"aws:kms/key:Key", "aws:dynamodb/table:Table"}, ["cp-dev-euw1"])


def test_the_command_fails_when_the_program_uses_a_type_the_table_lacks(monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(deployer_policy, "used_types", lambda stacks: {"aws:dynamodb/table:Table"})

    assert deployer_policy.main(["--stack", "dev"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the deployer policy has no actions for resource type(s) aws:dynamodb/table:Table")
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", ["deployer-policy", "preview-policy"])
def test_the_policies_pass_parliament(kind: str) -> None:
    files = {name: doc for name, doc in all_documents().items() if name.startswith(kind)}
    assert files

    findings = {name: [(f.issue, f.detail) for f in analyze_policy_string(json.dumps(doc)).findings
                       if f.severity not in ("LOW", "INFO", "MUTE") and f.issue not in ACCEPTED]
                for name, doc in files.items()}

    assert {name: found for name, found in findings.items() if found} == {}


def test_parliament_does_flag_a_mismatched_resource() -> None:
    bad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kinesis:CreateStream"], "Resource": "arn:aws:s3:::cp-dev-euw1-raw"}]}

    assert "RESOURCE_MISMATCH" in {f.issue for f in analyze_policy_string(json.dumps(bad)).findings}


def test_each_policy_fits_a_managed_policy() -> None:
    for name, doc in all_documents().items():
        assert policy_size(doc) <= MANAGED_POLICY_LIMIT, name


def test_resources_are_the_stacks_own_where_iam_allows_it() -> None:
    statements = [s for name, doc in all_documents().items() if name.startswith("deployer")
                  for s in doc["Statement"]]
    by_action = {a: s["Resource"] for s in statements for a in s["Action"]}

    assert by_action["kinesis:CreateStream"] == [f"arn:aws:kinesis:*:111122223333:stream/*{p}*"
                                                 for p in ("cp-dev-euw1", "cp-prod-euc1", "cp-prod-use1")]
    assert all("cp-" in arn for arn in by_action["iam:CreateRole"])
    assert by_action["kms:CreateKey"] == "*"  # IAM has no resource for a key that does not exist yet
    passrole = next(s for s in statements if "iam:PassRole" in s["Action"])
    assert passrole["Action"] == ["iam:PassRole"]
    assert "lambda.amazonaws.com" in passrole["Condition"]["StringEquals"]["iam:PassedToService"]


def test_the_preview_role_only_reads_and_the_deployer_can_run_the_teardown() -> None:
    files = all_documents()
    preview, deploy = actions_of(files, "preview-policy"), actions_of(files, "deployer-policy")

    assert preview < deploy
    assert not {a for a in preview if a.split(":")[1].startswith(("Create", "Delete", "Put", "Update"))}
    assert {"s3:ListBucketVersions", "s3:DeleteObjectVersion", "states:StartExecution"} <= deploy


def test_the_oidc_roles_trust_only_this_repository_and_its_workflows() -> None:
    files = all_documents()
    deploy, preview = files["github-oidc-trust-deploy.json"], files["github-oidc-trust-preview.json"]

    [statement] = deploy["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"] == f"arn:aws:iam::111122223333:oidc-provider/{OIDC_PROVIDER}"
    condition = statement["Condition"]["StringEquals"]
    assert condition[f"{OIDC_PROVIDER}:aud"] == "sts.amazonaws.com"
    assert condition[f"{OIDC_PROVIDER}:sub"] == ["repo:acme/news-site:environment:dev",
                                                 "repo:acme/news-site:environment:production",
                                                 "repo:acme/news-site:ref:refs/heads/main"]
    assert preview["Statement"][0]["Condition"]["StringEquals"][f"{OIDC_PROVIDER}:sub"] == [
        "repo:acme/news-site:pull_request"]


def test_the_workflows_environments_match_the_trust_policy() -> None:
    import yaml

    from tools.synth import ROOT

    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8"))
    environments = {job["environment"] for job in deploy["jobs"].values() if "environment" in job}
    subjects = all_documents()["github-oidc-trust-deploy.json"]["Statement"][0]["Condition"]["StringEquals"][
        f"{OIDC_PROVIDER}:sub"]

    assert {f"repo:acme/news-site:environment:{e}" for e in environments} <= set(subjects)


def test_the_command_writes_the_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert deployer_policy.main(["--write", str(tmp_path / "deployer"), "--repo", "acme/news-site",
                                 "--account-id", "111122223333"]) == 0

    written = sorted(p.name for p in (tmp_path / "deployer").iterdir())
    assert "github-oidc-trust-deploy.json" in written and "deployer-policy-1.json" in written
    assert json.loads((tmp_path / "deployer" / "deployer-policy-1.json").read_text())["Version"] == "2012-10-17"
    assert "wrote " in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [(["--stack", "nope"], "no stack file Pulumi.nope.yaml"),
                                               (["--account-id", "12"], "--account-id must be 12 digits")])
def test_bad_arguments_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert deployer_policy.main(argv) == 2
    assert message in capsys.readouterr().err
