"""Staff answer relabel tasks through the TaskStore."""

from __future__ import annotations

import threading

import pytest

from shared.embedded.tasks_sqlite import SqliteTaskStore
from shared.errors import NotFoundError, TaskClosedError, UnknownLabelError
from shared.tasks import RelabelTask
from shared.workforce.internal import InternalWorkforce, record_staff_answer


def open_task(max_assignments: int = 1) -> RelabelTask:
    return RelabelTask.new(
        image_id="p1/front",
        facet="occasion",
        round=1,
        allowed=("casual", "work", "cocktail", "evening"),
        current_label="casual",
        label_version=4,
        suggested="evening",
        confidence=0.97,
        provider="internal",
        max_assignments=max_assignments,
    )


@pytest.fixture
def store(tmp_path) -> SqliteTaskStore:
    return SqliteTaskStore(tmp_path / "state.db")


def test_publish_sends_nothing_and_fetch_votes_reads_the_stored_answers(store):
    task = open_task(max_assignments=2)
    store.create(task)
    workforce = InternalWorkforce(store)

    assert workforce.publish(task, "http://unused") is None
    assert workforce.fetch_votes(task) == []
    record_staff_answer(store, task.task_id, "evening", worker_id="ana")

    votes = workforce.fetch_votes(task)  # the caller's copy is stale: votes are read fresh

    assert [(v.worker_id, v.label, v.assignment_id) for v in votes] == [
        ("ana", "evening", "staff-1")
    ]


def test_staff_answer_is_validated_against_the_tasks_labels(store):
    task = open_task()
    store.create(task)

    with pytest.raises(UnknownLabelError, match="allowed: casual, work, cocktail, evening"):
        record_staff_answer(store, task.task_id, "gala")

    assert store.get(task.task_id).votes == ()


def test_staff_answer_is_appended_with_the_next_version(store):
    task = open_task(max_assignments=2)
    store.create(task)

    first = record_staff_answer(store, task.task_id, "evening")
    second = record_staff_answer(store, task.task_id, "cocktail", worker_id="bo")

    assert (first.version, second.version) == (2, 3)
    assert [(v.worker_id, v.label) for v in second.votes] == [
        ("staff", "evening"),
        ("bo", "cocktail"),
    ]
    assert store.get(task.task_id) == second


def test_staff_answer_on_a_full_or_decided_or_unknown_task_is_refused(store):
    task = open_task(max_assignments=1)
    store.create(task)
    record_staff_answer(store, task.task_id, "evening")

    with pytest.raises(TaskClosedError, match="1 of 1 answers"):
        record_staff_answer(store, task.task_id, "work")
    decided = store.get(task.task_id)
    store.update(
        decided.model_copy(update={"status": "decided", "max_assignments": 3}), decided.version
    )
    with pytest.raises(TaskClosedError, match="decided"):
        record_staff_answer(store, task.task_id, "work")
    with pytest.raises(NotFoundError):
        record_staff_answer(store, "nope#occasion#1", "work")


def test_concurrent_staff_answers_both_land_through_the_optimistic_lock(store, monkeypatch):
    task = open_task(max_assignments=2)
    store.create(task)
    barrier = threading.Barrier(2)
    real_get = SqliteTaskStore.get
    reads: list[int] = []

    def get_then_wait(self, task_id):
        found = real_get(self, task_id)
        reads.append(found.version)
        if len(reads) <= 2:
            barrier.wait(timeout=10)  # both read version 1 before either writes
        return found

    monkeypatch.setattr(SqliteTaskStore, "get", get_then_wait)
    threads = [
        threading.Thread(target=record_staff_answer, args=(store, task.task_id, label, who))
        for label, who in (("evening", "ana"), ("cocktail", "bo"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    final = real_get(store, task.task_id)
    assert final.version == 3
    assert sorted(v.worker_id for v in final.votes) == ["ana", "bo"]
    assert sorted(v.assignment_id for v in final.votes) == ["staff-1", "staff-2"]
    assert reads[:2] == [1, 1] and len(reads) == 3  # one conflicted and re-read


def test_request_more_and_finish_send_nothing(store):
    workforce = InternalWorkforce(store)
    workforce.request_more(open_task(), 2)
    workforce.finish(open_task())
    with pytest.raises(ValueError, match="at least 1"):
        workforce.request_more(open_task(), 0)
