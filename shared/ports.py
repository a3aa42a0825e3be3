"""The ports: what handlers and jobs need from the world, with no word about which backend.

Adapters: `shared/stores/` (DynamoDB, SQLite), `shared/objects/` (S3, local folder),
`shared/jobs/` (AWS Batch, local subprocess). One contract test suite runs against each pair
(`tests/shared/test_*_contract.py`). Only composition roots choose adapters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from shared.messages import JobRequest
from shared.records import LabelEvent, LabelRecord, LabelSource, PredictionRecord, utcnow


class RegisterOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


# Fields an upload may refresh on an existing record. Split, created_at and labels set by people
# are never touched by a re-upload.
_UPLOAD_FIELDS = ("object_key", "bbox", "width", "height", "status", "reason", "etag")


def merge_registration(
    existing: LabelRecord | None, incoming: LabelRecord
) -> tuple[RegisterOutcome, LabelRecord, list[LabelEvent]]:
    """Decide what registering `incoming` (an upload) does to `existing`.

    Pure function shared by every LabelStore adapter, so they agree by construction:
    - new image: stored as given, version 1, a label event per known catalog facet;
    - known image: split and created_at are kept; facets whose current label came from staff or
      the crowd are kept (a person's correction outranks a stale catalog file); catalog facets
      and the upload fields take the new values; nothing differs -> UNCHANGED, nothing written.
    The caller writes the result conditionally on `existing.version`.
    """
    now = utcnow()
    if existing is None:
        record = incoming.model_copy(update={"version": 1, "created_at": now, "updated_at": now})
        events = [
            LabelEvent(
                image_id=record.image_id,
                facet=facet,
                old=None,
                new=label,
                source=record.sources.get(facet, LabelSource.CATALOG),
                evidence={"reason": "registered"},
                version=1,
                at=now,
            )
            for facet, label in record.facets.items()
            if label is not None
        ]
        return RegisterOutcome.CREATED, record, events

    facets = dict(existing.facets)
    sources = dict(existing.sources)
    events: list[LabelEvent] = []
    new_version = existing.version + 1
    for facet, label in incoming.facets.items():
        if label is None:  # an empty cell means "unknown", never "erase"
            continue
        current_source = existing.sources.get(facet, LabelSource.CATALOG)
        if current_source != LabelSource.CATALOG or facets.get(facet) == label:
            continue
        events.append(
            LabelEvent(
                image_id=existing.image_id,
                facet=facet,
                old=facets.get(facet),
                new=label,
                source=LabelSource.CATALOG,
                evidence={"reason": "catalog re-import"},
                version=new_version,
                at=now,
            )
        )
        facets[facet] = label
        sources[facet] = LabelSource.CATALOG
    changes = {
        name: getattr(incoming, name)
        for name in _UPLOAD_FIELDS
        if getattr(incoming, name) != getattr(existing, name)
        and not (name == "bbox" and incoming.bbox is None)
    }
    if not events and not changes:
        return RegisterOutcome.UNCHANGED, existing, []
    merged = existing.model_copy(
        update={
            **changes,
            "facets": facets,
            "sources": sources,
            "version": new_version,
            "updated_at": now,
        }
    )
    return RegisterOutcome.UPDATED, merged, events


def apply_label_update(
    existing: LabelRecord,
    facet: str,
    label: str | None,
    *,
    source: LabelSource,
    evidence: Mapping | None = None,
) -> tuple[LabelRecord, LabelEvent]:
    """The record after `facet` is set to `label`, and the label event that records it.

    Pure function shared by every LabelStore adapter's `update_label`, so they agree by
    construction. The split never changes here. The caller writes both atomically,
    conditionally on `existing.version`.
    """
    now = utcnow()
    version = existing.version + 1
    record = existing.model_copy(
        update={
            "facets": {**existing.facets, facet: label},
            "sources": {**existing.sources, facet: source},
            "version": version,
            "updated_at": now,
        }
    )
    event = LabelEvent(
        image_id=existing.image_id,
        facet=facet,
        old=existing.facets.get(facet),
        new=label,
        source=source,
        evidence=dict(evidence or {}),
        version=version,
        at=now,
    )
    return record, event


class LabelStore(ABC):
    """Current labels of every image, with optimistic locking and a history of label events."""

    @abstractmethod
    def get(self, image_id: str) -> LabelRecord | None: ...

    @abstractmethod
    def register(self, record: LabelRecord) -> tuple[RegisterOutcome, LabelRecord]:
        """Idempotently register an uploaded image (see `merge_registration`). Safe under
        concurrent calls and redelivery: retries internally on a version conflict."""

    @abstractmethod
    def update_label(
        self,
        image_id: str,
        facet: str,
        label: str | None,
        *,
        source: LabelSource,
        expected_version: int,
        evidence: Mapping | None = None,
    ) -> LabelRecord:
        """Set one facet's label if the record is still at `expected_version`, and record a
        label event, atomically. Raises `ConflictError` if it moved on (re-read, decide again),
        `NotFoundError` if the image is unknown. The split never changes here."""

    @abstractmethod
    def events(self, image_id: str) -> list[LabelEvent]:
        """Label events of one image, oldest first."""

    @abstractmethod
    def scan(self) -> Iterator[LabelRecord]:
        """Every record (any order)."""


class PredictionStore(ABC):
    """Predictions keyed by (image id, model version)."""

    @abstractmethod
    def put(self, record: PredictionRecord) -> None:
        """Store (or idempotently replace) the prediction of one model version for one image."""

    def put_many(self, records: Sequence[PredictionRecord]) -> None:
        """`put` each record; backends override it with one transaction or batched requests
        (a batch job writes thousands)."""
        for record in records:
            self.put(record)

    @abstractmethod
    def get(self, image_id: str, model_version: str) -> PredictionRecord | None: ...

    @abstractmethod
    def for_model(self, model_version: str) -> Iterator[PredictionRecord]:
        """Every prediction of one model version."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(frozen=True)
class StoredObject:
    info: ObjectInfo
    body: bytes


class ObjectStore(ABC):
    """One bucket (S3) or one folder (local). Keys are '/'-separated, relative."""

    name: str

    @abstractmethod
    def put(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo: ...

    @abstractmethod
    def get(self, key: str) -> StoredObject:
        """The whole object; `NotFoundError` if absent."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size, etag and metadata without the body; `NotFoundError` if absent."""

    @abstractmethod
    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) (fewer at the end of the object)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix`, sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; absent keys are fine."""

    @abstractmethod
    def url(self, key: str, expires_s: int = 3600) -> str:
        """A URL a browser (or a worker's browser) can fetch the object from."""

    def exists(self, key: str) -> bool:
        from shared.errors import NotFoundError

        try:
            self.head(key)
        except NotFoundError:
            return False
        return True


class JobRunner(ABC):
    """Runs `python -m batch_jobs.<name>` somewhere with the deployment's environment."""

    @abstractmethod
    def submit(self, request: JobRequest) -> str:
        """Submit a job (an array job when `request.array_size` is set); return its id.
        Raises `JobSubmissionError` when it cannot."""
