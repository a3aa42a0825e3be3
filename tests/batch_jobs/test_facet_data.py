"""Labels follow the taxonomy's custom order; unreadable images are skipped and reported; the
augmentation rotates hues by the recipe's share."""

from __future__ import annotations

import colorsys
from dataclasses import replace

import numpy as np
import pytest
import torch

from batch_jobs.facets.data import facet_targets, prepare_records, train_transform
from batch_jobs.facets.loss import UNKNOWN
from batch_jobs.facets.predictor import facet_predictions
from batch_jobs.facets.preprocess import PreprocessConfig
from shared.errors import UnknownLabelError
from shared.recipe import TrainingRecipe
from shared.records import LabelRecord
from shared.taxonomy import Taxonomy

# Deliberately not alphabetical: the model's outputs follow this order, not sorting.
TAXONOMY = Taxonomy({"sleeve": ("long", "cap", "sleeveless"), "neckline": ("v-neck", "boat")})


def _record(image_id: str, **facets) -> LabelRecord:
    return LabelRecord(
        image_id=image_id,
        product_id="p",
        object_key=f"catalog/p/{image_id}.jpg",
        split="train",
        facets=facets,
    )


def test_targets_are_indices_in_the_taxonomy_order_with_unknown_as_minus_one():
    records = [
        _record("a", sleeve="sleeveless", neckline="boat"),
        _record("b", sleeve="long", neckline=None),
        _record("c", neckline="v-neck"),
    ]
    targets = facet_targets(records, TAXONOMY, ["sleeve", "neckline"])
    assert targets.tolist() == [[2, 1], [0, UNKNOWN], [UNKNOWN, 0]]
    assert facet_targets(records, TAXONOMY, ["neckline"]).tolist() == [[1], [UNKNOWN], [0]]


def test_an_unknown_label_fails_loudly_unless_evaluating_an_older_model():
    records = [_record("a", sleeve="three-quarter")]
    with pytest.raises(UnknownLabelError, match="allowed: long, cap, sleeveless"):
        facet_targets(records, TAXONOMY, ["sleeve"])
    assert facet_targets(records, TAXONOMY, ["sleeve"], strict=False).tolist() == [[UNKNOWN]]


def test_predictions_name_labels_and_probabilities_in_the_taxonomy_order():
    probs = {
        "sleeve": np.array([[0.1, 0.2, 0.7]], np.float32),
        "neckline": np.array([[0.6, 0.4]], np.float32),
    }
    out = facet_predictions(probs, 0, TAXONOMY)
    assert out["sleeve"].label == "sleeveless" and out["sleeve"].prob == pytest.approx(0.7)
    assert out["sleeve"].probs == pytest.approx([0.1, 0.2, 0.7])
    assert out["neckline"].label == "v-neck"


def test_corrupt_and_missing_images_are_skipped_and_reported(
    add_corrupt, add_images, tiny_ports, tmp_path
):
    ports = tiny_ports(tmp_path)
    records = add_images(ports, 3)
    add_corrupt(ports, "bad/img")
    missing = records[0].model_copy(
        update={"image_id": "gone/img", "object_key": "catalog/gone/img.jpg"}
    )
    everything = [*records, ports.labels.get("bad/img"), missing]
    prepared = prepare_records(
        everything, ports.catalog, ports.settings, PreprocessConfig(image_size=32)
    )
    assert [r.image_id for r in prepared.records] == [r.image_id for r in records]
    assert prepared.images.shape == (3, 3, 32, 32)
    reasons = {s.image_id: s.reason for s in prepared.skipped}
    assert set(reasons) == {"bad/img", "gone/img"}
    assert "corrupt" in reasons["bad/img"]


def test_a_dress_crop_is_squashed_to_the_square_input():
    from PIL import Image

    from batch_jobs.facets.preprocess import CropConfig, prepare_image

    img = Image.new("RGB", (200, 200), (255, 255, 255))
    img.paste((255, 0, 0), (90, 40, 110, 160))  # a red 20 x 120 dress
    config = PreprocessConfig(image_size=32, crop=CropConfig("v1", 0.0))
    out = prepare_image(img, config, (90, 40, 110, 160))
    assert out.shape == (3, 32, 32)
    assert bool(((out[0] > 200) & (out[1] < 60)).all())  # nothing but the dress is left
    assert prepare_image(img, PreprocessConfig(image_size=32)).shape == (3, 32, 32)


def test_the_bodice_zoom_gives_the_top_of_the_crop_half_the_rows():
    from PIL import Image

    from batch_jobs.facets.preprocess import CropConfig, prepare_image

    img = Image.new("RGB", (100, 200), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 100, 50))  # the top quarter of the crop is red
    config = PreprocessConfig(image_size=40, crop=CropConfig("v1", 0.0, bodice=0.25))
    out = prepare_image(img, config, (0, 0, 100, 200))
    red_rows = ((out[0] > 200) & (out[1] < 60)).all(dim=1)
    assert int(red_rows.sum()) == pytest.approx(20, abs=1)  # 25% of the crop -> 50% of rows
    uniform = prepare_image(img, replace(config, crop=CropConfig("v1", 0.0)), (0, 0, 100, 200))
    assert int(((uniform[0] > 200) & (uniform[1] < 60)).all(dim=1).sum()) == pytest.approx(
        10, abs=1
    )
    with pytest.raises(ValueError, match="bodice"):
        CropConfig("v1", 0.1, bodice=1.0)


def _augmented(rgb: tuple[int, int, int], hue: float, n: int = 40) -> torch.Tensor:
    image = torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, 32, 32).clone()
    return torch.stack([train_transform(32, 32, hue)(image) for _ in range(n)]).float()


def _hues(images: torch.Tensor) -> set[int]:
    """The distinct mean hues of `images`, in bins of 10 degrees."""
    means = (images.mean(dim=(2, 3)) / 255).tolist()
    return {round(colorsys.rgb_to_hsv(*rgb)[0] * 36) % 36 for rgb in means}


def test_the_hue_rotation_changes_colours_but_keeps_greys_grey():
    torch.manual_seed(0)
    assert len(_hues(_augmented((200, 40, 40), hue=0.5))) > 10  # red becomes any hue ...
    grey = _augmented((120, 120, 120), hue=0.5)
    assert (grey.amax(dim=1) - grey.amin(dim=1)).max() <= 2  # ... a grey stays grey
    assert _hues(_augmented((200, 40, 40), hue=0.0)) <= {35, 0, 1}  # no rotation: red stays red


@pytest.mark.slow  # trains twice, one epoch each
@pytest.mark.usefixtures("one_thread")
def test_training_rotates_hues_by_the_recipes_share(monkeypatch, add_images, tiny_ports, tmp_path):
    import batch_jobs.train as train_module

    seen: list[float] = []

    def recording(height: int, width: int, hue: float = 0.0):
        seen.append(hue)
        return train_transform(height, width, hue)

    monkeypatch.setattr(train_module, "train_transform", recording)
    ports = tiny_ports(tmp_path / "home")
    add_images(ports, 8)
    quick = dict(epochs=1, image_size=32, batch_size=8, locator="none", progress=False)
    train_module.train(train_module.default_args(**quick, dynamics=False), ports)
    train_module.train(train_module.default_args(**quick, hue=0.0, dynamics=False), ports)
    assert seen == [TrainingRecipe().hue, 0.0] and TrainingRecipe().hue > 0
