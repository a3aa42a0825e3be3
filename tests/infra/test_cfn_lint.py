"""cfn-lint on the synthesized template: no error, no warning."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint

REGIONS = ["us-east-1", "eu-west-1"]  # where a stage is likely to go; g5/g6 exist in both


@pytest.mark.slow
@pytest.mark.parametrize("app", ["synth", "mturk", "a2i"])
def test_template_is_cfn_lint_clean(request, app):
    """With each workforce: the internal one (cdk.json), Mechanical Turk and A2I."""
    synth = request.getfixturevalue(app)
    matches = lint(json.dumps(synth.template), config=ManualArgs(regions=REGIONS))
    assert [f"{m.rule.id} {m.message} at {'/'.join(map(str, m.path))}" for m in matches] == []
