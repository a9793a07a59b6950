"""KMS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from . import _documents
from ._helpers import resource_policy, typed_policy

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


def _rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("enableKeyRotation") is not True:
        report_violation(f"KMS key {args.name} does not rotate: set enable_key_rotation=True.", None)


def _no_public_principal(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    for statement in _documents.public_grants(args.props.get("policy")):
        report_violation(f"KMS key policy of {args.name} lets anyone use the key (statement "
                         f"{_documents.sid(statement)}): name the principals (an account root, a role, a service) "
                         "or add a condition on aws:SourceAccount, aws:SourceArn, aws:PrincipalAccount, "
                         "aws:PrincipalOrgID, kms:CallerAccount or kms:ViaService with fixed values.", None)


kms_key_rotation_enabled = resource_policy(
    "kms-key-rotation-enabled",
    "Customer-managed KMS keys rotate their key material automatically.",
    KEY,
    _rotation,
)
kms_key_policy_no_public_principal = typed_policy(
    "kms-key-policy-no-public-principal",
    "Key policies grant nothing to everyone (Principal \"*\") without a condition naming accounts or services.",
    (KEY, KEY_POLICY),
    _no_public_principal,
)

POLICIES = [kms_key_rotation_enabled, kms_key_policy_no_public_principal]
