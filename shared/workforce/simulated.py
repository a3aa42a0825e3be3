"""Simulated workers, for the loop benchmark, the demo and tests: no people, known answers.

A pool of workers, each with an accuracy or a full confusion matrix, and a few spammers who
answer uniformly at random or always the same label. They see the true label (`truth`, e.g.
`truth_from_csv` on a synthetic catalog's labels_true.csv). Everything is a function of
(seed, task id, answer index), hashed with sha256 (never Python's `hash`), so the same seed gives
the same answers in every process, and nothing needs storing: `fetch_votes` recomputes the
first `max_assignments` answers, and `request_more` only checks that the pool is big enough.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from shared.errors import NotFoundError
from shared.ports import RawAnswer, Workforce
from shared.tasks import RelabelTask, Vote
from shared.workforce.base import accept_votes, check_extra

Truth = Callable[[str, str], str]  # (image_id, facet) -> true label
Spam = Literal["uniform", "constant"]


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class SimulatedWorker:
    """One worker. `confusion[true][answer]` (probabilities, renormalized over the task's
    labels) wins over `accuracy` for the true labels it lists; otherwise the worker is right
    with probability `accuracy` and else picks another label uniformly. A spammer ignores the
    image: "uniform" picks any label, "constant" always the same one."""

    worker_id: str
    accuracy: float = 0.8
    confusion: Mapping[str, Mapping[str, float]] | None = None
    spam: Spam | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy must be within [0, 1], got {self.accuracy}")
        if self.spam not in (None, "uniform", "constant"):
            raise ValueError(f"spam must be 'uniform', 'constant' or None, got {self.spam!r}")

    def answer(self, true_label: str, allowed: Sequence[str], rng: np.random.Generator) -> str:
        """This worker's answer for an image whose true label is `true_label`."""
        if self.spam == "uniform":
            return allowed[rng.integers(len(allowed))]
        if self.spam == "constant":
            return allowed[_rng(self.worker_id).integers(len(allowed))]
        row = (self.confusion or {}).get(true_label)
        if row:
            weights = np.array([max(float(row.get(label, 0.0)), 0.0) for label in allowed])
            if weights.sum() > 0:
                return allowed[rng.choice(len(allowed), p=weights / weights.sum())]
        if rng.random() < self.accuracy:
            return true_label
        others = [label for label in allowed if label != true_label]
        return others[rng.integers(len(others))]


def default_pool(
    seed: int = 0,
    size: int = 12,
    spammers: int = 2,
    accuracy: tuple[float, float] = (0.6, 0.9),
) -> tuple[SimulatedWorker, ...]:
    """`size` workers: accuracies drawn uniformly from `accuracy`, the last `spammers` of them
    spammers (alternately uniform and constant)."""
    if not 0 <= spammers <= size:
        raise ValueError(f"spammers must be between 0 and size ({size}), got {spammers}")
    accuracies = _rng(seed, "pool").uniform(*accuracy, size=size)
    honest = size - spammers
    return tuple(
        SimulatedWorker(
            worker_id=f"sim-{i:02d}",
            accuracy=round(float(accuracies[i]), 3),
            spam=None if i < honest else ("uniform", "constant")[(i - honest) % 2],
        )
        for i in range(size)
    )


class SimulatedWorkforce(Workforce):
    """Answers from a seeded pool of simulated workers; each task gets distinct workers."""

    name = "simulated"

    def __init__(
        self, truth: Truth, *, seed: int = 0, workers: Sequence[SimulatedWorker] | None = None
    ):
        self.truth = truth
        self.seed = seed
        self.workers = tuple(workers) if workers is not None else default_pool(seed)
        if not self.workers:
            raise ValueError("the simulated pool needs at least one worker")

    def publish(self, task: RelabelTask, image_url: str) -> str | None:
        """Checks the pool and the truth; the answers exist from now on (no external id)."""
        self._check_pool(task.max_assignments)
        self._true_label(task)
        return None

    def fetch_votes(self, task: RelabelTask) -> list[Vote]:
        """The first `max_assignments` answers, one distinct worker each."""
        true_label = self._true_label(task)
        order = _rng(self.seed, task.task_id, "workers").permutation(len(self.workers))
        answers = []
        for index in range(min(task.max_assignments, len(self.workers))):
            worker = self.workers[order[index]]
            label = worker.answer(true_label, task.allowed, _rng(self.seed, task.task_id, index))
            answers.append(
                RawAnswer(
                    worker_id=worker.worker_id,
                    assignment_id=f"sim-{index}",
                    label=label,
                    at=task.created_at + timedelta(seconds=index + 1),
                )
            )
        return accept_votes(task, answers)

    def request_more(self, task: RelabelTask, extra: int) -> None:
        """The next answers are drawn when `fetch_votes` sees the higher `max_assignments`."""
        check_extra(extra)
        self._check_pool(task.max_assignments + extra)

    def finish(self, task: RelabelTask) -> None:
        """Nothing to pay or close."""

    def _check_pool(self, assignments: int) -> None:
        if assignments > len(self.workers):
            raise ValueError(
                f"{assignments} answers need as many distinct workers; the simulated pool has "
                f"{len(self.workers)}: ask for fewer or give a bigger pool"
            )

    def _true_label(self, task: RelabelTask) -> str:
        try:
            label = self.truth(task.image_id, task.facet)
        except KeyError:
            raise NotFoundError(
                f"no true {task.facet} label for {task.image_id!r}: simulated workers need one"
            ) from None
        if label not in task.allowed:
            raise ValueError(f"true label {label!r} of {task.task_id} is not one of allowed")
        return label


def truth_from_csv(path: str | Path, facets: Iterable[str]) -> Truth:
    """(image_id, facet) -> label from a catalog CSV such as labels_true.csv; empty cells are
    unknown (a KeyError, as for an image that is not in the file)."""
    facet_names = tuple(facets)
    labels: dict[tuple[str, str], str] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            for facet in facet_names:
                if row.get(facet):
                    labels[(row["image_id"], facet)] = row[facet]
    return lambda image_id, facet: labels[(image_id, facet)]
