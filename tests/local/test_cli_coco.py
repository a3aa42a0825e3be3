"""`dressvision labels export --format coco`, read back with pycocotools' standard reader."""

from __future__ import annotations

import pytest
from pycocotools.coco import COCO

from local.cli import main
from local.runtime import LocalRuntime
from shared.records import ImageStatus, LabelRecord


@pytest.fixture
def home(tmp_path):
    labels = LocalRuntime.open(tmp_path / "home").ports.labels
    labels.register(
        LabelRecord(
            image_id="p1/front",
            product_id="p1",
            object_key="catalog/p1/front.jpg",
            split="train",
            facets={"neckline": "v-neck", "sleeve": "long"},
            bbox=(10, 20, 110, 220),
            width=200,
            height=300,
        )
    )
    labels.register(  # no box: an image without annotation, its labels still on the image
        LabelRecord(
            image_id="p2/side",
            product_id="p2",
            object_key="catalog/p2/side.jpg",
            split="test",
            facets={"occasion": "party"},
            width=64,
            height=96,
        )
    )
    labels.register(  # invalid files are left out
        LabelRecord(
            image_id="p3/broken",
            product_id="p3",
            object_key="catalog/p3/broken.jpg",
            split="train",
            status=ImageStatus.INVALID,
            reason="not an image",
        )
    )
    return tmp_path / "home"


def test_coco_export_loads_with_pycocotools(home, tmp_path, capsys):
    out = tmp_path / "labels.coco.json"
    assert main(["labels", "export", "--format", "coco", "-o", str(out), "--home", str(home)]) == 0
    coco = COCO(str(out))

    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["dress"]
    images = {img["dressvision_id"]: img for img in coco.loadImgs(coco.getImgIds())}
    assert set(images) == {"p1/front", "p2/side"}
    front, side = images["p1/front"], images["p2/side"]
    assert front["file_name"] == "catalog/p1/front.jpg"
    assert (front["width"], front["height"]) == (200, 300)
    assert (front["split"], side["split"]) == ("train", "test")
    assert side["facets"]["occasion"] == "party" and side["facets"]["neckline"] is None
    assert coco.getAnnIds(imgIds=[side["id"]]) == []

    (annotation,) = coco.loadAnns(coco.getAnnIds(imgIds=[front["id"]], catIds=[1]))
    assert annotation["bbox"] == [10, 20, 100, 200]  # [x, y, w, h]
    assert annotation["area"] == 100 * 200 and annotation["iscrowd"] == 0
    assert annotation["attributes"]["neckline"] == "v-neck"
    assert annotation["attributes"]["sleeve"] == "long"
    assert annotation["attributes"]["silhouette"] is None
    mask = coco.annToMask(annotation)  # the box is usable as a region by the standard tools
    assert mask.shape == (300, 200) and mask.sum() == 100 * 200
