"""SQLite adapters of `LabelStore` and `PredictionStore`: the one-machine tables.

Several processes (the local server, job subprocesses) open the same file at once. WAL mode lets
readers go on while one writer writes; the busy timeout makes a writer wait for the lock instead
of failing; every call opens its own short-lived connection, so threads never share one. Records
are stored as their JSON plus the key columns we query on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from shared.errors import ConflictError, NotFoundError
from shared.ports import (
    LabelStore,
    PredictionStore,
    RegisterOutcome,
    apply_label_update,
    merge_registration,
)
from shared.records import LabelEvent, LabelRecord, LabelSource, PredictionRecord

BUSY_TIMEOUT_S = 30.0
PAGE_SIZE = 500  # rows per query in scans, so a scan never holds a read snapshot for long

# `seq` gives events their insertion order, which is their causal order per image: writes are
# serialized by the write lock, unlike wall-clock times from several processes.
LABELS_SCHEMA = """
CREATE TABLE IF NOT EXISTS labels (
    image_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS label_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS label_events_by_image ON label_events (image_id, seq);
"""

PREDICTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    image_id TEXT NOT NULL,
    model_version TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (image_id, model_version)
);
CREATE INDEX IF NOT EXISTS predictions_by_model ON predictions (model_version, image_id);
"""


class _Database:
    """One SQLite file: a fresh connection per call, explicit transactions."""

    def __init__(self, path: str | Path, schema: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            conn.executescript(f"BEGIN IMMEDIATE;\n{schema}\nCOMMIT;")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, we BEGIN and COMMIT ourselves.
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """A transaction that takes the write lock at BEGIN: what it reads cannot change under
        it before it commits, and waiting for the lock goes through the busy timeout."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()


def _pages(conn: sqlite3.Connection, query: str, params: tuple) -> Iterator[str]:
    """Bodies of `query` page by page, by key: `query` takes `params` + (after_key, limit),
    selects (key, body) and orders by key."""
    after = ""
    while True:
        rows = conn.execute(query, (*params, after, PAGE_SIZE)).fetchall()
        for _, body in rows:
            yield body
        if len(rows) < PAGE_SIZE:
            return
        after = rows[-1][0]


class SqliteLabelStore(LabelStore):
    """Labels and label events in a SQLite file (shared with other stores and processes)."""

    def __init__(self, path: str | Path):
        self._db = _Database(path, LABELS_SCHEMA)

    def get(self, image_id: str) -> LabelRecord | None:
        with self._db.reading() as conn:
            return _read_label(conn, image_id)

    def register(self, record: LabelRecord) -> tuple[RegisterOutcome, LabelRecord]:
        # Read, merge and write in one write transaction: nobody can move the record between
        # the read and the write, so unlike DynamoDB no retry is needed.
        with self._db.writing() as conn:
            existing = _read_label(conn, record.image_id)
            outcome, merged, events = merge_registration(existing, record)
            if outcome is RegisterOutcome.CREATED:
                conn.execute(
                    "INSERT INTO labels (image_id, version, body) VALUES (?, ?, ?)",
                    (merged.image_id, merged.version, merged.model_dump_json()),
                )
            elif outcome is RegisterOutcome.UPDATED:
                _replace_label(conn, merged, expected_version=existing.version)
            _insert_events(conn, events)
        return outcome, merged

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
        """See `LabelStore.update_label`: the record and its event in one transaction."""
        with self._db.writing() as conn:
            existing = _read_label(conn, image_id)
            if existing is None:
                raise NotFoundError(f"image {image_id!r} is not registered; import it first")
            record, event = apply_label_update(
                existing, facet, label, source=source, evidence=evidence
            )
            _replace_label(conn, record, expected_version=expected_version)
            _insert_events(conn, [event])
        return record

    def events(self, image_id: str) -> list[LabelEvent]:
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT body FROM label_events WHERE image_id = ? ORDER BY seq", (image_id,)
            ).fetchall()
        return [LabelEvent.model_validate_json(body) for (body,) in rows]

    def scan(self) -> Iterator[LabelRecord]:
        query = "SELECT image_id, body FROM labels WHERE image_id > ? ORDER BY image_id LIMIT ?"
        with self._db.reading() as conn:
            for body in _pages(conn, query, ()):
                yield LabelRecord.model_validate_json(body)


def _read_label(conn: sqlite3.Connection, image_id: str) -> LabelRecord | None:
    row = conn.execute("SELECT body FROM labels WHERE image_id = ?", (image_id,)).fetchone()
    return LabelRecord.model_validate_json(row[0]) if row else None


def _replace_label(conn: sqlite3.Connection, record: LabelRecord, *, expected_version: int) -> None:
    """Write `record` only if the stored one is still at `expected_version`."""
    cursor = conn.execute(
        "UPDATE labels SET version = ?, body = ? WHERE image_id = ? AND version = ?",
        (record.version, record.model_dump_json(), record.image_id, expected_version),
    )
    if cursor.rowcount != 1:
        raise ConflictError(
            f"label record {record.image_id!r} is no longer at version {expected_version}; "
            "re-read it and decide again"
        )


def _insert_events(conn: sqlite3.Connection, events: list[LabelEvent]) -> None:
    conn.executemany(
        "INSERT INTO label_events (image_id, version, body) VALUES (?, ?, ?)",
        [(e.image_id, e.version, e.model_dump_json()) for e in events],
    )


class SqlitePredictionStore(PredictionStore):
    """Predictions in a SQLite file, keyed by (image id, model version)."""

    def __init__(self, path: str | Path):
        self._db = _Database(path, PREDICTIONS_SCHEMA)

    def put(self, record: PredictionRecord) -> None:
        self.put_many([record])

    def put_many(self, records: Sequence[PredictionRecord]) -> None:
        """All in one transaction: one commit instead of one per record."""
        with self._db.writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO predictions (image_id, model_version, body) "
                "VALUES (?, ?, ?)",
                [(r.image_id, r.model_version, r.model_dump_json()) for r in records],
            )

    def get(self, image_id: str, model_version: str) -> PredictionRecord | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT body FROM predictions WHERE image_id = ? AND model_version = ?",
                (image_id, model_version),
            ).fetchone()
        return PredictionRecord.model_validate_json(row[0]) if row else None

    def for_model(self, model_version: str) -> Iterator[PredictionRecord]:
        query = (
            "SELECT image_id, body FROM predictions WHERE model_version = ? AND image_id > ? "
            "ORDER BY image_id LIMIT ?"
        )
        with self._db.reading() as conn:
            for body in _pages(conn, query, (model_version,)):
                yield PredictionRecord.model_validate_json(body)
