"""KMS rules."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs

from ._helpers import resource_policy


def _rotation(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.props.get("enableKeyRotation") is not True:
        report_violation(f"KMS key {args.name} does not rotate: set enable_key_rotation=True.", None)


kms_key_rotation_enabled = resource_policy(
    "kms-key-rotation-enabled",
    "Customer-managed KMS keys rotate their key material automatically.",
    "aws:kms/key:Key",
    _rotation,
)

POLICIES = [kms_key_rotation_enabled]
