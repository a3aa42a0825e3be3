"""Tag catalog photos: `python -m batch_jobs.infer --manifest KEY`.

The manifest (JSON lines of `shared.messages.ManifestEntry`, in the artifacts store) lists the
images; as a child of an array job (`AWS_BATCH_JOB_ARRAY_INDEX` = i) this process takes lines
[i * S, (i + 1) * S) with S = `settings.infer_shard_size`, otherwise every line. For each image:
decode (in background threads, overlapped with the model), locate and crop when the model was
trained on crops, run the facet model in batches (channels_last, bf16 where supported) and put
a PredictionRecord under the model version. An unreadable image is skipped and reported (log and
the JSON summary on stdout); the job still succeeds. Writing predictions also runs in the
background, so the model never waits for the store.

Where the deployment has similarity indexes (`Ports.vectors`), the same crops are embedded too:
the unsupervised embedding from the facet model's own forward pass (its pooled features), the
supervised one by the current similarity model; both are upserted into their index with the
image's product, split and predicted facets. A skipped image is deleted from the indexes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from batch_jobs.facets.data import (
    LOAD_ERRORS,
    Skipped,
    chunks,
    decode_ahead,
    load_photo,
    prepare_photo,
)
from batch_jobs.facets.predictor import FacetTagger, Tagged, facet_predictions
from batch_jobs.similarity.embedder import (
    UNSUPERVISED,
    Embedder,
    forward_with_features,
    load_embedders,
)
from shared.backends import build_ports
from shared.env import BATCH_ARRAY_INDEX, Settings
from shared.errors import InvalidImageError, NotFoundError
from shared.messages import ManifestEntry
from shared.ports import ObjectStore, Ports
from shared.registry import ModelRegistry
from shared.similarity import index_metadata

log = logging.getLogger(__name__)


@dataclass
class InferReport:
    model_version: str | None
    images: int = 0
    tagged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    embedded: dict[str, int] = field(default_factory=dict)  # kind -> vectors upserted

    def to_json(self) -> dict:
        return {
            "model_version": self.model_version,
            "images": self.images,
            "tagged": self.tagged,
            "embedded": self.embedded,
            "skipped": [{"image_id": s.image_id, "reason": s.reason} for s in self.skipped],
            "seconds": round(self.seconds, 3),
        }


def read_manifest(artifacts: ObjectStore, key: str) -> list[ManifestEntry]:
    """Every entry of the manifest at `key`."""
    try:
        body = artifacts.get(key).body
    except NotFoundError as exc:
        raise NotFoundError(f"no inference manifest at {key} in the artifacts store") from exc
    return [ManifestEntry.model_validate_json(line) for line in body.splitlines() if line.strip()]


def shard(entries: Sequence[ManifestEntry], index: int | None, size: int) -> list[ManifestEntry]:
    """Lines [index * size, (index + 1) * size) of an array job's child; all without index."""
    if index is None:
        return list(entries)
    if index < 0 or size < 1:
        raise ValueError(f"array index must be >= 0 and shard size >= 1, got {index}, {size}")
    return list(entries[index * size : (index + 1) * size])


def array_index(environ: dict[str, str] | None = None) -> int | None:
    raw = (os.environ if environ is None else environ).get(BATCH_ARRAY_INDEX)
    return int(raw) if raw not in (None, "") else None


def _loader(ports: Ports, tagger: FacetTagger) -> Callable[[ManifestEntry], object]:
    """Runs in the decoding threads: fetch, check and decode at the locator's small input size
    (the crop is decoded later at the scale its box needs) or, when no locator is involved,
    decode at the model's input size and resize, so the main thread only runs models."""
    stores = {ports.catalog.name: ports.catalog, ports.artifacts.name: ports.artifacts}
    crops = tagger.config.crop is not None
    small = tagger.locator.config.input_size if crops else None

    def load(entry: ManifestEntry) -> object:
        store = stores.get(entry.bucket)
        if store is None:
            raise InvalidImageError(f"bucket {entry.bucket!r} is not this deployment's catalog")
        loaded = load_photo(store, entry.key, ports.settings, small)
        return loaded if crops else prepare_photo(loaded, tagger.config)

    return load


def tag_batch(
    tagger: FacetTagger, loaded: list, pool: ThreadPoolExecutor | None = None
) -> list[Tagged]:
    """Tag loaded photos (`Loaded` photos when the model crops, cropped in `pool`; else
    prepared uint8 tensors)."""
    if tagger.config.crop is not None:
        return tagger.tag(loaded, pool)
    probs = tagger.probs(torch.stack(loaded))
    return [
        Tagged(facet_predictions(probs, i, tagger.taxonomy), None, None) for i in range(len(loaded))
    ]


def tag_and_embed(
    tagger: FacetTagger,
    loaded: list,
    embedders: dict[str, Embedder],
    pool: ThreadPoolExecutor | None = None,
) -> tuple[list[Tagged], dict[str, np.ndarray]]:
    """`tag_batch`, plus each embedder's vectors of the same crops (one facet forward pass
    gives the facet probabilities and the unsupervised embedding)."""
    if tagger.config.crop is not None:
        prepared, boxes, scores = tagger.prepare(loaded, pool)
    else:
        prepared, boxes, scores = torch.stack(loaded), [None] * len(loaded), [None] * len(loaded)
    probs, features = forward_with_features(tagger, prepared)
    tagged = [
        Tagged(facet_predictions(probs, i, tagger.taxonomy), boxes[i], scores[i])
        for i in range(len(loaded))
    ]
    vectors = {}
    for kind, embedder in embedders.items():
        if kind == UNSUPERVISED:
            vectors[kind] = features
        elif embedder.config == tagger.config or tagger.config.crop is None:
            vectors[kind] = embedder.embed(prepared)
        else:  # another crop config (an older locator, bodice): the same box, its own resize
            pairs = zip(loaded, boxes, strict=True)
            own = torch.stack([prepare_photo(img, embedder.config, box) for img, box in pairs])
            vectors[kind] = embedder.embed(own)
    return tagged, vectors


