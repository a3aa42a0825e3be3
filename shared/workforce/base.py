"""The rules every `Workforce` adapter (the port is in `shared.ports`) applies to what
comes back.

Answers are untrusted input (a worker's browser can post anything): `accept_votes` keeps only
answers whose label is one of the task's allowed labels, each assignment once, and never more
than the task's `max_assignments`. What it drops is logged with the worker id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared.ports import RawAnswer
from shared.tasks import RelabelTask, Vote

logger = logging.getLogger(__name__)


def accept_votes(task: RelabelTask, answers: Iterable[RawAnswer]) -> list[Vote]:
    """The valid votes among `answers`, oldest first: label in `task.allowed`, first answer of
    each assignment id, at most `task.max_assignments`. Dropped answers are logged."""
    votes: list[Vote] = []
    seen: set[str] = set()
    for answer in sorted(answers, key=lambda a: (a.at, a.assignment_id)):
        if answer.assignment_id in seen:
            continue  # redelivered or listed twice
        seen.add(answer.assignment_id)
        if not answer.worker_id:
            logger.warning(
                "task %s: dropped answer %s: no worker id", task.task_id, answer.assignment_id
            )
            continue
        if not isinstance(answer.label, str) or answer.label not in task.allowed:
            logger.warning(
                "task %s: dropped answer %s of worker %s: %.80r is not one of the allowed labels",
                task.task_id,
                answer.assignment_id,
                answer.worker_id,
                answer.label,
            )
            continue
        if len(votes) == task.max_assignments:
            logger.warning(
                "task %s: dropped answer %s of worker %s: already %d answers",
                task.task_id,
                answer.assignment_id,
                answer.worker_id,
                task.max_assignments,
            )
            continue
        votes.append(
            Vote(
                worker_id=answer.worker_id,
                label=answer.label,
                assignment_id=answer.assignment_id,
                at=answer.at,
            )
        )
    return votes


def check_extra(extra: int) -> None:
    """`request_more`'s argument must ask for at least one answer."""
    if extra < 1:
        raise ValueError(f"extra must be at least 1, got {extra}")
