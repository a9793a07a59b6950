"""Every IAM policy document the stacks produce, linted with parliament (which knows each action's resource types
from the IAM service authorization reference): no finding above LOW."""

from __future__ import annotations

import json

import pytest
from parliament import analyze_policy_string

from tools.synth import stack_names, synthesize_stack

DOCUMENT_INPUTS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}


def documents(stack: str) -> list[tuple[str, str]]:
    synthesis = synthesize_stack(stack, preview=False)
    return [(r.name, r.inputs[field]) for r in synthesis.resources
            if (field := DOCUMENT_INPUTS.get(r.type)) and isinstance(r.inputs.get(field), str)]


@pytest.mark.parametrize("stack", stack_names())
def test_no_iam_document_has_a_finding_above_low(stack: str) -> None:
    docs = documents(stack)
    assert len(docs) >= 5

    findings = {name: [(f.issue, f.severity, f.detail) for f in analyze_policy_string(document).findings
                       if f.severity not in ("LOW", "INFO", "MUTE")]
                for name, document in docs}

    assert {name: found for name, found in findings.items() if found} == {}


def test_parliament_does_flag_a_bad_document() -> None:
    bad = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["personalize:GetRecommendations"],
         "Resource": "arn:aws:s3:::not-a-campaign"}]})

    assert [f.issue for f in analyze_policy_string(bad).findings] == ["RESOURCE_MISMATCH"]
