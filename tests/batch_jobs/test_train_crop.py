"""With a current locator, training works on the located crop, records it in the model's
preprocessing config, and inference crops with that same locator version afterwards, even
when a newer locator has been promoted since."""

from __future__ import annotations

import json

import pytest

import batch_jobs.facets.predictor as predictor_module
from batch_jobs.facets.predictor import FacetTagger
from batch_jobs.locator import LocatedBox
from batch_jobs.train import default_args, train
from shared.images import open_image
from shared.registry import ModelRegistry

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


class RecordingLocator:
    """A locator double: the top-left quarter of every photo, and which images it saw."""

    def __init__(self, version: str):
        from batch_jobs.locator.preprocess import LocatorConfig

        self.version = version
        self.config = LocatorConfig()  # its input size: the scale photos are decoded at
        self.sizes: list[tuple[int, int]] = []

    def locate(self, images):
        self.sizes.extend(img.size for img in images)
        return [LocatedBox((0.0, 0.0, img.width / 2, img.height / 2), 0.9, False) for img in images]


def _save_locator(registry: ModelRegistry, iou: float) -> str:
    version = registry.new_version("locator")
    registry.save("locator", version, {"metrics.json": json.dumps({"mean_iou": iou}).encode()})
    registry.promote("locator", version, metric="mean_iou", force=True)
    return version


def test_training_and_inference_crop_with_the_same_locator_version(
    add_images, photo, tiny_ports, tmp_path, monkeypatch
):
    ports = tiny_ports(tmp_path)
    add_images(ports, 12)
    registry = ModelRegistry(ports.artifacts)
    first = _save_locator(registry, 0.8)
    loaded: list[str | None] = []

    def fake_load(reg, version):
        loaded.append(version)
        return RecordingLocator(version)

    monkeypatch.setattr(predictor_module, "load_locator", fake_load)
    monkeypatch.setattr("batch_jobs.train.load_locator", fake_load)
    result = train(
        default_args(
            epochs=1, image_size=32, batch_size=8, facets=["sleeve"], oof_folds=0, progress=False
        ),
        ports,
    )
    config = registry.read_json("facets", result.version, "preprocess.json")
    assert config["crop"] == {"locator_version": first, "margin": 0.1, "bodice": 0.3}
    without = result.metrics["without_crop"]["splits"]["test"]["sleeve"]
    cropped = result.metrics["splits"]["test"]["sleeve"]
    assert 0.0 <= without["macro_f1"] <= 1.0
    # the same test images, evaluated on the whole photo
    assert sum(map(sum, without["confusion"])) == sum(map(sum, cropped["confusion"])) == 3
    stored = ports.predictions.get("p1/img", result.version)
    assert stored.bbox == (0.0, 0.0, 24.0, 24.0) and stored.bbox_score == pytest.approx(0.9)

    _save_locator(registry, 0.95)  # a newer, better locator is current now
    loaded.clear()
    tagger = FacetTagger.from_registry(registry)
    assert loaded == [first]
    (tagged,) = tagger.tag([open_image(photo(2, size=48))])
    assert tagged.box == (0.0, 0.0, 24.0, 24.0)
