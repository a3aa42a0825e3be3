"""The ports: what handlers and jobs need from the world, with no word about which backend.

Every port is here, with `Ports`, the bundle a composition root builds once per process.
Adapters are grouped by deployment: `shared/aws/` (DynamoDB, S3, AWS Batch, SQS) and
`shared/embedded/` (SQLite, a local folder, subprocess jobs, in-process queues); the workforces
are in `shared/workforce/`. One contract test suite runs against each pair
(`tests/shared/test_*_contract.py`). Only composition roots (`shared.backends`,
`lambdas.wiring`, `local/`) choose adapters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from shared.errors import DressvisionError
from shared.messages import JobRequest
from shared.records import LabelEvent, LabelRecord, LabelSource, PredictionRecord, utcnow
from shared.tasks import RelabelTask, TaskStatus, Vote
from shared.vectors import Condition

if TYPE_CHECKING:
    from shared.env import Settings
    from shared.taxonomy import Taxonomy


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


MAX_USER_METADATA_BYTES = 2048  # S3's limit on all user metadata of an object


def check_user_metadata(metadata: Mapping[str, str]) -> None:
    """S3's rules for user metadata, applied by every ObjectStore so that a local run fails
    where S3 would: ASCII keys and values, 2 KB in all. Raises `ObjectStoreError`."""
    from shared.errors import ObjectStoreError

    size = 0
    for key, value in metadata.items():
        if not (str(key).isascii() and str(value).isascii()):
            raise ObjectStoreError(
                f"object metadata {key!r} is not ASCII; S3 user metadata must be ASCII: "
                "escape it first (for example as JSON with ensure_ascii)"
            )
        size += len(str(key)) + len(str(value))
    if size > MAX_USER_METADATA_BYTES:
        raise ObjectStoreError(f"object metadata is {size} bytes; S3 allows 2 KB in all")


class ObjectStore(ABC):
    """One bucket (S3) or one folder (local). Keys are '/'-separated, relative."""

    name: str

    def restore(self, key: str, etag: str | None) -> bool:
        """Make the newest earlier version of `key` whose etag is `etag` current again (a bad
        upload over a good photo). False when the store keeps no such version (an unversioned
        bucket); the bad version stays as an older version, nothing is deleted."""
        return False

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
    def put_if_absent(self, key: str, body: bytes, *, content_type: str | None = None) -> bool:
        """Create the object only if no object is at `key`, atomically: of concurrent callers
        exactly one gets True (a claim, e.g. "I submit the first training"); the others get
        False and nothing is written."""

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


class QueueError(DressvisionError):
    """A message could not be sent."""


class MessageQueue(ABC):
    @abstractmethod
    def send(self, body: str) -> str:
        """Send one message; return its id."""


@dataclass(frozen=True)
class WorkerRecord:
    """What the aggregation learned about one worker of one provider (the latest collect pass).

    accuracy: Dawid-Skene's estimate of P(correct answer), vote-weighted over the facets the
    worker answered; spammer_score: 0 when the answers do not depend on the true class (a
    spammer), 1 for answers that identify it; likely_spammer and excluded are the policy's
    verdicts (see shared/aggregation.py and DRESSVISION_MIN_WORKER_ACCURACY)."""

    provider: str
    worker_id: str
    answers: int
    accuracy: float
    spammer_score: float | None  # None until the worker answered enough to be judged
    likely_spammer: bool
    excluded: bool
    updated_at: datetime

    def to_json(self) -> dict:
        return {
            "provider": self.provider,
            "worker_id": self.worker_id,
            "answers": self.answers,
            "accuracy": round(self.accuracy, 4),
            "spammer_score": (None if self.spammer_score is None else round(self.spammer_score, 4)),
            "likely_spammer": self.likely_spammer,
            "excluded": self.excluded,
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict) -> WorkerRecord:
        return cls(**{**data, "updated_at": datetime.fromisoformat(data["updated_at"])})


class TaskStore(ABC):
    """Relabel tasks with optimistic locking, and the workers who answer them."""

    @abstractmethod
    def create(self, task: RelabelTask) -> bool:
        """Store a new task as given. False (and nothing written) if its id already exists:
        re-publishing is idempotent and never overwrites a task that moved on."""

    @abstractmethod
    def get(self, task_id: str) -> RelabelTask | None: ...

    @abstractmethod
    def update(self, task: RelabelTask, expected_version: int) -> RelabelTask:
        """Replace the task if the stored one is still at `expected_version`; the stored task
        gets version `expected_version + 1` and a fresh `updated_at`, and is returned.
        `ConflictError` if it moved on (re-read, decide again), `NotFoundError` if unknown."""

    @abstractmethod
    def list(self, status: TaskStatus | None = None) -> Iterator[RelabelTask]:
        """Every task, or those with `status` (any order)."""

    @abstractmethod
    def find_by_external_id(self, external_id: str) -> RelabelTask | None:
        """The task published under this HIT id / human loop name, if any."""

    def add_spend(
        self, amount: Decimal, *, cap: Decimal, initial: Callable[[], Decimal]
    ) -> tuple[bool, Decimal]:
        """The shared spend ledger of paid workforces (one number for every process: the
        review and collect Lambdas see the same). Atomically add `amount` if the total stays
        within `cap`; a negative amount gives a reservation back. Returns (added, total after).
        A ledger that does not exist yet starts at `initial()` (what was committed before)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no spend ledger")

    @abstractmethod
    def put_workers(self, workers: Iterable[WorkerRecord]) -> None:
        """Store each worker's record, replacing the one of the same (provider, worker_id):
        every collect pass re-estimates every worker from all answers, so last write wins."""

    @abstractmethod
    def workers(self, provider: str | None = None) -> Iterator[WorkerRecord]:
        """Every worker record, or those of `provider` (any order)."""


