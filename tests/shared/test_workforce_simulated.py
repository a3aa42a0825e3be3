"""Simulated workers: deterministic, as accurate as configured, spammers included."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from shared.errors import NotFoundError
from shared.tasks import RelabelTask
from shared.workforce.simulated import (
    SimulatedWorker,
    SimulatedWorkforce,
    default_pool,
    truth_from_csv,
)

NECKLINES = ("v-neck", "crew", "boat", "sweetheart", "halter")
T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)


def task(i: int = 0, max_assignments: int = 3) -> RelabelTask:
    fresh = RelabelTask.new(
        image_id=f"p{i}/front",
        facet="neckline",
        round=1,
        allowed=NECKLINES,
        current_label="v-neck",
        label_version=1,
        suggested="crew",
        confidence=0.9,
        provider="simulated",
        max_assignments=max_assignments,
    )
    return fresh.model_copy(update={"created_at": T0, "updated_at": T0})


def truth(image_id: str, facet: str) -> str:
    return NECKLINES[int(image_id[1:].split("/")[0]) % len(NECKLINES)]


def test_same_seed_and_task_give_the_same_votes_in_any_instance():
    first = SimulatedWorkforce(truth, seed=7).fetch_votes(task(3, max_assignments=5))
    again = SimulatedWorkforce(truth, seed=7).fetch_votes(task(3, max_assignments=5))
    other_seed = [SimulatedWorkforce(truth, seed=8).fetch_votes(task(i, 5)) for i in range(10)]

    assert first == again
    assert len(first) == 5 and len({v.worker_id for v in first}) == 5  # distinct workers
    assert [
        SimulatedWorkforce(truth, seed=7).fetch_votes(task(i, 5)) for i in range(10)
    ] != other_seed


def test_request_more_extends_the_same_answers():
    workforce = SimulatedWorkforce(truth, seed=1)
    published = task(max_assignments=3)
    assert workforce.publish(published, "http://unused") is None
    before = workforce.fetch_votes(published)

    workforce.request_more(published, 2)
    after = workforce.fetch_votes(published.model_copy(update={"max_assignments": 5}))

    assert after[:3] == before and len(after) == 5


def test_a_worker_is_as_accurate_as_configured_over_many_tasks():
    workers = [SimulatedWorker("good", accuracy=0.8), SimulatedWorker("poor", accuracy=0.3)]
    workforce = SimulatedWorkforce(truth, seed=3, workers=workers)

    correct: Counter[str] = Counter()
    for i in range(1500):
        for vote in workforce.fetch_votes(task(i, max_assignments=2)):
            correct[vote.worker_id] += vote.label == truth(f"p{i}/front", "neckline")

    assert 0.76 < correct["good"] / 1500 < 0.84
    assert 0.26 < correct["poor"] / 1500 < 0.34


def test_a_confusion_matrix_decides_the_answers_for_the_labels_it_lists():
    swaps = SimulatedWorker("swapper", confusion={"crew": {"boat": 1.0}}, accuracy=1.0)
    workforce = SimulatedWorkforce(truth, workers=[swaps])

    crew_votes = [workforce.fetch_votes(task(i, 1))[0].label for i in range(1, 60, 5)]  # crew
    v_neck_votes = [workforce.fetch_votes(task(i, 1))[0].label for i in range(0, 60, 5)]

    assert set(crew_votes) == {"boat"}
    assert set(v_neck_votes) == {"v-neck"}  # not listed: falls back to accuracy 1.0


def test_default_pool_has_a_spammer_of_each_kind_and_accuracies_in_range():
    pool = default_pool(seed=0)
    workforce = SimulatedWorkforce(truth, workers=pool)
    answers: dict[str, list[str]] = {w.worker_id: [] for w in pool}
    for i in range(300):
        for vote in workforce.fetch_votes(task(i, max_assignments=12)):
            answers[vote.worker_id].append(vote.label)

    assert len(pool) == 12
    assert sorted(w.spam for w in pool if w.spam) == ["constant", "uniform"]
    assert all(0.6 <= w.accuracy <= 0.9 for w in pool if not w.spam)
    constant = next(w.worker_id for w in pool if w.spam == "constant")
    uniform = next(w.worker_id for w in pool if w.spam == "uniform")
    assert len(set(answers[constant])) == 1  # always the same label
    assert min(Counter(answers[uniform]).values()) > 35  # every label, about 60 times each


def test_more_answers_than_workers_or_a_missing_truth_is_refused():
    workforce = SimulatedWorkforce(truth, workers=default_pool(size=4, spammers=1))

    with pytest.raises(ValueError, match="pool has 4"):
        workforce.publish(task(max_assignments=5), "http://unused")
    with pytest.raises(ValueError, match="pool has 4"):
        workforce.request_more(task(max_assignments=3), 2)
    with pytest.raises(NotFoundError, match="no true neckline"):
        SimulatedWorkforce(lambda image_id, facet: {}[image_id]).publish(task(), "http://x")


def test_truth_from_csv_reads_a_catalog_labels_file(tmp_path):
    path = tmp_path / "labels_true.csv"
    path.write_text(
        "image_id,path,product_id,silhouette,neckline,split\n"
        "p1/front,img/p1.jpg,p1,a-line,crew,train\n"
        "p2/front,img/p2.jpg,p2,sheath,,test\n"
    )
    read = truth_from_csv(path, ["silhouette", "neckline"])

    assert read("p1/front", "neckline") == "crew" and read("p2/front", "silhouette") == "sheath"
    with pytest.raises(KeyError):
        read("p2/front", "neckline")
