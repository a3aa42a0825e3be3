"""Fixtures of the CLI tests: a home with labels and out-of-fold predictions."""

from __future__ import annotations

import csv
import json

import pytest

from local.cli import main
from local.runtime import LocalRuntime
from shared.keys import current_model_key
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
from shared.relabel import oof_version

SLEEVES = ("sleeveless", "cap", "short", "three-quarter", "long")


@pytest.fixture
def home(tmp_path):
    """20 images, two with a wrong sleeve label the model confidently disagrees with."""
    runtime = LocalRuntime.open(tmp_path / "home")
    truth_rows = []
    for i in range(20):
        true = SLEEVES[i % 5]
        given = "long" if i in (2, 7) else true  # 2 and 7 are wrong (truth: short, short)
        record = LabelRecord(
            image_id=f"p{i}/0",
            product_id=f"p{i}",
            split="train",
            object_key=f"catalog/p{i}/0.jpg",
            facets={"sleeve": given},
            sources={"sleeve": LabelSource.CATALOG},
        )
        runtime.ports.labels.register(record)
        probs = [0.02] * 5
        probs[i % 5] = 0.92
        runtime.ports.predictions.put(
            PredictionRecord(
                image_id=record.image_id,
                model_version=oof_version("v1"),
                facets={"sleeve": FacetPrediction(label=true, prob=0.92, probs=probs)},
            )
        )
        truth_rows.append({"image_id": record.image_id, "sleeve": true})
    runtime.ports.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    with (tmp_path / "labels_true.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_id", "sleeve"])
        writer.writeheader()
        writer.writerows(truth_rows)
    return tmp_path


def run_cli(capsys, home, *argv):
    code = main(["--home", str(home / "home"), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cli():
    """`cli(capsys, home, *argv)`: run `dressvision` on the `home` fixture's home; returns
    (exit code, stdout, stderr)."""
    return run_cli
