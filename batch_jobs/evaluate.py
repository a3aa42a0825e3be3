"""Evaluate a facet model: per facet and class precision, recall, F1 and support on the train
and test splits, macro F1, accuracy and confusion matrices, and per-image predictions for every
facet stored in the PredictionStore under the model version.

When the model was trained on located crops, the figures are also computed on whole photos
("without crop") so the locator's contribution shows.

Entry point: `python -m batch_jobs.evaluate [--version V] [--json-key KEY]` (the current model
by default; the document also goes to the artifacts store at KEY when given).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from batch_jobs.facets.data import PreparedImages, Skipped, facet_targets, prepare_records
from batch_jobs.facets.engine import predict_probs
from batch_jobs.facets.metrics import mean_macro_f1, split_report
from batch_jobs.facets.predictor import (
    KIND,
    FacetTagger,
    Tagged,
    facet_predictions,
    prediction_record,
)
from batch_jobs.facets.preprocess import PreprocessConfig
from shared.backends import build_ports
from shared.env import Settings
from shared.errors import NotFoundError
from shared.ports import Ports, PredictionStore
from shared.records import ImageStatus, LabelRecord
from shared.registry import ModelRegistry
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)

SPLITS = ("train", "test")


@dataclass
class Evaluation:
    """The `{"version", "splits"}` document, the same without the crop (None when the model
    does not crop), the probabilities per facet of the evaluated images, and what was skipped."""

    document: dict
    without_crop: dict | None
    prepared: PreparedImages
    probs: dict[str, np.ndarray]
    skipped: list[Skipped] = field(default_factory=list)


def metrics_document(
    version: str,
    probs: Mapping[str, np.ndarray],
    records: Sequence[LabelRecord],
    taxonomy: Taxonomy,
) -> dict:
    """`{"version": V, "splits": {"train": {facet: report}, "test": {...}}}` for `records`,
    whose class probabilities are `probs` (rows in the same order)."""
    facets = list(taxonomy.facet_names)
    targets = facet_targets(records, taxonomy, facets, strict=False).numpy()
    labels = {facet: taxonomy.labels(facet) for facet in facets}
    splits = {}
    for split in SPLITS:
        rows = np.array([r.split == split for r in records], dtype=bool)
        split_probs = {facet: probs[facet][rows] for facet in facets}
        splits[split] = split_report(split_probs, targets[rows], facets, labels)
    return {"version": version, "splits": splits}


def summary(document: Mapping) -> dict[str, float]:
    """Mean macro F1 per split: `{"train_macro_f1": x, "test_macro_f1": y}`."""
    return {f"{s}_macro_f1": mean_macro_f1(document["splits"][s]) for s in SPLITS}


def predict_prepared(
    model: nn.Module,
    prepared: PreparedImages,
    config: PreprocessConfig,
    device: torch.device,
    *,
    dtype: torch.dtype | None,
    batch_size: int = 128,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    return predict_probs(
        model,
        prepared.images,
        config,
        device,
        dtype=dtype,
        batch_size=batch_size,
        progress=progress,
        desc="evaluate",
    )


def store_predictions(
    store: PredictionStore,
    version: str,
    prepared: PreparedImages,
    probs: Mapping[str, np.ndarray],
    taxonomy: Taxonomy,
) -> int:
    """Put one PredictionRecord per prepared image (every facet, full probability vectors)."""
    records = [
        prediction_record(
            record.image_id,
            version,
            Tagged(
                facet_predictions(probs, row, taxonomy),
                prepared.boxes[row],
                prepared.box_scores[row],
            ),
        )
        for row, record in enumerate(prepared.records)
    ]
    store.put_many(records)
    return len(records)


def evaluate_records(
    tagger: FacetTagger,
    records: Sequence[LabelRecord],
    ports: Ports,
    *,
    batch_size: int = 128,
    workers: int = 2,
    progress: bool = False,
    with_uncropped: bool = True,
    prepared: PreparedImages | None = None,
) -> Evaluation:
    """Evaluate `tagger` on `records` (their current labels and fixed splits). `prepared`:
    the records' images already prepared with the tagger's config (training has them)."""
    if tagger.version is None:
        raise ValueError("evaluate a registered model version (its figures are stored with it)")
    ok = [r for r in records if r.status == ImageStatus.OK]
    common = dict(workers=workers, progress=progress)
    if prepared is None:
        prepared = prepare_records(
            ok, ports.catalog, ports.settings, tagger.config, locator=tagger.locator, **common
        )
    run = dict(dtype=tagger.dtype, batch_size=batch_size, progress=progress)
    probs = predict_prepared(tagger.model, prepared, tagger.config, tagger.device, **run)
    document = metrics_document(tagger.version, probs, prepared.records, tagger.taxonomy)
    without = None
    if tagger.config.crop is not None and with_uncropped:
        whole: PreprocessConfig = replace(tagger.config, crop=None)
        plain = prepare_records(ok, ports.catalog, ports.settings, whole, **common)
        plain_probs = predict_prepared(tagger.model, plain, whole, tagger.device, **run)
        without = metrics_document(tagger.version, plain_probs, plain.records, tagger.taxonomy)
    return Evaluation(document, without, prepared, probs, prepared.skipped)


def evaluate_version(
    ports: Ports,
    version: str | None = None,
    *,
    progress: bool = False,
    device: str = "auto",
    store: bool = True,
) -> Evaluation:
    """Evaluate a registered facet model (default: the current one) on the LabelStore's
    current labels, and store its per-image predictions."""
    registry = ModelRegistry(ports.artifacts)
    tagger = FacetTagger.from_registry(registry, version, device=device)
    if tagger is None:
        raise NotFoundError("no facet model is current yet; run `dressvision train` first")
    evaluation = evaluate_records(tagger, list(ports.labels.scan()), ports, progress=progress)
    if store:
        store_predictions(
            ports.predictions,
            tagger.version,
            evaluation.prepared,
            evaluation.probs,
            tagger.taxonomy,
        )
    return evaluation


def model_history(registry: ModelRegistry, version: str) -> list[dict]:
    """The per-epoch training history of a facet model: its `history.json`, or for a model
    saved before that file existed, the history in its metrics (train loss only)."""
    try:
        return list(registry.read_json(KIND, version, "history.json"))
    except NotFoundError:
        return list(registry.metrics(KIND, version).get("history", []))


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Evaluate a facet model", add_help=add_help)
    parser.add_argument("--version", default=None, help="model version (default: current)")
    parser.add_argument("--json-key", default=None, help="also write the document here")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return parser


def main(args: argparse.Namespace, ports: Ports | None = None) -> int:
    ports = ports or build_ports(Settings.from_env())
    evaluation = evaluate_version(ports, args.version, device=args.device)
    body = json.dumps(evaluation.document, indent=2)
    if args.json_key:
        ports.artifacts.put(args.json_key, body.encode(), content_type="application/json")
    print(json.dumps({**summary(evaluation.document), "version": evaluation.document["version"]}))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main(get_args_parser().parse_args()))