def store_batch(
    ports: Ports,
    records: list,
    tagged: list[Tagged],
    vectors: dict[str, np.ndarray],
    embedders: dict[str, Embedder],
) -> None:
    """Put the predictions, then upsert each embedding with the image's metadata."""
    ports.predictions.put_many(records)
    if not vectors or ports.vectors is None:
        return
    metadata = []
    for record, one in zip(records, tagged, strict=True):
        label = ports.labels.get(record.image_id)
        facets = {facet: p.label for facet, p in one.facets.items()}
        product = label.product_id if label else record.image_id.split("/", 1)[0]
        split = label.split if label else "unknown"
        metadata.append((product, split, facets))
    ids = [r.image_id for r in records]
    for kind, matrix in vectors.items():
        version = embedders[kind].version or "unregistered"
        meta = [index_metadata(p, s, version, f) for p, s, f in metadata]
        ports.vectors(kind).upsert(ids, matrix, meta)


def forget(ports: Ports, image_ids: list[str]) -> None:
    """Delete images from every similarity index (they can no longer be read)."""
    if ports.vectors is None or not image_ids:
        return
    from shared.keys import EMBEDDING_KINDS

    for kind in EMBEDDING_KINDS:
        ports.vectors(kind).delete(image_ids)


def run_inference(
    ports: Ports,
    entries: Iterable[ManifestEntry],
    tagger: FacetTagger,
    *,
    batch_size: int = 64,
    workers: int = 2,
    embedders: dict[str, Embedder] | None = None,
) -> InferReport:
    """Tag `entries` and store their predictions (and embeddings, given `embedders`);
    unreadable images are skipped (and removed from the similarity indexes)."""
    embedders = embedders or {}
    report = InferReport(tagger.version)
    started = time.perf_counter()
    pending: list[Future] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="put") as writer:
        decoded = decode_ahead(
            entries, _loader(ports, tagger), workers=workers, ahead=2 * batch_size
        )
        for chunk in chunks(decoded, batch_size):
            good = []
            for entry, item in chunk:
                report.images += 1
                if isinstance(item, LOAD_ERRORS):
                    log.warning("skipping %s: %s", entry.image_id, item)
                    report.skipped.append(Skipped(entry.image_id, str(item)))
                else:
                    good.append((entry, item))
            if not good:
                continue
            if embedders:
                tagged, vectors = tag_and_embed(tagger, [item for _, item in good], embedders)
            else:
                tagged, vectors = tag_batch(tagger, [item for _, item in good]), {}
            records = [tagger.record(e.image_id, t) for (e, _), t in zip(good, tagged, strict=True)]
            pending.append(writer.submit(store_batch, ports, records, tagged, vectors, embedders))
            report.tagged += len(records)
            for kind in vectors:
                report.embedded[kind] = report.embedded.get(kind, 0) + len(records)
        if embedders:
            pending.append(writer.submit(forget, ports, [s.image_id for s in report.skipped]))
        for future in pending:
            future.result()  # a store failure fails the job (Batch retries it)
    report.seconds = time.perf_counter() - started
    return report


def infer_catalog(ports: Ports, *, device: str = "auto", batch_size: int = 64) -> InferReport:
    """Tag and embed every usable catalog image here, in this process: what the re-inference
    job does on AWS after a promotion (`dressvision train --what similarity` calls it)."""
    from shared.inference import catalog_entries

    registry = ModelRegistry(ports.artifacts)
    tagger = FacetTagger.from_registry(registry, device=device)
    if tagger is None:
        return InferReport(None)
    embedders = load_embedders(registry, tagger, device=device) if ports.vectors else {}
    return run_inference(
        ports, catalog_entries(ports), tagger, batch_size=batch_size, embedders=embedders
    )


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Tag the images of a manifest", add_help=add_help)
    parser.add_argument(
        "--manifest",
        required=True,
        metavar="KEY",
        help="manifest key in the artifacts store (JSON lines)",
    )
    parser.add_argument("--version", default=None, help="facet model version (default: current)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--no-amp", dest="amp", action="store_false", help="float32 only")
    parser.add_argument(
        "--no-embed",
        dest="embed",
        action="store_false",
        help="tag only: do not embed nor update the similarity indexes",
    )
    return parser


@torch.inference_mode()  # scoped: a process-wide switch would leak into in-process callers
def main(args: argparse.Namespace, ports: Ports | None = None) -> int:
    ports = ports or build_ports(Settings.from_env())
    entries = shard(
        read_manifest(ports.artifacts, args.manifest),
        array_index(),
        ports.settings.infer_shard_size,
    )
    tagger = FacetTagger.from_registry(
        ModelRegistry(ports.artifacts), args.version, device=args.device, amp=args.amp
    )
    if tagger is None:
        log.warning("no facet model is current: nothing to tag in %s", args.manifest)
        print(json.dumps(InferReport(None, images=len(entries)).to_json()))
        return 0
    embedders = (
        load_embedders(ModelRegistry(ports.artifacts), tagger, device=args.device)
        if getattr(args, "embed", True) and ports.vectors is not None
        else {}
    )
    report = run_inference(
        ports,
        entries,
        tagger,
        batch_size=args.batch_size,
        workers=args.workers,
        embedders=embedders,
    )
    print(json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main(get_args_parser().parse_args()))
