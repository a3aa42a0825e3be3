"""The CDK app synthesized once per test session, as `cdk synth` would, minus the bundling.

Bundling (pip for the layer, the source copy) is skipped with `aws:cdk:bundling-stacks = []`:
the asset hashes do not depend on it, and `test_cdk_cli.py` runs the real thing. cdk-nag runs
as in `cdk synth`, but reports instead of failing, so `test_nag.py` can say what failed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfn_template import A2I_FLOW_DEFINITION

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_NODE = REPO_ROOT / "node_modules" / ".bin" / "node"

# jsii runs the CDK in Node: prefer the supported Node that `make synth` installs locally
# (package.json) over an end-of-life system Node. Set before aws_cdk is first imported.
if LOCAL_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(LOCAL_NODE))

TEST_CONTEXT = {
    "aws:cdk:bundling-stacks": [],
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}


def cdk_json_context() -> dict[str, Any]:
    """The context the CLI would pass: cdk.json's feature flags and settings."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synth:
    outdir: Path
    stack_name: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == resource_type}

    def props(self, resource_type: str) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in self.of_type(resource_type).values()]


def synth_app(outdir: Path, **overrides: Any) -> Synth:
    """Synthesize the app with cdk.json's context plus `overrides` into `outdir`."""
    from infra.app import build_app

    context = {**cdk_json_context(), **TEST_CONTEXT, **overrides}
    app = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    (stack,) = assembly.stacks
    return Synth(outdir=outdir, stack_name=stack.stack_name, template=stack.template)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app as `cdk.json` configures it."""
    return synth_app(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def synth_with(tmp_path_factory: pytest.TempPathFactory):
    """`synth_with(**context)`: the app with other settings, in a fresh output folder."""
    return lambda **context: synth_app(tmp_path_factory.mktemp("cdk.out"), **context)


@pytest.fixture(scope="session")
def mturk(synth_with):
    """The app with Mechanical Turk as the workforce."""
    return synth_with(**{"dressvision:workforce": "mturk"})


@pytest.fixture(scope="session")
def a2i(synth_with):
    """The app with an A2I flow definition as the workforce."""
    return synth_with(
        **{"dressvision:workforce": "a2i", "dressvision:a2iFlowDefinitionArn": A2I_FLOW_DEFINITION}
    )
