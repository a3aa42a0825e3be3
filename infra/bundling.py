"""Lambda assets built without Docker: our sources copied, our dependencies from wheels.

CDK runs `try_bundle` only for stacks it bundles (`cdk synth`/`deploy`); unit tests skip it with
the context `aws:cdk:bundling-stacks = []`. Both bundlers raise instead of returning False: a
False would make CDK fall back to a Docker build, which we never want silently.

The dependency layer is `pip install --platform ... --only-binary=:all:` into a folder, cached
under `build/lambda-layer/<key>/` so that the second synth (and the CLI synth test) needs no
network. The key covers the pinned requirements, the Python version and the architecture.

Both assets ship compiled bytecode: Lambda's code folders are read-only, so Python cannot cache
what it compiles, and every cold start would compile every module it imports from source
(pydantic, numpy, powertools: most of the import time). `compile_bytecode` runs `compileall`
with the runtime's Python version at bundling time, in "unchecked-hash" mode: the zip of the
asset does not keep file times, and the asset never changes once built, so the `.pyc` files are
used as they are. It needs that Python (e.g. `python3.12`) on PATH; without it the assets are
built from sources only, with a warning.
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
# Part of every asset hash: bump it when what the bundlers produce changes for the same inputs.
BUNDLE_FORMAT = b"bytecode-1"


def runtime_python(version: str) -> str | None:
    """An interpreter of `version` (e.g. "3.12") to compile with: this one if it matches,
    else `python<version>` on PATH if it runs (a pyenv shim may exist and refuse)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    probe = [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    result = subprocess.run(probe, capture_output=True, text=True, check=False)
    return found if result.returncode == 0 and result.stdout.strip() == version else None


def compile_bytecode(folder: Path, python: str) -> None:
    """Compile every module under `folder` with `python`, for a read-only run time."""
    command = [python, "-m", "compileall", "-q", "-j", "0"]
    command += ["--invalidation-mode", "unchecked-hash", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:  # a file that does not compile would fail at import anyway
        raise RuntimeError(f"compileall failed in {folder}:\n{result.stdout[-2000:]}")


def compile_for_runtime(folder: Path, python_version: str | None) -> bool:
    """`compile_bytecode` with the runtime's Python if there is one here (True), else warn."""
    if python_version is None:
        return False
    python = runtime_python(python_version)
    if python is None:
        print(
            f"warning: no python{python_version} on PATH: the Lambda assets ship without "
            "bytecode and each cold start compiles its imports (hundreds of ms); install "
            f"Python {python_version} to fix",
            file=sys.stderr,
        )
        return False
    compile_bytecode(folder, python)
    return True


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
    digest = hashlib.sha256(BUNDLE_FORMAT)
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
    """Copies `folders` (e.g. `lambdas`, `shared`) from `root` into the asset, as packages,
    compiled for `python_version` when given."""

    def __init__(self, *, root: Path, folders: Sequence[str], python_version: str | None = None):
        self.root = root
        self.folders = tuple(folders)
        self.python_version = python_version

    def try_bundle(self, output_dir: str, options: object) -> bool:
        out = Path(output_dir)
        for path in source_files(self.root, self.folders):
            target = out / path.relative_to(self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        compile_for_runtime(out, self.python_version)
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

    @property
    def asset_hash(self) -> str:
        """The layer asset's hash: the cache key and what the bundler does with the cache."""
        return hashlib.sha256(self.cache_key.encode() + BUNDLE_FORMAT).hexdigest()[:16]

    def try_bundle(self, output_dir: str, options: object) -> bool:
        if not (self.cache_dir / "python").is_dir():
            self._build()
        shutil.copytree(self.cache_dir, output_dir, dirs_exist_ok=True)
        compile_for_runtime(Path(output_dir), self.python_version)
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
