"""Tag catalog photos: `python -m batch_jobs.infer --manifest KEY`.

The manifest (JSON lines of `shared.messages.ManifestEntry`, in the artifacts store) lists the
images; as a child of an array job (`AWS_BATCH_JOB_ARRAY_INDEX` = i) this process takes lines
[i * S, (i + 1) * S) with S = `settings.infer_shard_size`, otherwise every line. For each image:
fetch, check and decode at reduced scale (`shared.images.Photo`) in background threads; when the
model was trained on crops, locate on the small decode, then decode the crop at the scale its
box needs, in crop threads while the model runs the batch before (at most two batches of crops
in memory); run the facet model in batches (channels_last, bf16 where supported) and put a
PredictionRecord under the model version. An unreadable image is skipped and reported (log and
the JSON summary on stdout); the job still succeeds. Writing predictions also runs in the
background, so the model never waits for the store. The model's OpenMP threads sleep
instead of spinning between operators (OMP_WAIT_POLICY=PASSIVE in the job's own process, unless
the environment says otherwise): on a CPU, the decoding threads get every cycle the model leaves.

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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

# Before torch loads its OpenMP runtime, which reads this once. Spinning OpenMP threads keep
# the cores between the model's operators, away from the decoding threads that feed it: at
# 2000 x 3000 on 2 cores the job measured 98.7 images/s with PASSIVE, 91.6 without (256 x 320
# photos: 198 and 186). Only the job's own process: a process that imports this module keeps
# its environment, and the trainings it may start keep theirs.
if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from batch_jobs.facets import device_decode
from batch_jobs.facets.data import (
    LOAD_ERRORS,
    Loaded,
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


def _loader(
    ports: Ports, tagger: FacetTagger, on_device: bool = False
) -> Callable[[ManifestEntry], object]:
    """Runs in the decoding threads: fetch, check and decode at the locator's small input size
    (the crop is decoded later at the scale its box needs) or, when no locator is involved,
    decode at the model's input size and resize, so the main thread only runs models.
    `on_device`: fetch and check only; the batch decodes on the device."""
    stores = {ports.catalog.name: ports.catalog, ports.artifacts.name: ports.artifacts}
    crops = tagger.config.crop is not None
    small = tagger.locator.config.input_size if crops and not on_device else None

    def load(entry: ManifestEntry) -> object:
        store = stores.get(entry.bucket)
        if store is None:
            raise InvalidImageError(f"bucket {entry.bucket!r} is not this deployment's catalog")
        loaded = load_photo(store, entry.key, ports.settings, small)
        return loaded if crops or on_device else prepare_photo(loaded, tagger.config)

    return load


@dataclass
class StagedBatch:
    """One batch on its way to the model: the readable entries with their loaded photos, boxes
    (full-size pixels) and scores, their crops being made in the crop threads, and the entries
    that could not be read."""

    entries: list[ManifestEntry]
    loaded: list
    boxes: list
    scores: list
    crops: list[Future]
    unreadable: list[tuple[ManifestEntry, Exception]]


def stage_batch(
    tagger: FacetTagger,
    chunk: list[tuple[ManifestEntry, object]],
    pool: ThreadPoolExecutor,
    decode_device: torch.device | str | None = None,
) -> StagedBatch:
    """Locate a batch (on the small decodes) and submit its crops to `pool`: the crops decode
    while the model runs the batches before it. With `decode_device`, a batch of JPEGs decodes,
    is located and cropped on that device instead (a batch it cannot decode, the Pillow way)."""
    good = [(e, item) for e, item in chunk if not isinstance(item, LOAD_ERRORS)]
    unreadable = [(e, item) for e, item in chunk if isinstance(item, LOAD_ERRORS)]
    loaded = [item for _, item in good]
    entries = [e for e, _ in good]
    if decode_device is not None:
        staged = _stage_on_device(tagger, entries, loaded, decode_device)
        if staged is not None:
            return replace(staged, unreadable=unreadable)
        # What the Pillow loader would have made of them, with the same error handling.
        ready = list(pool.map(lambda item: _pillow_loaded(tagger, item), loaded))
        unreadable += [(e, r) for e, r in zip(entries, ready, strict=True) if _failed(r)]
        kept = [(e, r) for e, r in zip(entries, ready, strict=True) if not _failed(r)]
        entries, loaded = [e for e, _ in kept], [r for _, r in kept]
    if tagger.config.crop is None:  # the loading threads made the model inputs already
        boxes, scores = [None] * len(loaded), [None] * len(loaded)
        crops = [_done(item) for item in loaded]
    else:
        boxes, scores = tagger.locate(loaded)
        pairs = zip(loaded, boxes, strict=True)
        crops = [pool.submit(_safe_crop, item, tagger, box) for item, box in pairs]
    return StagedBatch(entries, loaded, boxes, scores, crops, unreadable)


def _stage_on_device(
    tagger: FacetTagger, entries: list, loaded: list, device: torch.device | str
) -> StagedBatch | None:
    """The batch decoded, located and cropped on `device`; None when it cannot decode there
    (not all JPEG, or a stream the decoder refuses: the Pillow path then skips the bad one)."""
    photos = [item.photo for item in loaded]
    if not device_decode.decodes_on_device(photos):
        return None
    try:
        images = device_decode.decode_batch(photos, device)
    except RuntimeError as exc:
        log.info("device decode refused the batch (%s): decoding it with Pillow", exc)
        return None
    if tagger.config.crop is not None:
        boxes, scores = device_decode.locate_decoded(tagger.locator, images)
    else:
        boxes, scores = [None] * len(images), [None] * len(images)
    crops = [
        _done(device_decode.crop_input(img, tagger.config, box))
        for img, box in zip(images, boxes, strict=True)
    ]
    return StagedBatch(entries, loaded, boxes, scores, crops, [])


def _pillow_loaded(tagger: FacetTagger, item: Loaded) -> object:
    """A photo the loader left undecoded for the device, decoded as the Pillow loader does."""
    try:
        if tagger.config.crop is None:
            return prepare_photo(item, tagger.config)
        size = tagger.locator.config.input_size
        return Loaded(item.photo, item.photo.decode(size, size))
    except LOAD_ERRORS as exc:
        return exc


def _failed(item: object) -> bool:
    return isinstance(item, LOAD_ERRORS)


def _safe_crop(item: object, tagger: FacetTagger, box) -> object:
    try:
        return prepare_photo(item, tagger.config, box)
    except LOAD_ERRORS as exc:  # the small decode passed, the crop's did not
        return exc


def _done(value: object) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def staged_batches(
    tagger: FacetTagger,
    batches: Iterable[list[tuple[ManifestEntry, object]]],
    pool: ThreadPoolExecutor,
    ahead: int = 1,
    decode_device: torch.device | str | None = None,
) -> Iterator[StagedBatch]:
    """`stage_batch` of each batch, staying `ahead` batches in front of the consumer: at most
    `ahead + 1` batches of crops exist at once, so memory stays bounded."""
    window: deque[StagedBatch] = deque()
    for chunk in batches:
        window.append(stage_batch(tagger, chunk, pool, decode_device))
        if len(window) > ahead:
            yield window.popleft()
    yield from window


def tag_and_embed(
    tagger: FacetTagger,
    prepared: torch.Tensor,
    boxes: list,
    scores: list,
    loaded: list,
    embedders: dict[str, Embedder],
) -> tuple[list[Tagged], dict[str, np.ndarray]]:
    """Facet predictions of prepared crops and each embedder's vectors of the same crops (one
    facet forward pass gives the facet probabilities and the unsupervised embedding)."""
    if not embedders:
        probs, vectors = tagger.probs(prepared), {}
    else:
        probs, features = forward_with_features(tagger, prepared)
        vectors = {}
    tagged = [
        Tagged(facet_predictions(probs, i, tagger.taxonomy), boxes[i], scores[i])
        for i in range(len(prepared))
    ]
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
    decode_device: torch.device | str | None = "auto",
) -> InferReport:
    """Tag `entries` and store their predictions (and embeddings, given `embedders`);
    unreadable images are skipped (and removed from the similarity indexes).
    `decode_device`: where JPEG batches decode; "auto": on the model's GPU when it runs on
    one, else with Pillow in threads (None)."""
    embedders = embedders or {}
    if decode_device == "auto":
        decode_device = tagger.device if tagger.device.type == "cuda" else None
    report = InferReport(tagger.version)
    started = time.perf_counter()
    pending: list[Future] = []
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="put") as writer,
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="crop") as croppers,
    ):
        decoded = decode_ahead(
            entries,
            _loader(ports, tagger, on_device=decode_device is not None),
            workers=workers,
            ahead=2 * batch_size,
        )
        batches = chunks(decoded, batch_size)
        for batch in staged_batches(tagger, batches, croppers, decode_device=decode_device):
            report.images += len(batch.entries) + len(batch.unreadable)
            crops = [future.result() for future in batch.crops]
            pairs = zip(batch.entries, crops, strict=True)
            failed = [(e, c) for e, c in pairs if isinstance(c, Exception)]
            for entry, error in batch.unreadable + failed:
                log.warning("skipping %s: %s", entry.image_id, error)
                report.skipped.append(Skipped(entry.image_id, str(error)))
            keep = [i for i, crop in enumerate(crops) if not isinstance(crop, Exception)]
            if not keep:
                continue
            tagged, vectors = tag_and_embed(
                tagger,
                torch.stack([crops[i] for i in keep]),
                [batch.boxes[i] for i in keep],
                [batch.scores[i] for i in keep],
                [batch.loaded[i] for i in keep],
                embedders,
            )
            good = [batch.entries[i] for i in keep]
            records = [tagger.record(e.image_id, t) for e, t in zip(good, tagged, strict=True)]
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
