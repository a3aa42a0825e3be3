"""Asking for predictions: the current model's version, manifests and the infer job."""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import UTC, datetime

from shared.keys import manifest_key
from shared.messages import JobRequest, ManifestEntry
from shared.ports import Ports
from shared.records import ImageStatus
from shared.registry import ModelKind, ModelRegistry

logger = logging.getLogger(__name__)


def current_model_version(ports: Ports, kind: str = ModelKind.FACETS) -> str | None:
    """The promoted model's version, or None before any model was promoted."""
    return ModelRegistry(ports.artifacts).current(kind)


def submit_inference(ports: Ports, entries: list[ManifestEntry]) -> str:
    """Write a manifest and submit the infer job (an array job over shards) with the
    deployment's batch size (images per forward pass). Returns the job id.

    The manifest id ends with a hash of its lines, so a redelivered batch rewrites the same
    manifest rather than a new one.
    """
    lines = "\n".join(e.model_dump_json() for e in entries) + "\n"
    digest = hashlib.sha256(lines.encode()).hexdigest()[:12]
    manifest_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{digest}"
    key = manifest_key(manifest_id)
    ports.artifacts.put(key, lines.encode(), content_type="application/x-ndjson")
    shards = math.ceil(len(entries) / ports.settings.infer_shard_size)
    request = JobRequest(
        name="infer",
        args=["--manifest", key, "--batch-size", str(ports.settings.infer_batch_size)],
        array_size=shards if shards > 1 else None,
        job_name=f"infer-{manifest_id}",
    )
    job_id = ports.jobs.submit(request)
    logger.info("submitted infer job %s for %d images (%s)", job_id, len(entries), key)
    return job_id


def catalog_entries(ports: Ports) -> list[ManifestEntry]:
    """Every usable image of the catalog, for a full re-inference."""
    return [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key)
        for r in sorted(ports.labels.scan(), key=lambda r: r.image_id)
        if r.status == ImageStatus.OK
    ]
