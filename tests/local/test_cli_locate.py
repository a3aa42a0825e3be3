"""`dressvision locate PATH... [--json]`."""

from __future__ import annotations

import argparse
import json
import random

import pytest
import torch
from PIL import Image

from batch_jobs.locator import Locator, train_locator
from batch_jobs.locator.preprocess import LocatorConfig
from batch_jobs.models import create_model
from local.commands import locate
from local.runtime import LocalRuntime
from shared.embedded.files import LocalObjectStore
from shared.errors import NotFoundError
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


def parse(home, *argv):
    parser = argparse.ArgumentParser()
    locate.register(parser.add_subparsers())
    args = parser.parse_args(["locate", *argv])
    args.home = home
    return args


@pytest.fixture(scope="module")
def home_with_locator(drawn_photo, png, quick_args, tmp_path_factory):
    """A local home whose artifacts hold a current locator trained on drawn photos (once)."""
    tmp_path = tmp_path_factory.mktemp("locate")
    home = tmp_path / "home"
    runtime = LocalRuntime.open(home)
    rng = random.Random(3)
    store = LocalObjectStore(tmp_path / "catalog", name="catalog")
    records = []
    for i in range(40):
        img, box = drawn_photo(rng)
        store.put(f"catalog/p{i}/a.png", png(img))
        split = "test" if i % 4 == 0 else "train"
        records.append(
            LabelRecord(
                image_id=f"p{i}/a",
                product_id=f"p{i}",
                object_key=f"catalog/p{i}/a.png",
                split=split,
                bbox=box,
            )
        )
    train_locator(records, store, ModelRegistry(runtime.ports.artifacts), args=quick_args())
    return home


@pytest.mark.slow  # trains a model
def test_json_lists_one_result_per_path_in_the_contract_shape(
    drawn_photo, locator_size, home_with_locator, tmp_path, capsys
):
    img, _ = drawn_photo(random.Random(11))
    good = tmp_path / "dress.png"
    img.save(good)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")

    code = locate.run(parse(home_with_locator, str(good), str(bad), "--json"))

    rows = json.loads(capsys.readouterr().out)
    assert code == 1  # one file could not be read
    assert [set(r) for r in rows] == [{"path", "box", "score", "error"}] * 2
    found, broken = rows
    assert found["path"] == str(good) and found["error"] is None
    assert len(found["box"]) == 4 and 0 <= found["box"][0] < found["box"][2] <= locator_size
    assert 0.5 <= found["score"] <= 1
    assert broken == {"path": str(bad), "box": None, "score": None, "error": broken["error"]}
    assert "not an image" in broken["error"]


@pytest.mark.slow  # trains a model
def test_text_output(drawn_photo, home_with_locator, tmp_path, capsys):
    path = tmp_path / "dress.png"
    drawn_photo(random.Random(12))[0].save(path)
    assert locate.run(parse(home_with_locator, str(path))) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{path}\t") and len(line.split("\t")[1].split()) == 4


def test_without_a_current_locator_says_what_to_do(drawn_photo, tmp_path):
    path = tmp_path / "dress.png"
    drawn_photo(random.Random(12))[0].save(path)
    with pytest.raises(NotFoundError, match="dressvision train"):
        locate.run(parse(tmp_path / "empty-home", str(path)))


def test_no_dress_found_is_a_null_box_with_its_score(locator_size, tmp_path):
    model = create_model("locator", "patches", input_size=locator_size)
    with torch.no_grad():  # a background network that is sure nothing is a dress
        model.background_head[-1].bias.fill_(-50.0)
    path = tmp_path / "wall.png"
    Image.new("RGB", (50, 70), (240, 240, 240)).save(path)
    (row,) = locate.locate_files(
        [path],
        Locator(model, LocatorConfig(input_size=locator_size)),
        max_bytes=10**6,
        max_pixels=10**6,
    )
    assert row["box"] is None and row["error"] is None and row["score"] < 0.5
