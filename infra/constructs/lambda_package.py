"""What every Lambda of this app runs: our code (`lambdas/`, `shared/`, `web/`) and a layer with our
third-party dependencies, both built on this machine without Docker (see `infra/bundling.py`).

arm64 (Graviton): about 20% cheaper per GB-second than x86_64 at equal or better speed for this
work (image decoding, JSON, DynamoDB calls), and every dependency ships manylinux aarch64 wheels.
"""

from __future__ import annotations

from aws_cdk import AssetHashType, BundlingOptions
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.bundling import REPO_ROOT, CopySources, PipLayer, project_dependencies, sources_hash

SOURCE_FOLDERS = ("lambdas", "shared", "web")
RUNTIME = lambda_.Runtime.PYTHON_3_12
PYTHON_VERSION = "3.12"  # the layer's wheels are built for exactly this runtime
ARCHITECTURE = lambda_.Architecture.ARM_64
WHEEL_ARCH = "aarch64"


class LambdaPackage(Construct):
    """`code` for `Function(code=...)`, `layer` for `Function(layers=[...])`."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.runtime = RUNTIME
        self.architecture = ARCHITECTURE
        self.code = lambda_.Code.from_asset(
            str(REPO_ROOT / SOURCE_FOLDERS[0]),  # the content comes from the bundler
            asset_hash=sources_hash(REPO_ROOT, SOURCE_FOLDERS),
            asset_hash_type=AssetHashType.CUSTOM,
            bundling=BundlingOptions(
                image=RUNTIME.bundling_image,  # required by the API; never run (see bundling)
                local=CopySources(
                    root=REPO_ROOT, folders=SOURCE_FOLDERS, python_version=PYTHON_VERSION
                ),
            ),
        )
        pip = PipLayer(
            requirements=project_dependencies(), python_version=PYTHON_VERSION, arch=WHEEL_ARCH
        )
        self.layer_cache_dir = pip.cache_dir
        self.layer = lambda_.LayerVersion(
            self,
            "Dependencies",
            description=f"dressvision dependencies for Python {PYTHON_VERSION} {WHEEL_ARCH}",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            code=lambda_.Code.from_asset(
                str(REPO_ROOT),  # pyproject.toml's folder; the content comes from pip
                asset_hash=pip.asset_hash,
                asset_hash_type=AssetHashType.CUSTOM,
                bundling=BundlingOptions(image=RUNTIME.bundling_image, local=pip),
            ),
        )
