"""The Docker-free Lambda bundlers: what goes into the code asset and the dependency layer."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

from infra.bundling import (
    BUNDLE_FORMAT,
    CopySources,
    PipLayer,
    project_dependencies,
    source_files,
    sources_hash,
    wheel_platforms,
)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "lambdas").mkdir()
    (tmp_path / "lambdas" / "ingest.py").write_text("def handler(e, c): ...\n")
    (tmp_path / "shared" / "__pycache__").mkdir(parents=True)
    (tmp_path / "shared" / "taxonomy.yaml").write_text("facets: {}\n")
    (tmp_path / "shared" / "__pycache__" / "env.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "other.py").write_text("x = 1\n")
    return tmp_path


def test_sources_are_the_two_folders_without_caches(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("asset")
    assert CopySources(root=tree, folders=("lambdas", "shared")).try_bundle(str(out), None)
    copied = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert copied == ["lambdas/ingest.py", "shared/taxonomy.yaml"]


def test_the_code_hash_follows_the_sources_and_ignores_caches(tree):
    before = sources_hash(tree, ("lambdas", "shared"))
    (tree / "shared" / "__pycache__" / "keys.cpython-311.pyc").write_bytes(b"\1")
    (tree / "other.py").write_text("x = 2\n")
    assert sources_hash(tree, ("lambdas", "shared")) == before
    (tree / "lambdas" / "ingest.py").write_text("def handler(e, c): return {}\n")
    assert sources_hash(tree, ("lambdas", "shared")) != before
    assert len(source_files(tree, ("lambdas",))) == 1


def test_layer_requirements_are_ours_pinned_to_what_the_tests_run_with():
    requirements = project_dependencies()
    names = {r.split("==")[0].lower() for r in requirements}
    assert "boto3" not in names  # the Lambda runtime has it
    assert {"pydantic", "pillow", "numpy", "pyyaml", "aws-lambda-powertools", "tqdm"} <= names
    pydantic = next(r for r in requirements if r.lower().startswith("pydantic=="))
    assert pydantic == f"pydantic=={importlib.metadata.version('pydantic')}"


def test_pip_gets_binary_wheels_for_the_lambda_python_and_arch(tmp_path):
    layer = PipLayer(requirements=["numpy==2.0.0"], python_version="3.12", arch="aarch64")
    command = layer.pip_command(tmp_path)
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--only-binary=:all:" in command and command[-1] == "numpy==2.0.0"
    platforms = [command[i + 1] for i, arg in enumerate(command) if arg == "--platform"]
    assert platforms == wheel_platforms("aarch64")
    assert {"manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64"} <= set(
        platforms
    )
    assert not [p for p in platforms if "x86_64" in p or "_2_35_" in p]


def test_a_cached_layer_is_copied_without_pip(tmp_path, monkeypatch):
    layer = PipLayer(
        requirements=["tqdm==4.0"], python_version="3.12", arch="aarch64", cache_root=tmp_path
    )
    (layer.cache_dir / "python" / "tqdm").mkdir(parents=True)
    (layer.cache_dir / "python" / "tqdm" / "__init__.py").write_text("")
    run = subprocess.run

    def no_pip(command, **kwargs):
        if "pip" in command:
            pytest.fail("pip ran")
        return run(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", no_pip)
    out = tmp_path / "out"
    assert layer.try_bundle(str(out), None)
    assert (out / "python" / "tqdm" / "__init__.py").exists()


def test_the_cache_key_changes_with_requirements_python_and_arch():
    keys = {
        PipLayer(requirements=r, python_version=v, arch=a).cache_key
        for r, v, a in [
            (["tqdm==1"], "3.12", "aarch64"),
            (["tqdm==2"], "3.12", "aarch64"),
            (["tqdm==1"], "3.13", "aarch64"),
            (["tqdm==1"], "3.12", "x86_64"),
        ]
    }
    assert len(keys) == 4


def test_a_failed_pip_says_what_to_do_and_leaves_no_cache(tmp_path, monkeypatch):
    layer = PipLayer(
        requirements=["nope==0"], python_version="3.12", arch="aarch64", cache_root=tmp_path
    )

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "No matching distribution for nope")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    with pytest.raises(RuntimeError, match="No matching distribution") as caught:
        layer.try_bundle(str(tmp_path / "out"), None)
    assert "package index" in str(caught.value)
    assert not layer.cache_dir.exists()


THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_sources_are_compiled_for_a_read_only_run_time(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("asset")
    bundler = CopySources(root=tree, folders=("lambdas", "shared"), python_version=THIS_PYTHON)
    assert bundler.try_bundle(str(out), None)
    (pyc,) = (out / "lambdas" / "__pycache__").glob("ingest.*.pyc")
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based and unchecked: valid whatever the zip does to file times


def test_without_the_runtime_python_the_sources_ship_alone_with_a_warning(
    tree, tmp_path_factory, capsys
):
    out = tmp_path_factory.mktemp("asset")
    bundler = CopySources(root=tree, folders=("lambdas", "shared"), python_version="2.1")
    assert bundler.try_bundle(str(out), None)
    assert not list(out.rglob("*.pyc"))
    assert "python2.1" in capsys.readouterr().err


def test_asset_hashes_change_with_the_bundle_format(tree, monkeypatch):
    from infra import bundling

    layer = PipLayer(requirements=["tqdm==1"], python_version="3.12", arch="aarch64")
    before = (sources_hash(tree, ("lambdas", "shared")), layer.asset_hash)
    monkeypatch.setattr(bundling, "BUNDLE_FORMAT", BUNDLE_FORMAT + b"+1")
    after = (sources_hash(tree, ("lambdas", "shared")), layer.asset_hash)
    assert before[0] != after[0] and before[1] != after[1]
