"""λ ingest: S3 ObjectCreated notifications (through SQS) -> registered images -> inference.

For each uploaded photo under `catalog/`: validate it (reading only what it needs), register it
idempotently in the LabelStore with its fixed split and its catalog labels (carried in the
object's metadata by `dressvision import`, absent for a plain upload), record an invalid file
with its reason. Then, when a current facet model exists, add the images that need predictions
to the pending inference list (one piece per batch); the flush of the inference window
(`lambdas/flush.py`) submits them as few large array jobs. On a fresh
deployment (no facet model yet), submit the first training once enough labeled images are
registered (`shared.training.maybe_first_training`: one job, however many batches).

SQS delivers at least once: a redelivered message, or a re-upload of the same bytes, finds the
image UNCHANGED (one HEAD request, no download) and changes nothing. Bad input becomes a record
with a reason, never a poison message: an object outside the `catalog/<product_id>/<file>`
layout, a box that is negative, reversed or not finite. An invalid re-upload over a good photo
never destroys it: the previous version is made current again (the catalog bucket is
versioned) and the record, still valid, says what happened. An explicit image id that belongs
to another product is refused and leaves the record as it was. Failures are reported per
message (`batchItemFailures`) so one poison message never redelivers the whole batch; after
`maxReceiveCount` deliveries it lands in the dead-letter queue.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

from pydantic import ValidationError

from lambdas import wiring
from lambdas.observability import bind, count, instrument
from shared import env
from shared.catalog import CatalogEntry
from shared.errors import CatalogFormatError, DressvisionError, InvalidImageError, NotFoundError
from shared.ids import assign_split, image_id_for, parse_catalog_key, sanitize_part
from shared.images import sniff_format, validate_image
from shared.inference import current_model_version, queue_inference
from shared.keys import EMBEDDING_KINDS, is_catalog_image_key
from shared.messages import ManifestEntry, S3Notification, SqsEvent
from shared.ports import Ports, RegisterOutcome
from shared.records import ImageStatus, LabelRecord, LabelSource, utcnow
from shared.training import maybe_first_training

logger = logging.getLogger(__name__)

HEADER_BYTES = 64  # enough for every magic number we accept


@dataclass(frozen=True)
class IngestResult:
    image_id: str
    key: str
    outcome: RegisterOutcome
    status: ImageStatus
    reason: str | None = None


def _inspect(ports: Ports, key: str, size: int, entry: CatalogEntry | None) -> tuple[int, int]:
    """Validate the object, cheapest checks first; returns (width, height).
    Raises InvalidImageError with a reason for people."""
    settings = ports.settings
    if size == 0:
        raise InvalidImageError("empty file")
    if size > settings.max_image_bytes:
        raise InvalidImageError(f"file too large ({size} bytes > limit {settings.max_image_bytes})")
    if sniff_format(ports.catalog.read_range(key, 0, HEADER_BYTES)) is None:
        raise InvalidImageError("not an image (unrecognised header)")
    body = ports.catalog.get(key).body
    info = validate_image(
        body, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
    )
    if entry is not None and entry.bbox is not None:
        _, _, x1, y1 = entry.bbox
        if x1 > info.width or y1 > info.height:
            raise InvalidImageError(
                f"dress box {list(entry.bbox)} lies outside the {info.width}x{info.height} image"
                " (boxes are in the upright image, EXIF orientation applied)"
            )
    return info.width, info.height


def _ids_of_key(key: str) -> tuple[str, str, str | None]:
    """(product_id, image_id, problem) of a catalog key. A key outside the layout still gets
    ids (from its file name) so that it is recorded as invalid, with the problem as reason."""
    try:
        product_id, image_id = parse_catalog_key(key)
    except ValueError as exc:
        stem = PurePosixPath(key).stem
        product_id = sanitize_part(stem)
        return product_id, image_id_for(product_id, stem), f"{exc}: not imported"
    return product_id, image_id, None


def ingest_object(ports: Ports, key: str) -> IngestResult | None:
    """Register one uploaded object. Returns None for keys that are not catalog images."""
    if not is_catalog_image_key(key):
        logger.info("ignoring %s: not a catalog image key", key)
        return None
    product_id, image_id, layout_problem = _ids_of_key(key)
    bind(image_id=image_id)
    try:
        head = ports.catalog.head(key)
    except NotFoundError:
        # Deleted (or overwritten and deleted) since the event: nothing to register.
        logger.warning("object %s is gone; skipping its notification", key)
        return None

    entry: CatalogEntry | None = None
    status, reason, width, height = ImageStatus.OK, None, None, None
    try:
        entry = CatalogEntry.from_metadata(head.metadata)
        if entry is not None:
            entry.validate_labels(ports.taxonomy)
    except (CatalogFormatError, DressvisionError) as exc:
        status, reason, entry = ImageStatus.INVALID, str(exc), None
    if entry is not None:
        product_id, image_id = entry.product_id, entry.image_id
    elif layout_problem:
        status, reason = ImageStatus.INVALID, layout_problem

    existing = ports.labels.get(image_id)
    if existing is not None and existing.product_id != product_id:
        # One id, two products: merging would move the photo to another product (and split)
        # and orphan the first photo. The first product keeps its image.
        reason = (
            f"image id {image_id!r} belongs to product {existing.product_id!r}, not "
            f"{product_id!r}; upload this photo with its own image_id"
        )
        logger.warning("refused %s: %s", key, reason)
        return IngestResult(image_id, key, RegisterOutcome.UNCHANGED, ImageStatus.INVALID, reason)
    unchanged_upload = (
        existing is not None
        and existing.etag == head.etag
        and status == ImageStatus.OK
        and (entry is None or not _labels_differ(existing, entry))
    )
    if unchanged_upload:
        return IngestResult(
            image_id, key, RegisterOutcome.UNCHANGED, existing.status, existing.reason
        )

    if status == ImageStatus.OK:
        try:
            width, height = _inspect(ports, key, head.size, entry)
        except InvalidImageError as exc:
            status, reason = ImageStatus.INVALID, exc.reason

    if status == ImageStatus.INVALID and existing is not None and existing.status == ImageStatus.OK:
        return _keep_good_photo(ports, key, existing, reason or "invalid")

    split = (entry.split if entry and entry.split else None) or assign_split(
        product_id, ports.settings.test_fraction, ports.settings.split_salt
    )
    facets = dict(entry.facets) if entry else {}
    record = LabelRecord(
        image_id=image_id,
        product_id=product_id,
        object_key=key,
        split=split,
        facets=facets,
        sources={f: LabelSource.CATALOG for f, v in facets.items() if v is not None},
        bbox=entry.bbox if entry and status == ImageStatus.OK else None,
        width=width,
        height=height,
        status=status,
        reason=reason,
        etag=head.etag,
    )
    outcome, stored = ports.labels.register(record)
    if stored.status == ImageStatus.INVALID and outcome == RegisterOutcome.UPDATED:
        forget_embeddings(ports, image_id)  # a re-upload broke it: no longer similar to anything
    return IngestResult(image_id, key, outcome, stored.status, stored.reason)


def _keep_good_photo(ports: Ports, key: str, existing: LabelRecord, reason: str) -> IngestResult:
    """An invalid upload over a valid image: put the last good version back (the catalog
    bucket keeps versions) and note on the record, which stays valid, what happened."""
    when = f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"
    if existing.object_key != key:  # another file for the same image: nothing overwritten
        note = f"upload of {key} at {when} refused ({reason}); kept {existing.object_key}"
    elif ports.catalog.restore(key, existing.etag):
        note = f"re-upload of {when} refused ({reason}); the previous photo was restored"
    else:
        note = (
            f"re-upload of {when} refused ({reason}); the previous photo could not be restored "
            f"(no earlier version of {key} is kept): upload it again"
        )
    logger.warning("%s: %s", key, note)
    outcome, _ = ports.labels.register(existing.model_copy(update={"reason": note}))
    return IngestResult(existing.image_id, key, outcome, ImageStatus.INVALID, note)


def forget_embeddings(ports: Ports, image_id: str) -> None:
    """Delete an image from every similarity index (where the deployment has them)."""
    if ports.vectors is None:
        return
    for kind in EMBEDDING_KINDS:
        ports.vectors(kind).delete([image_id])


def _labels_differ(existing: LabelRecord, entry: CatalogEntry) -> bool:
    """Whether a re-import would change a catalog-sourced label (the merge rule decides how)."""
    return any(
        label is not None
        and existing.sources.get(facet, LabelSource.CATALOG) == LabelSource.CATALOG
        and existing.facets.get(facet) != label
        for facet, label in entry.facets.items()
    ) or (entry.bbox is not None and entry.bbox != existing.bbox)


def needs_inference(ports: Ports, result: IngestResult, model_version: str) -> bool:
    if result.status != ImageStatus.OK:
        return False
    if result.outcome != RegisterOutcome.UNCHANGED:
        return True
    # Redelivery after a failed submission: converge by predicting what is still missing.
    return ports.predictions.get(result.image_id, model_version) is None


def handle_sqs_batch(event: dict, ports: Ports, counts: Counter | None = None) -> dict:
    """The handler's logic on plain values: an SQS event in, the partial-batch response out.
    `counts` (optional) gets what happened: ingested, invalid, unchanged, inference_queued
    (images), jobs_submitted (the first training)."""
    counts = Counter() if counts is None else counts
    failures: list[str] = []
    pending: dict[str, list[IngestResult]] = {}  # message id -> results needing inference
    model_version = current_model_version(ports)
    messages = SqsEvent.model_validate(event).records
    for message in messages:
        bind(message_id=message.message_id, image_id=None)
        try:
            notification = S3Notification.model_validate_json(message.body)
            if notification.is_test_event:
                continue
            for record in notification.records:
                if not record.event_name.startswith("ObjectCreated"):
                    continue
                result = ingest_object(ports, record.s3.object.decoded_key)
                if result is not None:
                    counts[_outcome_name(result)] += 1
                if result and model_version and needs_inference(ports, result, model_version):
                    pending.setdefault(message.message_id, []).append(result)
        except (ValidationError, ValueError, DressvisionError) as exc:
            # A malformed message will never succeed: let it reach the DLQ, keep the rest.
            logger.error("message %s failed: %s", message.message_id, exc)
            failures.append(message.message_id)
        except Exception:
            logger.exception("message %s failed unexpectedly", message.message_id)
            failures.append(message.message_id)

    if pending:
        entries = [
            ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.key)
            for results in pending.values()
            for r in results
        ]
        try:
            queue_inference(ports, entries)  # the next inference window submits them
            counts["inference_queued"] += len(entries)
        except Exception:
            # Registered but not yet queued: redeliver these messages so they are queued again.
            logger.exception("could not queue the images for inference; will retry")
            failures.extend(pending)
    if model_version is None:
        try:
            if maybe_first_training(ports) is not None:
                counts["jobs_submitted"] += 1
        except Exception:
            # Registered, but the first training is not submitted: redeliver the batch (it
            # changes nothing else) so that it tries again.
            logger.exception("could not submit the first training; will retry")
            failures.extend(m.message_id for m in messages)
    return {"batchItemFailures": [{"itemIdentifier": m} for m in dict.fromkeys(failures)]}


def _outcome_name(result: IngestResult) -> str:
    if result.status != ImageStatus.OK:
        return "invalid"
    return "unchanged" if result.outcome == RegisterOutcome.UNCHANGED else "ingested"


@instrument
def handler(event: dict, context: object) -> dict:
    counts: Counter = Counter()
    response = handle_sqs_batch(event, wiring.ports(), counts)
    count(env.METRIC_IMAGES_INGESTED, counts["ingested"])
    count(env.METRIC_IMAGES_INVALID, counts["invalid"])
    count(env.METRIC_JOBS_SUBMITTED, counts["jobs_submitted"])  # the first training
    logger.info(
        "ingest batch: %s, %d failed messages",
        dict(counts),
        len(response["batchItemFailures"]),
    )
    return response
