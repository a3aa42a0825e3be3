"""Training, registry round trip and inference of the locator, on tiny drawn photos: a dark
rectangle (the dress) on a light background."""

from __future__ import annotations

import io
import json
import random

import pytest
import torch
from PIL import Image

from batch_jobs.locator import (
    Locator,
    LocatorDataError,
    evaluate_current_locator,
    evaluate_locator,
    train_locator,
)
from batch_jobs.locator import train as train_module
from shared.embedded.files import LocalObjectStore
from shared.keys import checkpoint_key
from shared.records import LabelRecord
from shared.registry import ModelRegistry


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: as fast on these tiny tensors, and immune to a busy shared CPU (two
    OpenMP threads competing with other processes for 2 cores can run 100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def catalog(drawn_photo, png, tmp_path):
    """64 boxed photos (1 in 4 in the test split), one photo without a box, one corrupt."""
    rng = random.Random(0)
    store = LocalObjectStore(tmp_path / "catalog", name="catalog")
    records = []
    for i in range(64):
        img, box = drawn_photo(rng)
        key = f"catalog/p{i}/a.png"
        store.put(key, png(img))
        split = "test" if i % 4 == 0 else "train"
        records.append(
            LabelRecord(
                image_id=f"p{i}/a", product_id=f"p{i}", object_key=key, split=split, bbox=box
            )
        )
    store.put("catalog/nobox/a.png", png(drawn_photo(rng)[0]))
    records.append(
        LabelRecord(
            image_id="nobox/a", product_id="nobox", object_key="catalog/nobox/a.png", split="train"
        )
    )
    store.put("catalog/bad/a.png", b"\x89PNG\r\n\x1a\n not really")
    records.append(
        LabelRecord(
            image_id="bad/a",
            product_id="bad",
            object_key="catalog/bad/a.png",
            split="train",
            bbox=(1, 1, 10, 10),
        )
    )
    return store, records


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(LocalObjectStore(tmp_path / "artifacts", name="artifacts"))


@pytest.mark.slow  # trains a model
def test_trained_locator_finds_the_drawn_dress_and_is_promoted(
    drawn_photo, locator_size, quick_args, catalog, registry
):
    store, records = catalog
    version, metrics, promoted = train_locator(records, store, registry, args=quick_args())

    assert promoted and registry.current("locator") == version
    # A fixed whole-image guess scores about 0.2 on these photos.
    assert metrics["mean_iou"] > 0.55
    assert metrics["images"] == {"train": 48, "test": 16}  # no box -> left out
    assert [s["image_id"] for s in metrics["skipped"]] == ["bad/a"]  # reported, no crash
    saved = registry.metrics("locator", version)
    assert saved["mean_iou"] == metrics["mean_iou"]
    assert (
        json.loads(registry.read("locator", version, "preprocess.json"))["input_size"]
        == locator_size
    )

    # Evaluated again through the registry, as trained (float32), the figures are the same.
    locator = Locator.from_registry(registry, amp=False)
    assert locator is not None and locator.version == version
    assert evaluate_locator(locator, records, store) == {
        k: metrics[k] for k in ("mean_iou", "iou_50", "iou_75")
    }
    current = evaluate_current_locator(registry, records, store)
    assert current == evaluate_locator(Locator.from_registry(registry), records, store)

    # Boxes come back in pixels of each photo, whatever its size (up to resampling noise).
    img, (x0, y0, x1, y1) = drawn_photo(random.Random(7))
    small, big = locator.locate([img, img.resize((locator_size * 3, locator_size * 2))])
    assert not small.fallback and 0 < small.score <= 1
    assert big.box == pytest.approx(
        (small.box[0] * 3, small.box[1] * 2, small.box[2] * 3, small.box[3] * 2), abs=3
    )
    inter = max(0, min(x1, small.box[2]) - max(x0, small.box[0])) * max(
        0, min(y1, small.box[3]) - max(y0, small.box[1])
    )
    union = (x1 - x0) * (y1 - y0) + (small.box[2] - small.box[0]) * (small.box[3] - small.box[1])
    assert inter / (union - inter) > 0.4


@pytest.mark.slow  # trains a model
def test_a_worse_locator_is_saved_but_not_promoted(quick_args, catalog, registry):
    store, records = catalog
    good, _, _ = train_locator(records, store, registry, args=quick_args())
    worse, _, promoted = train_locator(records, store, registry, args=quick_args(epochs=0))
    assert not promoted
    assert registry.current("locator") == good
    assert worse in registry.versions("locator")
    forced, _, promoted = train_locator(
        records, store, registry, args=quick_args(epochs=0, force_promote=True)
    )
    assert promoted and registry.current("locator") == forced


@pytest.mark.slow  # trains a model
def test_the_whole_image_baseline_trains_too(drawn_photo, quick_args, catalog, registry):
    store, records = catalog
    version, metrics, _ = train_locator(
        records, store, registry, args=quick_args(arch="whole", epochs=2, amp=True)
    )
    assert set(metrics) >= {"mean_iou", "iou_50", "iou_75"}
    located = Locator.from_registry(registry, version).locate([drawn_photo(random.Random(1))[0]])
    assert len(located) == 1 and not located[0].fallback


@pytest.mark.slow  # trains a model
def test_no_window_passes_the_threshold_gives_the_whole_photo_flagged(
    quick_args, catalog, registry
):
    store, records = catalog
    version, _, _ = train_locator(records, store, registry, args=quick_args(epochs=1))
    locator = Locator.from_registry(registry, version)
    with torch.no_grad():  # a background network that is sure nothing is a dress
        locator.model.background_head[-1].bias.fill_(-50.0)
    img = Image.new("RGB", (40, 30), (255, 255, 255))
    (found,) = locator.locate([img])
    assert found.fallback
    assert found.box == (0.0, 0.0, 40.0, 30.0)
    assert found.score < 0.5


def test_no_locator_current_means_none(catalog, registry):
    store, records = catalog
    assert Locator.from_registry(registry) is None
    assert evaluate_current_locator(registry, records, store) is None


def test_no_boxed_test_image_is_a_clear_error(quick_args, catalog, registry):
    store, records = catalog
    train_only = [r for r in records if r.split == "train"]
    with pytest.raises(LocatorDataError, match="no readable test image has a dress box"):
        train_locator(train_only, store, registry, args=quick_args(epochs=1))


@pytest.mark.slow  # trains a model
def test_resume_after_an_interruption_gives_the_uninterrupted_model(
    locator_size, quick_args, catalog, tmp_path, monkeypatch
):
    store, records = catalog
    from batch_jobs.locator.data import load_data

    data, _ = load_data(records, store, split="train", input_size=locator_size)
    artifacts = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
    key = checkpoint_key("locator", "job-1")
    args = quick_args(epochs=3)
    config = train_module.config_from_args(args)
    straight, _ = train_module.fit(data, args, config)

    real = train_module.train_one_epoch
    calls = {"n": 0}

    def interrupted(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("spot interruption")
        return real(*a, **kw)

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_module.fit(data, args, config, store=artifacts, ckpt_key=key)
    assert artifacts.exists(key)  # the instance is gone; the store kept two epochs
    calls["n"] = 0
    monkeypatch.setattr(train_module, "train_one_epoch", real)
    resumed, history = train_module.fit(data, args, config, store=artifacts, ckpt_key=key)

    assert [h["epoch"] for h in history] == [0, 1, 2]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


@pytest.mark.slow  # trains a model
def test_a_reclaimed_locator_job_resumes_from_the_store_and_cleans_up(
    quick_args, catalog, registry, monkeypatch
):
    store, records = catalog
    key = checkpoint_key("locator", "job-2")
    real = train_module.train_one_epoch
    epochs_run = []

    def reclaimed_after_one_epoch(*a, **kw):
        if len(epochs_run) == 1:
            raise KeyboardInterrupt("spot instance reclaimed")
        epochs_run.append(kw["epoch"])
        return real(*a, **kw)

    monkeypatch.setattr(train_module, "train_one_epoch", reclaimed_after_one_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_locator(records, store, registry, args=quick_args(epochs=2), ckpt_key=key)
    saved = registry.store.get(key).body
    assert torch.load(io.BytesIO(saved), weights_only=True)["epoch"] == 0

    def rerun(*a, **kw):
        epochs_run.append(kw["epoch"])
        return real(*a, **kw)

    monkeypatch.setattr(train_module, "train_one_epoch", rerun)
    version, metrics, _ = train_locator(
        records, store, registry, args=quick_args(epochs=2), ckpt_key=key
    )
    assert epochs_run == [0, 1]  # the rerun trained epoch 1 only
    assert [h["epoch"] for h in metrics["history"]] == [0, 1]
    assert not registry.store.exists(key)  # the registry holds the model from then on
    history = json.loads(registry.read("locator", version, "history.json"))
    assert [h["epoch"] for h in history] == [0, 1] and all("loss" in h for h in history)


@pytest.mark.slow  # trains a model
def test_locator_training_shows_progress_bars_only_when_asked(
    quick_args, catalog, registry, capsys
):
    store, records = catalog
    train_locator(records, store, registry, args=quick_args(epochs=1), progress=True)
    shown = capsys.readouterr().err
    assert "locator train images" in shown and "train locator" in shown
    train_locator(records, store, registry, args=quick_args(epochs=1), progress=False)
    assert capsys.readouterr().err == ""
