"""Asking for predictions: the current model's version, manifests and the infer job.

Few large jobs: ingest does not submit a job per SQS batch (a 100,000-photo upload would make
~2,000 small GPU jobs, each loading the model). It appends the images needing inference to a
pending list, one small piece per ingest batch (`queue_inference`); every inference window
(`Settings.infer_window_seconds`, a schedule on AWS, the end of an import locally)
`flush_pending` submits everything pending as array jobs of at most
`Settings.infer_window_images` images each (children of `infer_shard_size` images, each loading
the model once), and deletes the pieces only once every submission succeeded: a failed flush
loses nothing and is retried by the next one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import UTC, datetime, timedelta

from shared.errors import NotFoundError
from shared.keys import (
    PENDING_INFERENCE_PREFIX,
    manifest_job_key,
    manifest_key,
    pending_inference_key,
)
from shared.messages import JobRequest, ManifestEntry
from shared.ports import Ports
from shared.records import ImageStatus
from shared.registry import ModelKind, ModelRegistry

logger = logging.getLogger(__name__)

# A manifest submitted less than this long ago is not submitted again: SQS redelivers within
# minutes (visibility timeout x receive count). Later, the same images under the same model
# are a deliberate retry (the first job may have failed) and get a new job.
RESUBMIT_AFTER = timedelta(hours=6)


def current_model_version(ports: Ports, kind: str = ModelKind.FACETS) -> str | None:
    """The promoted model's version, or None before any model was promoted."""
    return ModelRegistry(ports.artifacts).current(kind)


# The models whose versions an inference manifest is for (what the infer job runs).
MANIFEST_MODEL_KINDS = (ModelKind.FACETS, ModelKind.SIMILARITY)


def submit_inference(ports: Ports, entries: list[ManifestEntry]) -> str:
    """Write a manifest and submit the infer job (an array job over shards) with the
    deployment's batch size (images per forward pass). Returns the job id.

    The manifest id is a hash of the current models' versions (facets and the similarity
    embedder: a newly promoted embedder re-embeds the same images) and the manifest's lines (no
    clock): a redelivered batch rewrites the same manifest, and finds the job it was submitted
    as (`manifest_job_key`), so it submits nothing twice within `RESUBMIT_AFTER`.
    """
    lines = _manifest_lines(entries)
    versions = [current_model_version(ports, kind) or "" for kind in MANIFEST_MODEL_KINDS]
    digest = hashlib.sha256("\n".join([*versions, lines]).encode()).hexdigest()[:20]
    manifest_id = f"m-{digest}"
    key = manifest_key(manifest_id)
    earlier = _earlier_submission(ports, manifest_id)
    if earlier is not None:
        logger.info("manifest %s was submitted as %s already: not submitting again", key, earlier)
        return earlier
    ports.artifacts.put(key, lines.encode(), content_type="application/x-ndjson")
    shards = math.ceil(len(entries) / ports.settings.infer_shard_size)
    request = JobRequest(
        name="infer",
        args=["--manifest", key, "--batch-size", str(ports.settings.infer_batch_size)],
        array_size=shards if shards > 1 else None,
        job_name=f"infer-{manifest_id}",
    )
    job_id = ports.jobs.submit(request)
    submitted = {"job_id": job_id, "at": datetime.now(UTC).isoformat(), "images": len(entries)}
    ports.artifacts.put(
        manifest_job_key(manifest_id),
        json.dumps(submitted).encode(),
        content_type="application/json",
    )
    logger.info("submitted infer job %s for %d images (%s)", job_id, len(entries), key)
    return job_id


def _manifest_lines(entries: list[ManifestEntry]) -> str:
    return "\n".join(e.model_dump_json() for e in entries) + "\n"


def queue_inference(ports: Ports, entries: list[ManifestEntry]) -> str:
    """Add `entries` to the pending list (one piece); returns its key. The key is a hash of
    the lines, so a redelivered ingest batch rewrites the same piece."""
    lines = _manifest_lines(entries)
    key = pending_inference_key(hashlib.sha256(lines.encode()).hexdigest()[:20])
    ports.artifacts.put(key, lines.encode(), content_type="application/x-ndjson")
    return key


def flush_pending(ports: Ports) -> list[str]:
    """Submit every pending image as array jobs of at most `infer_window_images` images (one
    job per window when fewer are pending), then delete the pieces read. Returns the job ids.

    An image pending twice (two uploads of the same photo) is tagged once. A failed submission
    raises before anything is deleted: the next flush submits again (a manifest submitted
    already is found by `submit_inference` and not submitted twice).
    """
    keys = sorted(ports.artifacts.list(PENDING_INFERENCE_PREFIX))
    if not keys:
        return []
    entries: dict[str, ManifestEntry] = {}
    for key in keys:
        try:
            body = ports.artifacts.get(key).body
        except NotFoundError:  # deleted by a concurrent flush
            continue
        for line in body.decode().splitlines():
            if line.strip():
                entry = ManifestEntry.model_validate_json(line)
                entries[entry.image_id] = entry
    if current_model_version(ports) is None:
        logger.info("%d images pending and no facet model yet: keeping them", len(entries))
        return []
    ordered = [entries[i] for i in sorted(entries)]
    window = ports.settings.infer_window_images
    jobs = [
        submit_inference(ports, ordered[start : start + window])
        for start in range(0, len(ordered), window)
    ]
    for key in keys:
        ports.artifacts.delete(key)
    logger.info(
        "flushed %d pending images (%d pieces) as %d jobs", len(ordered), len(keys), len(jobs)
    )
    return jobs


def _earlier_submission(ports: Ports, manifest_id: str) -> str | None:
    """The job id this manifest was submitted as less than `RESUBMIT_AFTER` ago, or None."""
    try:
        submitted = json.loads(ports.artifacts.get(manifest_job_key(manifest_id)).body)
        at = datetime.fromisoformat(submitted["at"])
        job_id = str(submitted["job_id"])
    except NotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable marker: submitting again is the safe side
    return job_id if datetime.now(UTC) - at < RESUBMIT_AFTER else None


def catalog_entries(ports: Ports) -> list[ManifestEntry]:
    """Every usable image of the catalog, for a full re-inference."""
    return [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key)
        for r in sorted(ports.labels.scan(), key=lambda r: r.image_id)
        if r.status == ImageStatus.OK
    ]
