"""SQLite adapter of `TaskStore`: relabel tasks in the one-machine state file.

It may share the file with the label and prediction stores (WAL, busy timeout and a connection
per call, like them: see `shared/embedded/sqlite.py`). A task is stored as its JSON next to the
columns we query on.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path

from shared.embedded.sqlite import _Database, _pages
from shared.errors import ConflictError, NotFoundError
from shared.ports import TaskStore, WorkerRecord
from shared.tasks import RelabelTask, TaskStatus, next_version

TASKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS relabel_tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    external_id TEXT,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS relabel_tasks_by_status ON relabel_tasks (status, task_id);
CREATE INDEX IF NOT EXISTS relabel_tasks_by_external_id ON relabel_tasks (external_id);
CREATE TABLE IF NOT EXISTS spend_ledger (
    name TEXT PRIMARY KEY,
    spent TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    provider TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (provider, worker_id)
);
"""
LEDGER = "workforce-spend"


class SqliteTaskStore(TaskStore):
    """Relabel tasks in a SQLite file (shared with other stores and processes)."""

    def __init__(self, path: str | Path):
        self._db = _Database(path, TASKS_SCHEMA)

    def create(self, task: RelabelTask) -> bool:
        task = RelabelTask.model_validate(task.model_dump())  # a model_copy skips validation
        with self._db.writing() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO relabel_tasks (task_id, status, external_id, version, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (task.task_id, task.status, task.external_id, task.version, _body(task)),
            )
        return cursor.rowcount == 1

    def get(self, task_id: str) -> RelabelTask | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT body FROM relabel_tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        return RelabelTask.model_validate_json(row[0]) if row else None

    def update(self, task: RelabelTask, expected_version: int) -> RelabelTask:
        stored = next_version(task, expected_version)
        with self._db.writing() as conn:
            cursor = conn.execute(
                "UPDATE relabel_tasks SET status = ?, external_id = ?, version = ?, body = ? "
                "WHERE task_id = ? AND version = ?",
                (
                    stored.status,
                    stored.external_id,
                    stored.version,
                    _body(stored),
                    stored.task_id,
                    expected_version,
                ),
            )
            if cursor.rowcount != 1:
                _raise_missing_or_conflict(conn, task.task_id, expected_version)
        return stored

    def list(self, status: TaskStatus | None = None) -> Iterator[RelabelTask]:
        if status is None:
            query = "SELECT task_id, body FROM relabel_tasks WHERE task_id > ? "
            params: tuple = ()
        else:
            query = "SELECT task_id, body FROM relabel_tasks WHERE status = ? AND task_id > ? "
            params = (status,)
        with self._db.reading() as conn:
            for body in _pages(conn, query + "ORDER BY task_id LIMIT ?", params):
                yield RelabelTask.model_validate_json(body)

    def add_spend(
        self, amount: Decimal, *, cap: Decimal, initial: Callable[[], Decimal]
    ) -> tuple[bool, Decimal]:
        """One write transaction (BEGIN IMMEDIATE): read, check, write cannot interleave."""
        seed = None
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT spent FROM spend_ledger WHERE name = ?", (LEDGER,)
            ).fetchone()
        if row is None:
            seed = Decimal(initial())  # read outside the write lock (it may list every task)
        with self._db.writing() as conn:
            row = conn.execute(
                "SELECT spent FROM spend_ledger WHERE name = ?", (LEDGER,)
            ).fetchone()
            spent = Decimal(row[0]) if row else Decimal(seed if seed is not None else 0)
            total = spent + amount
            if amount > 0 and total > cap:
                added, total = False, spent
            else:
                added = True
            conn.execute(
                "INSERT INTO spend_ledger (name, spent) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET spent = excluded.spent",
                (LEDGER, str(total)),
            )
        return added, total

    def find_by_external_id(self, external_id: str) -> RelabelTask | None:
        with self._db.reading() as conn:
            row = conn.execute(
                "SELECT body FROM relabel_tasks WHERE external_id = ? ORDER BY task_id LIMIT 1",
                (external_id,),
            ).fetchone()
        return RelabelTask.model_validate_json(row[0]) if row else None

    def put_workers(self, workers: Iterable[WorkerRecord]) -> None:
        rows = [(w.provider, w.worker_id, json.dumps(w.to_json())) for w in workers]
        with self._db.writing() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO workers (provider, worker_id, body) VALUES (?, ?, ?)", rows
            )

    def workers(self, provider: str | None = None) -> Iterator[WorkerRecord]:
        query, params = "SELECT body FROM workers", ()
        if provider is not None:
            query, params = query + " WHERE provider = ?", (provider,)
        with self._db.reading() as conn:
            bodies = [row[0] for row in conn.execute(query, params)]
        for body in bodies:
            yield WorkerRecord.from_json(json.loads(body))


def _body(task: RelabelTask) -> str:
    return task.model_dump_json()


def _raise_missing_or_conflict(
    conn: sqlite3.Connection, task_id: str, expected_version: int
) -> None:
    exists = conn.execute("SELECT 1 FROM relabel_tasks WHERE task_id = ?", (task_id,)).fetchone()
    if exists is None:
        raise NotFoundError(f"relabel task {task_id!r} does not exist; create it first")
    raise ConflictError(
        f"relabel task {task_id!r} is no longer at version {expected_version}; "
        "re-read it and decide again"
    )
