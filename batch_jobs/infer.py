"""Tag catalog photos: `python -m batch_jobs.infer --manifest KEY`.

The manifest (JSON lines of `shared.messages.ManifestEntry`, in the artifacts store) lists the
images; as a child of an array job (`AWS_BATCH_JOB_ARRAY_INDEX` = i) this process takes lines
[i * S, (i + 1) * S) with S = `settings.infer_shard_size`, otherwise every line. For each image:
decode (in background threads, overlapped with the model), locate and crop when the model was
trained on crops, run the facet model in batches (channels_last, bf16 where supported) and put
a PredictionRecord under the model version. An unreadable image is skipped and reported (log and
the JSON summary on stdout); the job still succeeds. Writing predictions also runs in the
background, so the model never waits for the store.
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

import torch

from batch_jobs.facets.data import LOAD_ERRORS, Skipped, chunks, decode_ahead, read_image
from batch_jobs.facets.predictor import FacetTagger, Tagged, facet_predictions
from batch_jobs.facets.preprocess import prepare_image
from shared.backends import build_ports
from shared.env import BATCH_ARRAY_INDEX, Settings
from shared.errors import InvalidImageError, NotFoundError
from shared.messages import ManifestEntry
from shared.ports import ObjectStore, Ports
from shared.registry import ModelRegistry

log = logging.getLogger(__name__)


@dataclass
class InferReport:
    model_version: str | None
    images: int = 0
    tagged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "model_version": self.model_version,
            "images": self.images,
            "tagged": self.tagged,
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
    """Runs in the decoding threads: fetch, decode and, when no locator is involved, also
    resize, so the main thread only runs models."""
    stores = {ports.catalog.name: ports.catalog, ports.artifacts.name: ports.artifacts}

    def load(entry: ManifestEntry) -> object:
        store = stores.get(entry.bucket)
        if store is None:
            raise InvalidImageError(f"bucket {entry.bucket!r} is not this deployment's catalog")
        img = read_image(store, entry.key, ports.settings)
        return img if tagger.config.crop is not None else prepare_image(img, tagger.config)

    return load


def tag_batch(tagger: FacetTagger, loaded: list) -> list[Tagged]:
    """Tag decoded photos (PIL images when the model crops, else prepared uint8 tensors)."""
    if tagger.config.crop is not None:
        return tagger.tag(loaded)
    probs = tagger.probs(torch.stack(loaded))
    return [
        Tagged(facet_predictions(probs, i, tagger.taxonomy), None, None) for i in range(len(loaded))
    ]


def run_inference(
    ports: Ports,
    entries: Iterable[ManifestEntry],
    tagger: FacetTagger,
    *,
    batch_size: int = 64,
    workers: int = 2,
) -> InferReport:
    """Tag `entries` and store their predictions; unreadable images are skipped."""
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
            tagged = tag_batch(tagger, [item for _, item in good])
            records = [tagger.record(e.image_id, t) for (e, _), t in zip(good, tagged, strict=True)]
            pending.append(writer.submit(ports.predictions.put_many, records))
            report.tagged += len(records)
        for future in pending:
            future.result()  # a store failure fails the job (Batch retries it)
    report.seconds = time.perf_counter() - started
    return report


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
    report = run_inference(ports, entries, tagger, batch_size=args.batch_size, workers=args.workers)
    print(json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main(get_args_parser().parse_args()))
