"""`cdk synth` through the CDK CLI from node_modules, with the real bundling, offline.

The layer comes from the cache `make synth` fills (build/lambda-layer/), so this test needs no
network; without node_modules or that cache it is skipped, saying which `make` step is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK = REPO_ROOT / "node_modules" / ".bin" / "cdk"
STACK = "Dressvision-dev"


def _layer_cache() -> Path:
    from infra.bundling import PipLayer, project_dependencies
    from infra.constructs.lambda_package import PYTHON_VERSION, WHEEL_ARCH

    layer = PipLayer(
        requirements=project_dependencies(), python_version=PYTHON_VERSION, arch=WHEEL_ARCH
    )
    return layer.cache_dir


@pytest.mark.slow
def test_cdk_cli_synthesizes_the_app_with_its_bundled_lambda_assets(tmp_path):
    if not CDK.exists():
        pytest.skip("node_modules/.bin/cdk is missing: `make synth` installs it (npm ci)")
    if not _layer_cache().is_dir():
        pytest.skip(f"the Lambda layer cache {_layer_cache()} is missing: `make synth` builds it")
    out = tmp_path / "cdk.out"
    env = {
        **os.environ,
        "PATH": f"{CDK.parent}{os.pathsep}{os.environ['PATH']}",  # the local Node first
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance-metadata endpoint
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    resources = json.loads((out / f"{STACK}.template.json").read_text())["Resources"]

    def asset_dir(kind: str) -> Path:
        # Every function shares one code asset, and there is one layer.
        paths = {r["Metadata"]["aws:asset:path"] for r in resources.values() if r["Type"] == kind}
        (path,) = paths
        return out / path

    code = asset_dir("AWS::Lambda::Function")
    for handler in ("ingest", "batch_events", "review", "collect"):
        assert (code / "lambdas" / f"{handler}.py").is_file(), handler
    assert (code / "shared" / "env.py").is_file() and (code / "shared" / "taxonomy.yaml").is_file()
    assert not list(code.rglob("__pycache__"))
    layer = asset_dir("AWS::Lambda::LayerVersion") / "python"
    assert list(layer.glob("pydantic_core/*aarch64-linux-gnu.so"))
    assert (layer / "PIL").is_dir() and (layer / "numpy").is_dir()
    assert not (layer / "boto3").exists()
