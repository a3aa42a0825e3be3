"""Out-of-fold predictions: every train image gets probabilities from a model that never saw
its product, and the relabel loop can rank with them."""

from __future__ import annotations

import argparse
import json

import pytest

from batch_jobs.crossval import fold_of
from local.commands import train
from local.runtime import LocalRuntime
from shared.relabel import find_suspicious, oof_version

pytestmark = pytest.mark.usefixtures("one_thread")


def test_folds_are_stable_and_cover_every_fold():
    folds = [fold_of(f"p{i}", 3) for i in range(60)]
    assert folds == [fold_of(f"p{i}", 3) for i in range(60)]
    assert set(folds) == {0, 1, 2}


@pytest.mark.slow  # trains a model
def test_training_with_oof_folds_stores_out_of_fold_predictions_for_the_train_split(
    add_images, tmp_path, capsys
):
    home = tmp_path / "home"
    ports = LocalRuntime.open(home, environ={}).ports
    records = add_images(ports, 16)
    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "train",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--locator",
            "none",
            "--facets",
            "sleeve",
            "--oof-folds",
            "2",
            "--json",
        ]
    )
    args.home = home
    assert args.func(args) == 0
    version = json.loads(capsys.readouterr().out)["version"]

    oof = {p.image_id for p in ports.predictions.for_model(oof_version(version))}
    assert oof == {r.image_id for r in records if r.split == "train"}
    labelled = {r.image_id: r.facets["sleeve"] for r in records}
    for suspect in find_suspicious(ports, version, facet="sleeve"):
        assert suspect.facet == "sleeve"
        assert labelled[suspect.image_id] == suspect.label != suspect.suggested


def test_one_fold_is_refused(tmp_path):
    from batch_jobs.train import check_args, default_args
    from shared.errors import ConfigurationError
    from shared.taxonomy import load_taxonomy

    with pytest.raises(ConfigurationError, match="oof-folds"):
        check_args(default_args(oof_folds=1), load_taxonomy())
