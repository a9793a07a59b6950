"""Every IAM policy document the stacks produce, linted with parliament (which knows each action's resource types
from the IAM service authorization reference): no finding above LOW."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parliament import analyze_policy_string

from tools.synth import stack_names, synthesize_stack

# Parliament asks that DescribeExecution/StopExecution also match the Express execution ARN format; the training
# machine is a Standard workflow, whose (child) executions have the execution:<machine>/<id> ARNs granted.
KNOWN_FALSE_POSITIVES = {("RESOURCE_MISMATCH", "states:DescribeExecution"),
                         ("RESOURCE_MISMATCH", "states:StopExecution")}
DOCUMENT_INPUTS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}


def documents(stack: str) -> list[tuple[str, str]]:
    synthesis = synthesize_stack(stack, preview=False)
    return [(r.name, r.inputs[field]) for r in synthesis.resources
            if (field := DOCUMENT_INPUTS.get(r.type)) and isinstance(r.inputs.get(field), str)]


def known_false_positive(finding: Any) -> bool:
    actions = {d.get("action") for d in finding.detail} if isinstance(finding.detail, list) else set()
    return bool(actions) and all((finding.issue, a) in KNOWN_FALSE_POSITIVES for a in actions)


@pytest.mark.parametrize("stack", stack_names())
def test_no_iam_document_has_a_finding_above_low(stack: str) -> None:
    docs = documents(stack)
    assert len(docs) >= 5

    findings = {name: [(f.issue, f.severity, f.detail) for f in analyze_policy_string(document).findings
                       if f.severity not in ("LOW", "INFO", "MUTE") and not known_false_positive(f)]
                for name, document in docs}

    assert {name: found for name, found in findings.items() if found} == {}


def test_parliament_does_flag_a_bad_document() -> None:
    bad = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["personalize:GetRecommendations"],
         "Resource": "arn:aws:s3:::not-a-campaign"}]})

    assert [f.issue for f in analyze_policy_string(bad).findings] == ["RESOURCE_MISMATCH"]
