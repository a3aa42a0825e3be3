"""The import rules of docs/architecture.md, read from the source with `ast` (nothing imported).

- `shared/` never imports torch, torchvision, `lambdas` or `local`: a Lambda loads it.
- `lambdas/` and `web/` never import torch, torchvision or `batch_jobs`: they must fit a Lambda
  package without the model code.
- `infra/` imports from `shared` only the pure-name modules in `INFRA_MAY_IMPORT_FROM_SHARED`,
  and never a `lambdas`, `local` or `batch_jobs` module: synthesizing the stack must not load
  runtime code, and a name the stack and the code share is defined once, in those modules.

Every import counts, including those inside functions (lazy imports still load at run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Modules of `shared` that hold names and constants only (no I/O, no adapters): the stack may
# read them. Add a module here only if it stays that way.
INFRA_MAY_IMPORT_FROM_SHARED = ("shared.keys", "shared.env")

FORBIDDEN = {
    "shared": ("torch", "torchvision", "lambdas", "local"),
    "lambdas": ("torch", "torchvision", "batch_jobs"),
    "web": ("torch", "torchvision", "batch_jobs"),
    "infra": ("lambdas", "local", "batch_jobs"),
}

# Known violations being fixed on another branch (issue 10, item 2): strict, so the day the fix
# lands the test reports XPASS as a failure and the mark must go.
KNOWN_INFRA_VIOLATIONS: dict[str, str] = {}


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module that `source` (the code of `module`) imports, as dotted names.

    `from a import b` yields `a.b` when `a/b.py` or `a/b/` exists in the repo (a submodule),
    else `a`; relative imports are resolved against `module`.
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def _source_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py")) if (REPO / folder).is_dir() else []


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")


def _within(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in roots)


def violations(folder: str, imports: set[str]) -> list[str]:
    """The imports of a file in `folder` that break the rules above."""
    bad = [m for m in imports if _within(m, FORBIDDEN[folder])]
    if folder == "infra":
        bad += [
            m
            for m in imports
            if _within(m, ("shared",)) and not _within(m, INFRA_MAY_IMPORT_FROM_SHARED)
        ]
    return sorted(bad)


def _cases():
    for folder in FORBIDDEN:
        for path in _source_files(folder):
            rel = path.relative_to(REPO).as_posix()
            marks = ()
            if rel in KNOWN_INFRA_VIOLATIONS:
                marks = pytest.mark.xfail(strict=True, reason=KNOWN_INFRA_VIOLATIONS[rel])
            yield pytest.param(folder, path, id=rel, marks=marks)


@pytest.mark.parametrize(("folder", "path"), list(_cases()))
def test_imports_follow_the_architecture(folder: str, path: Path):
    assert violations(folder, _imports_of(path)) == []


def test_every_folder_with_rules_has_code():
    """The rules above would pass vacuously on a renamed folder."""
    for folder in ("shared", "lambdas", "infra"):
        assert _source_files(folder), f"{folder}/ has no Python files: update FORBIDDEN"


def test_the_checker_sees_every_kind_of_import():
    source = """
import torch.nn
from shared import env, relabel
from shared.aws.dynamodb import LABELS_PARTITION_KEY
from . import wiring

def lazy():
    from batch_jobs.train import train
"""
    found = imported_modules(source, "lambdas.ingest")
    assert found == {
        "torch.nn",
        "shared.env",
        "shared.relabel",
        "shared.aws.dynamodb",
        "lambdas.wiring",
        "batch_jobs.train",
    }
    assert violations("lambdas", found) == ["batch_jobs.train", "torch.nn"]
    assert violations("infra", found) == [
        "batch_jobs.train",
        "lambdas.wiring",
        "shared.aws.dynamodb",
        "shared.relabel",
    ]
    assert violations("infra", {"shared.keys", "shared.env", "aws_cdk.aws_s3"}) == []
    assert violations("shared", {"lambdas.wiring", "local.cli", "torchvision.ops"}) == [
        "lambdas.wiring",
        "local.cli",
        "torchvision.ops",
    ]


def _test_tree_modules() -> set[str]:
    """Names under which a test module or a conftest of tests/ could be imported: `tests.x.y`,
    and the bare stem (pytest puts test folders on sys.path). Plain helper modules (no tests, no
    fixtures, e.g. `tests/web/fake_catalog.py`) may be imported: that runs nothing twice."""
    names = set()
    for path in _source_files("tests"):
        if path.name.startswith("test_") or path.name == "conftest.py":
            names.add(_module_name(path))
            names.add(path.stem)
    return names - {"__init__"}


@pytest.mark.parametrize(
    "path", _source_files("tests"), ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_no_test_file_imports_another(path: Path):
    """Shared fixtures live in conftest: importing a test module runs its tests twice and ties
    the suites together, and importing a conftest registers its fixtures twice."""
    tree_modules = _test_tree_modules()
    imports = _imports_of(path)
    assert sorted(m for m in imports if m in tree_modules) == []
