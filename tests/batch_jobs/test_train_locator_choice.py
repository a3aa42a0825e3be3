"""`--locator auto`, the recipe's default: the run trains a locator first only when none is
current, and crops with the current one otherwise (the training itself is stubbed here)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import batch_jobs.locator as locator_package
from batch_jobs import train as train_job
from shared.embedded.files import LocalObjectStore
from shared.registry import ModelKind, ModelRegistry


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(LocalObjectStore(tmp_path / "artifacts", name="artifacts"))


@pytest.fixture
def trained(monkeypatch, registry):
    """Stub the locator training (it saves and promotes a version) and the locator loading."""
    calls = []

    def fake_train(records, catalog, reg, **kwargs):
        version = reg.new_version(ModelKind.LOCATOR)
        reg.save(
            ModelKind.LOCATOR, version, {"metrics.json": json.dumps({"mean_iou": 0.9}).encode()}
        )
        reg.promote(ModelKind.LOCATOR, version, metric="mean_iou")
        calls.append(version)
        return version, {"mean_iou": 0.9}, True

    monkeypatch.setattr(locator_package, "train_locator", fake_train)
    monkeypatch.setattr(train_job, "load_locator", lambda reg, version: f"locator {version}")
    return calls


def locator_for(registry, **overrides):
    args = train_job.default_args(**overrides)
    args.snapshot_key = "snapshots/labels/x.jsonl"  # what the run's start sets
    ports = SimpleNamespace(catalog=None, settings=None)  # only handed to the stubbed training
    return args, train_job._locator_for(args, [], ports, registry)


def test_auto_trains_a_locator_on_a_fresh_deployment_and_crops_with_it(registry, trained):
    args, (locator, summary) = locator_for(registry)
    assert args.locator == "auto" and len(trained) == 1
    assert summary["version"] == trained[0] and summary["promoted"]
    assert args.locator_version == trained[0] and locator == f"locator {trained[0]}"


def test_auto_crops_with_the_current_locator_without_training(registry, trained):
    locator_for(registry)  # the first run: trains one
    _, (locator, summary) = locator_for(registry)
    assert len(trained) == 1 and summary is None
    assert locator == f"locator {trained[0]}"


def test_train_always_trains_and_none_never_crops(registry, trained):
    locator_for(registry, locator="train")
    locator_for(registry, locator="train")
    assert len(trained) == 2
    _, (locator, summary) = locator_for(registry, locator="none")
    assert locator is None and summary is None and len(trained) == 2
