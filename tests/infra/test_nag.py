"""cdk-nag's AwsSolutions pack: nothing unacknowledged, and every acknowledgement says why."""

from __future__ import annotations

import json

import pytest

from infra.nag import MIN_REASON

REPORT = "validation-report.json"


def _violations(synth) -> list[str]:
    path = synth.outdir / REPORT
    if not path.exists():
        return []
    report = json.loads(path.read_text())
    return [
        f"{v['ruleName']} at {', '.join(c['constructPath'] for c in v['violatingConstructs'])}"
        for plugin in report["pluginReports"]
        for v in plugin["violations"]
        if v["severity"] in ("error", "fatal")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("app", ["synth", "mturk", "a2i"])
def test_aws_solutions_checks_find_no_unacknowledged_error(request, app):
    """With each workforce: the internal one (cdk.json), Mechanical Turk and A2I."""
    assert _violations(request.getfixturevalue(app)) == []


@pytest.mark.slow
@pytest.mark.parametrize("app", ["synth", "mturk", "a2i"])
def test_every_acknowledgement_carries_a_reason(request, app):
    synth = request.getfixturevalue(app)
    acknowledgements = [
        rule
        for resource in synth.resources.values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    ours = [a for a in acknowledgements if a["id"].startswith("AwsSolutions-")]
    assert ours, "the acknowledgements are not written to the template"
    for acknowledgement in acknowledgements:
        assert len(acknowledgement.get("reason", "").strip()) >= MIN_REASON, acknowledgement


def test_an_acknowledgement_without_a_real_reason_is_refused():
    from aws_cdk import App

    from infra.nag import acknowledge

    with pytest.raises(ValueError, match="reason"):
        acknowledge(App(), "AwsSolutions-S1", "ok")
