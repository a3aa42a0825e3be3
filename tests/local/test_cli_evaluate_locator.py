"""`dressvision evaluate --json` gains the locator's figures when a locator is current."""

from __future__ import annotations

import argparse
import json
import random

import pytest

from batch_jobs.locator import train_locator
from local.commands import evaluate
from local.runtime import LocalRuntime
from shared.records import LabelRecord
from shared.registry import ModelRegistry

pytestmark = pytest.mark.usefixtures("one_thread")


def run_evaluate(home, *argv) -> int:
    parser = argparse.ArgumentParser()
    evaluate.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    args.home = home
    return args.func(args)


@pytest.mark.slow  # trains a model
def test_the_locator_block_appears_once_a_locator_is_current(
    drawn_photo, png, quick_args, register_untrained_model, tmp_path, capsys
):
    home = tmp_path / "home"
    ports = LocalRuntime.open(home, environ={}).ports
    rng = random.Random(5)
    records = []
    for i in range(24):
        img, box = drawn_photo(rng)
        key = f"catalog/p{i}/a.png"
        ports.catalog.put(key, png(img))
        record = LabelRecord(
            image_id=f"p{i}/a",
            product_id=f"p{i}",
            object_key=key,
            split="test" if i % 4 == 0 else "train",
            bbox=box,
            facets={"sleeve": "long"},
        )
        ports.labels.register(record)
        records.append(record)
    register_untrained_model(ports)
    out = tmp_path / "eval.json"

    capsys.readouterr()
    assert run_evaluate(home, "--json") == 0  # one JSON object on stdout, nothing else
    printed = json.loads(capsys.readouterr().out)
    assert "locator" not in printed and set(printed["splits"]) == {"train", "test"}

    train_locator(records, ports.catalog, ModelRegistry(ports.artifacts), args=quick_args())
    assert run_evaluate(home, "--output", str(out)) == 0
    block = json.loads(out.read_text())["locator"]
    assert set(block) == {"mean_iou", "iou_50", "iou_75"}
    assert 0.0 <= block["iou_75"] <= block["iou_50"] <= 1.0
    assert "dress locator: mean IoU" in capsys.readouterr().out
