"""Out-of-fold predictions: for every train image, probabilities from a model that never saw
its product. The relabel loop's confident-learning ranking needs them (a model is confidently
right about the very mistakes it memorised), see shared/relabel.py.

The train split's products are dealt into K folds by a stable hash of the product id (all
photos of a product in one fold, as for the train/test split); K models are trained with the
same recipe, each without one fold, and predict that fold. They are stored in the
PredictionStore under `oof_version(version)`; the test split needs none (no model trains on it).
Cost: K extra trainings on (K-1)/K of the data, so `--oof-folds` is off by default: the
training dynamics of the model itself (batch_jobs/dynamics.py) judge the train split better at no
extra cost (bench/results/judge_options.json). When both are on, these replace the dynamics.
"""

from __future__ import annotations

import argparse
import hashlib
import logging

import numpy as np
import torch

from batch_jobs.checkpoint import delete_checkpoint
from batch_jobs.evaluate import predict_prepared, store_predictions
from batch_jobs.facets.data import PreparedImages
from batch_jobs.facets.preprocess import PreprocessConfig
from shared.ports import Ports
from shared.relabel import oof_version
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)


def fold_of(product_id: str, folds: int) -> int:
    """The fold of a product: stable across runs and machines (never Python's `hash`)."""
    digest = hashlib.sha256(f"oof:{product_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % folds


def subset(prepared: PreparedImages, mask: torch.Tensor) -> PreparedImages:
    rows = mask.nonzero().flatten().tolist()
    return PreparedImages(
        images=prepared.images[mask],
        records=[prepared.records[i] for i in rows],
        boxes=[prepared.boxes[i] for i in rows],
        box_scores=[prepared.box_scores[i] for i in rows],
    )


def out_of_fold_predictions(
    args: argparse.Namespace,
    taxonomy: Taxonomy,
    prepared: PreparedImages,
    targets: torch.Tensor,
    labelled: torch.Tensor,
    config: PreprocessConfig,
    ports: Ports,
    version: str,
    *,
    folds: int,
    checkpoint_key: str,
    progress: bool = False,
) -> int:
    """Train `folds` models and store each train image's out-of-fold probabilities.

    prepared: every readable image; targets (N, F) class indices (-1 unknown); labelled (N,)
    bool: the train images with at least one label. Returns how many predictions were stored.
    """
    from batch_jobs.train import build_fit, run_epochs  # the same recipe as the main model

    if folds < 2:
        raise ValueError(f"--oof-folds must be at least 2 (or 0 to skip), got {folds}")
    is_train = torch.tensor([r.split == "train" for r in prepared.records], dtype=torch.bool)
    fold = torch.tensor([fold_of(r.product_id, folds) for r in prepared.records])
    stored = 0
    for k in range(folds):
        keep, held = labelled & (fold != k), is_train & (fold == k)
        if int(keep.sum()) == 0 or int(held.sum()) == 0:
            log.warning("fold %d/%d is empty; its images get no out-of-fold prediction", k, folds)
            continue
        log.info(
            "out-of-fold model %d/%d: %d images, predicting %d",
            k + 1,
            folds,
            int(keep.sum()),
            int(held.sum()),
        )
        fold_args = argparse.Namespace(**{**vars(args), "dynamics": False})
        fit = build_fit(fold_args, taxonomy, prepared.images[keep], targets[keep], None)
        fold_key = f"{checkpoint_key}-oof{k}"
        run_epochs(fit, fold_args, config, ports, fold_key, progress)
        delete_checkpoint(ports.artifacts, fold_key)
        part = subset(prepared, held)
        probs: dict[str, np.ndarray] = predict_prepared(
            fit.final_model, part, config, fit.device, dtype=fit.dtype, progress=progress
        )
        stored += store_predictions(ports.predictions, oof_version(version), part, probs, taxonomy)
    return stored