@dataclass(frozen=True)
class RawAnswer:
    """An answer as a provider returned it, before validation. `label` is whatever the worker
    sent (None when the answer could not be parsed at all)."""

    worker_id: str
    assignment_id: str
    label: object
    at: datetime


class Workforce(ABC):
    """Publishes relabel tasks to people and collects their answers.

    Every method is safe to retry: publishing or asking for more twice has the effect of once.
    """

    name: str  # the task's `provider`

    @abstractmethod
    def publish(self, task: RelabelTask, image_url: str) -> str | None:
        """Offer `task` to `task.max_assignments` workers; return its external id (HIT id,
        human loop name), or None where there is none. Store it as `task.external_id`."""

    @abstractmethod
    def fetch_votes(self, task: RelabelTask) -> list[Vote]:
        """Every valid answer so far (see `accept_votes`), oldest first."""

    @abstractmethod
    def request_more(self, task: RelabelTask, extra: int) -> None:
        """Ask for `extra` answers beyond `task.max_assignments`. The caller then stores the
        task with `max_assignments + extra` (answers are capped at `max_assignments`); a retry
        with the same task and `extra` asks only once."""

    @abstractmethod
    def finish(self, task: RelabelTask) -> None:
        """The task is decided: pay for the answers, stop offering it."""

    def task_price_usd(self, assignments: int) -> Decimal | None:
        """What a task asking `assignments` answers costs (`review --budget-usd` turns money
        into tasks with it), or None where the workforce sets no price (staff, simulated)."""
        return None

    def exclude_workers(self, worker_ids: Sequence[str]) -> bool:
        """Keep these workers out of new tasks. True when the provider enforces it (MTurk, with
        a qualification); False (the default) when it cannot, and people must act on the
        report (`dressvision workers`): remove them from the A2I work team, talk to staff."""
        return False


@dataclass(frozen=True)
class VectorHit:
    """One query result: the vector's id, its cosine similarity to the query (higher is more
    alike, 1.0 for the same direction) and its metadata."""

    id: str
    score: float
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class StoredVector:
    id: str
    vector: tuple[float, ...]
    metadata: Mapping[str, str]


class VectorIndex(ABC):
    """L2-normalized embeddings by id, with string metadata, searched by cosine similarity.

    One index holds one embedding space (one kind of embedder); ids are image ids. Adapters:
    faiss in the artifacts store (`shared/embedded/faiss_index.py`) and Amazon S3 Vectors
    (`shared/aws/s3vectors.py`). Filters are `shared.vectors` conditions.
    """

    @abstractmethod
    def upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        metadata: Sequence[Mapping[str, str]],
    ) -> None:
        """Insert or replace each id's vector and metadata (the last one wins within a call).
        Raises ValueError for a dimension the index does not hold or a non-finite vector."""

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None:
        """Remove these ids; unknown ids are fine."""

    @abstractmethod
    def query(
        self, vector: Sequence[float], k: int, filter: Sequence[Condition] = ()
    ) -> list[VectorHit]:
        """The `k` most similar vectors whose metadata satisfies `filter`, best first: exactly
        `k` when at least `k` match."""

    @abstractmethod
    def get(self, ids: Sequence[str]) -> dict[str, StoredVector]:
        """The stored vectors of the ids that exist (unknown ids are left out)."""

    @abstractmethod
    def ids(self) -> Iterator[str]:
        """Every stored id (any order)."""


@dataclass(frozen=True)
class Ports:
    """Every port a handler or job needs, built once by a composition root."""

    settings: Settings
    taxonomy: Taxonomy
    labels: LabelStore
    predictions: PredictionStore
    catalog: ObjectStore
    artifacts: ObjectStore
    jobs: JobRunner
    tasks: TaskStore
    # Where batch_events sends "review now" (SQS on AWS; the runtime's queue locally).
    review_queue: MessageQueue | None = None
    # Similarity indexes by embedder kind ("supervised", "unsupervised"); None where the
    # deployment has none (`shared.backends.build_ports` sets it).
    vectors: Callable[[str], VectorIndex] | None = None
