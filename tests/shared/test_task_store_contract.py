"""One contract for every TaskStore adapter: SQLite and DynamoDB (moto).

`backend()` opens a new store on the same state each call, the way another process or Lambda
would. Pages are 2 items long so listings paginate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError

from shared.aws import dynamodb
from shared.aws import tasks_dynamodb as tasks_ddb
from shared.aws.tasks_dynamodb import DynamoDBTaskStore, create_tasks_table
from shared.embedded import sqlite
from shared.embedded.sqlite import SqliteLabelStore
from shared.embedded.tasks_sqlite import SqliteTaskStore
from shared.errors import ConflictError, NotFoundError
from shared.ports import TaskStore, WorkerRecord
from shared.tasks import RelabelTask, Vote, task_id_for

NECKLINES = ("v-neck", "crew", "boat", "sweetheart", "halter")


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(
    atomic_calls, request, tmp_path, monkeypatch, aws_env
) -> Iterator[Callable[[], TaskStore]]:
    monkeypatch.setattr(sqlite, "PAGE_SIZE", 2)
    monkeypatch.setattr(dynamodb, "PAGE_SIZE", 2)
    if request.param == "sqlite":
        yield lambda: SqliteTaskStore(tmp_path / "state.db")
        return
    with mock_aws():
        client = atomic_calls(boto3.client("dynamodb"))
        create_tasks_table(client, "Tasks")
        yield lambda: DynamoDBTaskStore("Tasks", client=client)


def make_task(image_id: str = "p1/front", round: int = 1, **changes) -> RelabelTask:
    task = RelabelTask.new(
        image_id=image_id,
        facet="neckline",
        round=round,
        allowed=NECKLINES,
        current_label="v-neck",
        label_version=3,
        suggested="crew",
        confidence=0.93,
        provider="mturk",
        max_assignments=3,
    )
    return task.model_copy(update=changes) if changes else task


def vote(n: int, label: str = "crew") -> Vote:
    at = datetime(2025, 5, 1, 12, n, 30, 123456, tzinfo=UTC)
    return Vote(worker_id=f"W{n}", label=label, assignment_id=f"A{n}", at=at)


# --- records ------------------------------------------------------------------------------


def test_task_id_is_deterministic_and_sanitized():
    assert task_id_for("p1/front", "neckline", 2) == "p1/front#neckline#2"
    assert task_id_for("p 1/fr ont", "neck line", 0) == "p-1/fr-ont#neck-line#0"
    assert make_task().task_id == make_task().task_id == "p1/front#neckline#1"


def test_task_refuses_labels_outside_allowed_and_a_foreign_task_id():
    with pytest.raises(ValidationError, match="not one of"):
        make_task().model_validate({**make_task().model_dump(), "suggested": "turtleneck"})
    with pytest.raises(ValidationError, match="not one of"):
        RelabelTask.model_validate({**make_task().model_dump(), "votes": [vote(1, "polo")]})
    with pytest.raises(ValidationError, match="does not match"):
        RelabelTask.model_validate({**make_task().model_dump(), "task_id": "other#x#1"})


# --- create / get -------------------------------------------------------------------------


def test_create_stores_the_task_exactly(backend):
    store = backend()
    task = make_task(votes=(vote(1), vote(2, "boat")), outcome_posterior=0.8125)

    assert store.create(task) is True

    assert backend().get(task.task_id) == task  # datetimes and floats round-trip unchanged
    assert backend().get("nope#neckline#1") is None


def test_create_again_is_idempotent_and_never_overwrites(backend):
    store = backend()
    store.create(make_task())
    moved_on = store.update(make_task(status="decided", outcome="crew"), expected_version=1)

    assert backend().create(make_task()) is False  # a re-published round finds its task

    assert store.get(moved_on.task_id) == moved_on


def test_create_validates_a_task_changed_without_validation(backend):
    sneaky = make_task().model_copy(update={"outcome": "turtleneck"})  # model_copy skips checks

    with pytest.raises(ValidationError):
        backend().create(sneaky)


# --- update: optimistic locking -----------------------------------------------------------


def test_update_at_the_current_version_stores_the_next_version(backend):
    store = backend()
    task = make_task()
    store.create(task)

    changed = task.model_copy(update={"votes": (vote(1),), "external_id": "HIT1"})
    stored = store.update(changed, expected_version=1)

    assert stored.version == 2 and stored.updated_at > task.updated_at
    assert stored.votes == (vote(1),) and stored.created_at == task.created_at
    assert backend().get(task.task_id) == stored


def test_update_at_a_stale_version_conflicts_and_writes_nothing(backend):
    store = backend()
    store.create(make_task())
    current = store.update(make_task(votes=(vote(1),)), expected_version=1)

    with pytest.raises(ConflictError, match="version 1"):
        store.update(make_task(votes=(vote(2, "boat"),)), expected_version=1)

    assert store.get(current.task_id) == current


def test_update_of_an_unknown_task_is_not_found(backend):
    with pytest.raises(NotFoundError):
        backend().update(make_task(), expected_version=1)


def test_update_refuses_a_vote_outside_allowed(backend):
    store = backend()
    store.create(make_task())
    bad = make_task().model_copy(update={"votes": (vote(1, "polo"),)})

    with pytest.raises(ValidationError):
        store.update(bad, expected_version=1)

    assert store.get(bad.task_id).votes == ()


def test_two_concurrent_writers_one_wins_one_conflicts(backend):
    backend().create(make_task())
    barrier, outcomes = threading.Barrier(2), []

    def append_vote(n: int) -> None:
        store = backend()
        current = store.get(make_task().task_id)
        barrier.wait(timeout=10)  # both read version 1 before either writes
        try:
            store.update(
                current.model_copy(update={"votes": (*current.votes, vote(n))}),
                expected_version=current.version,
            )
            outcomes.append("stored")
        except ConflictError:
            outcomes.append("conflict")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(append_vote, [1, 2]))

    assert sorted(outcomes) == ["conflict", "stored"]
    final = backend().get(make_task().task_id)
    assert final.version == 2 and len(final.votes) == 1  # no vote silently lost or merged


# --- listing and lookups ------------------------------------------------------------------


def test_list_returns_every_task_across_pages_and_filters_by_status(backend):
    store = backend()
    tasks = [make_task(f"p{i}/front") for i in range(5)]
    for task in tasks:
        store.create(task)
    store.update(tasks[1].model_copy(update={"status": "decided"}), expected_version=1)
    store.update(tasks[3].model_copy(update={"status": "escalated"}), expected_version=1)

    assert sorted(t.task_id for t in store.list()) == sorted(t.task_id for t in tasks)
    assert sorted(t.image_id for t in store.list("open")) == ["p0/front", "p2/front", "p4/front"]
    assert [t.image_id for t in store.list("decided")] == ["p1/front"]
    assert [t.status for t in store.list("escalated")] == ["escalated"]
    assert list(store.list("conflict")) == []


def test_find_by_external_id_returns_the_current_task(backend):
    store = backend()
    store.create(make_task("p1/front", external_id="HIT-1"))
    store.create(make_task("p2/front"))  # not published: no external id
    published = store.update(make_task("p2/front", external_id="HIT-2"), expected_version=1)
    later = store.update(published.model_copy(update={"votes": (vote(1),)}), expected_version=2)

    assert backend().find_by_external_id("HIT-2") == later
    assert backend().find_by_external_id("HIT-1").image_id == "p1/front"
    assert backend().find_by_external_id("HIT-3") is None


def test_tasks_share_the_sqlite_file_with_the_label_store(catalog_record, tmp_path):
    db = tmp_path / "state.db"
    task = make_task()
    SqliteLabelStore(db).register(catalog_record())
    SqliteTaskStore(db).create(task)

    assert SqliteLabelStore(db).get("p1/front").version == 1
    assert SqliteTaskStore(db).get(task.task_id) == task


# --- DynamoDB specifics: the stored layout infra and the indexes rely on ------------------


def test_dynamodb_item_carries_index_keys_and_leaves_external_id_out_until_set(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tasks_table(client, "Tasks")
        store = DynamoDBTaskStore("Tasks", client=client)
        store.create(make_task("p1/front"))
        store.create(make_task("p2/front", external_id="HIT-2", status="decided"))
        items = {i["task_id"]["S"]: i for i in client.scan(TableName="Tasks")["Items"]}
        table = client.describe_table(TableName="Tasks")["Table"]

    unpublished, published = items["p1/front#neckline#1"], items["p2/front#neckline#1"]
    assert tasks_ddb.TASKS_EXTERNAL_ID not in unpublished  # sparse by_external_id index
    assert published[tasks_ddb.TASKS_EXTERNAL_ID] == {"S": "HIT-2"}
    assert published[tasks_ddb.TASKS_STATUS] == {"S": "decided"}
    assert published[dynamodb.VERSION] == {"N": "1"}
    indexes = {
        i["IndexName"]: i["KeySchema"][0]["AttributeName"] for i in table["GlobalSecondaryIndexes"]
    }
    assert indexes == {"by_status": "status", "by_external_id": "external_id"}


# -- the spend ledger behind the MTurk budget (two stores on one state stand for two Lambdas) --
CAP = Decimal("1.00")


def test_the_ledger_starts_from_what_was_committed_and_never_passes_the_cap(backend):
    review, collect = backend(), backend()
    assert review.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal("0.50")) == (
        True,
        Decimal("0.68"),
    )
    # The other process sees the same number at once, and the initial value is not re-read.
    assert collect.add_spend(Decimal("0.30"), cap=CAP, initial=lambda: Decimal(99)) == (
        True,
        Decimal("0.98"),
    )
    assert review.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0)) == (
        False,
        Decimal("0.98"),
    )
    assert collect.add_spend(Decimal("-0.30"), cap=CAP, initial=lambda: Decimal(0)) == (
        True,
        Decimal("0.68"),
    )


def test_concurrent_spends_stay_within_the_cap(backend):
    stores = [backend() for _ in range(4)]

    def spend(i: int) -> bool:
        added, _ = stores[i % 4].add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0))
        return added

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(spend, range(12)))
    assert sum(results) == 5


def test_the_ledger_never_shows_up_as_a_task(backend):
    store = backend()
    store.create(make_task())
    store.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0))
    assert [t.task_id for t in store.list()] == [make_task().task_id]


# --- Worker records ------------------------------------------------------------------------


def worker_record(provider: str, worker_id: str, accuracy: float, **changes) -> WorkerRecord:
    fields = dict(
        provider=provider,
        worker_id=worker_id,
        answers=30,
        accuracy=accuracy,
        spammer_score=None,
        likely_spammer=False,
        excluded=False,
        updated_at=datetime(2026, 5, 1, 12, tzinfo=UTC),
    )
    return WorkerRecord(**{**fields, **changes})


def test_worker_records_are_replaced_per_provider_and_worker(backend):
    store = backend()
    store.create(make_task("p1/a"))
    store.put_workers(
        [
            worker_record("mturk", "A1", 0.9, spammer_score=0.8),
            worker_record("mturk", "A2", 0.3, spammer_score=0.05, likely_spammer=True),
            worker_record("a2i", "A1", 0.7),  # the same id elsewhere is another person
        ]
    )
    store.put_workers([worker_record("mturk", "A2", 0.25, excluded=True, answers=40)])

    other = backend()  # another process sees them
    assert {(w.provider, w.worker_id) for w in other.workers()} == {
        ("mturk", "A1"),
        ("mturk", "A2"),
        ("a2i", "A1"),
    }
    mturk = {w.worker_id: w for w in other.workers("mturk")}
    assert set(mturk) == {"A1", "A2"}
    assert mturk["A2"] == worker_record("mturk", "A2", 0.25, excluded=True, answers=40)
    assert mturk["A1"].spammer_score == 0.8
    # Workers never show up as tasks.
    assert [t.task_id for t in other.list()] == [make_task("p1/a").task_id]


def test_no_workers_yet(backend):
    assert list(backend().workers()) == []
