"""KMS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import no_public_grants, resource_policy, typed_policy

KEY = "aws:kms/key:Key"
KEY_POLICY = "aws:kms/keyPolicy:KeyPolicy"


def _rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("enableKeyRotation") is not True:
        report_violation(f"KMS key {args.name} does not rotate: set enable_key_rotation=True.", None)


_no_public_principal = no_public_grants(
    "KMS key policy of {name}", "name the principals (an account root, a role, a service) or add a condition on "
    "aws:SourceAccount, aws:SourceArn, aws:PrincipalAccount, aws:PrincipalOrgID, kms:CallerAccount or kms:ViaService "
    "with fixed values.", grant="use the key")


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
