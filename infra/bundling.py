"""Lambda assets built without Docker: our sources copied, our dependencies from wheels.

CDK runs `try_bundle` only for stacks it bundles (`cdk synth`/`deploy`); unit tests skip it with
the context `aws:cdk:bundling-stacks = []`. Both bundlers raise instead of returning False: a
False would make CDK fall back to a Docker build, which we never want silently.

The dependency layer is `pip install --platform ... --only-binary=:all:` into a folder, cached
under `build/lambda-layer/<key>/` so that the second synth (and the CLI synth test) needs no
network. The key covers the pinned requirements, the Python version and the architecture.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

import jsii
from aws_cdk import ILocalBundling

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYER_CACHE = REPO_ROOT / "build" / "lambda-layer"
# In the Lambda Python runtime already (and kept current by AWS): never shipped in the layer.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore"})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")  # a PEP 508 requirement's name
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): every manylinux tag up to it.
GLIBC_MAX_MINOR = 34
_SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def source_files(root: Path, folders: Iterable[str]) -> list[Path]:
    """The files of `folders` under `root` that a Lambda needs (no caches), sorted."""
    found: list[Path] = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if not path.is_file() or path.suffix in _SKIPPED_SUFFIXES:
                continue
            if _SKIPPED_DIRS.intersection(path.relative_to(root).parts):
                continue
            found.append(path)
    return found


def sources_hash(root: Path, folders: Iterable[str]) -> str:
    """A digest of the names and bytes of the files `CopySources` would copy."""
    digest = hashlib.sha256()
    for path in source_files(root, folders):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# Optional dependency groups the Lambdas also need: `web` (FastAPI, Jinja2, Mangum) for the web
# app's Lambda.
LAYER_EXTRAS = ("web",)


def project_dependencies(
    pyproject: Path = REPO_ROOT / "pyproject.toml", extras: Sequence[str] = LAYER_EXTRAS
) -> list[str]:
    """`[project].dependencies` and those of `extras`, minus what the Lambda runtime provides,
    each pinned to the version installed here when there is one: the layer then carries what
    the tests ran with."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    declared = [*project["dependencies"], *(spec for e in extras for spec in optional[e])]
    pinned: list[str] = []
    for spec in declared:
        match = _NAME.match(spec)
        if match is None:
            raise ValueError(f"pyproject.toml: cannot read the requirement {spec!r}")
        name = match.group(1)
        if name.lower() in RUNTIME_PROVIDED:
            continue
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(spec)
    return sorted(pinned, key=str.lower)


def wheel_platforms(arch: str) -> list[str]:
    """pip `--platform` tags for Lambda on `arch` (`aarch64` or `x86_64`). pip does not expand
    `manylinux_2_X` to older glibc versions by itself, so every compatible tag is listed."""
    minors = range(GLIBC_MAX_MINOR, 16, -1)
    return [f"manylinux_2_{minor}_{arch}" for minor in minors] + [f"manylinux2014_{arch}"]


@jsii.implements(ILocalBundling)
class CopySources:
    """Copies `folders` (e.g. `lambdas`, `shared`) from `root` into the asset, as packages."""

    def __init__(self, *, root: Path, folders: Sequence[str]):
        self.root = root
        self.folders = tuple(folders)

    def try_bundle(self, output_dir: str, options: object) -> bool:
        out = Path(output_dir)
        for path in source_files(self.root, self.folders):
            target = out / path.relative_to(self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        return True


@jsii.implements(ILocalBundling)
class PipLayer:
    """A Lambda layer folder (`python/...`) of manylinux wheels for one Python and one arch."""

    def __init__(
        self,
        *,
        requirements: Sequence[str],
        python_version: str,
        arch: str,
        cache_root: Path = LAYER_CACHE,
    ):
        self.requirements = tuple(requirements)
        self.python_version = python_version
        self.arch = arch
        self.cache_root = cache_root

    @property
    def cache_key(self) -> str:
        text = "\n".join([self.python_version, self.arch, *self.requirements])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def cache_dir(self) -> Path:
        return self.cache_root / self.cache_key

    def try_bundle(self, output_dir: str, options: object) -> bool:
        if not (self.cache_dir / "python").is_dir():
            self._build()
        shutil.copytree(self.cache_dir, output_dir, dirs_exist_ok=True)
        return True

    def pip_command(self, target: Path) -> list[str]:
        """pip for wheels of the Lambda's platform, whatever this machine is."""
        platforms = [arg for tag in wheel_platforms(self.arch) for arg in ("--platform", tag)]
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        pip += ["--retries", "2", "--timeout", "20"]  # offline: fail in a minute, not five
        wheels = ["--implementation", "cp", "--python-version", self.python_version]
        return [
            *pip,
            "--target",
            str(target),
            *wheels,
            "--only-binary=:all:",
            *platforms,
            *self.requirements,
        ]

    def _build(self) -> None:
        """pip into a temporary folder, then rename: an interrupted build leaves no cache."""
        building = self.cache_dir.with_name(self.cache_dir.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        command = self.pip_command(building / "python")
        print(f"Building the Lambda layer: {' '.join(self.requirements)}", file=sys.stderr)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                "pip could not build the Lambda layer (it needs the package index, once: the "
                f"result is cached in {self.cache_root}). pip said:\n{result.stderr[-2000:]}"
            )
        for junk in (building / "python").glob("**/__pycache__"):
            shutil.rmtree(junk, ignore_errors=True)
        shutil.rmtree(building / "python" / "bin", ignore_errors=True)  # console scripts
        building.rename(self.cache_dir)
