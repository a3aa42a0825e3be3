"""cdk-nag in this app: the rule pack, and acknowledgements that always carry a reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

MIN_REASON = 20  # a reason says why the rule does not apply here, not just "ok"


def apply_checks(app: App) -> None:
    """Run the AwsSolutions pack on every stack at synth; acknowledgements are also written to
    each resource's Metadata (`cdk_nag.rules_to_suppress`) so a template shows its audit trail."""
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge `rule` (e.g. `AwsSolutions-IAM5[Resource::*]`) on `scope` and below."""
    if len(reason.strip()) < MIN_REASON:
        raise ValueError(f"acknowledging {rule} needs a reason of {MIN_REASON}+ characters")
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))
