"""In-house staff answer relabel tasks through the TaskStore: nothing is sent anywhere.

Staff see the open tasks (`dressvision tasks list`, the web app's review queue) and answer with
`record_staff_answer` (`dressvision answer TASK_ID LABEL`), which validates the label and
appends the vote under optimistic locking. `fetch_votes` reads the stored votes back.
"""

from __future__ import annotations

import logging

from shared.errors import ConflictError, NotFoundError, TaskClosedError, UnknownLabelError
from shared.ports import RawAnswer, TaskStore, Workforce
from shared.records import utcnow
from shared.tasks import RelabelTask, Vote
from shared.workforce.base import accept_votes, check_extra

logger = logging.getLogger(__name__)

ANSWER_ATTEMPTS = 5  # two staff answering one task at once is rare; five conflicts is a bug


class InternalWorkforce(Workforce):
    """Staff in the web app or the CLI."""

    name = "internal"

    def __init__(self, store: TaskStore):
        self.store = store

    def publish(self, task: RelabelTask, image_url: str) -> str | None:
        """Nothing to send: an open task in the store is on the staff's queue."""
        return None

    def fetch_votes(self, task: RelabelTask) -> list[Vote]:
        """The stored votes (read fresh), validated like any provider's answers."""
        stored = self.store.get(task.task_id) or task
        answers = [RawAnswer(v.worker_id, v.assignment_id, v.label, v.at) for v in stored.votes]
        return accept_votes(stored, answers)

    def request_more(self, task: RelabelTask, extra: int) -> None:
        """Nothing to send: with a higher `max_assignments` the task stays on the queue."""
        check_extra(extra)

    def finish(self, task: RelabelTask) -> None:
        """Nothing to pay or close."""


def record_staff_answer(
    store: TaskStore, task_id: str, label: str, worker_id: str = "staff"
) -> RelabelTask:
    """Append a staff member's answer to an open task and return the stored task.

    Raises `UnknownLabelError` for a label the task does not allow, `NotFoundError` for an
    unknown task, `TaskClosedError` when it takes no more answers. A concurrent write is
    re-read and retried.
    """
    for _ in range(ANSWER_ATTEMPTS):
        task = store.get(task_id)
        if task is None:
            raise NotFoundError(f"relabel task {task_id!r} does not exist; see `tasks list`")
        if label not in task.allowed:
            raise UnknownLabelError(task.facet, label, task.allowed)
        if task.status != "open" or len(task.votes) >= task.max_assignments:
            raise TaskClosedError(
                f"relabel task {task_id!r} is {task.status} with {len(task.votes)} of "
                f"{task.max_assignments} answers; it takes no more"
            )
        number = len(task.votes) + 1
        vote = Vote(worker_id=worker_id, label=label, assignment_id=f"staff-{number}", at=utcnow())
        try:
            return store.update(
                task.model_copy(update={"votes": (*task.votes, vote)}),
                expected_version=task.version,
            )
        except ConflictError:
            logger.info("task %s changed while answering; re-reading", task_id)
    raise ConflictError(
        f"relabel task {task_id!r} kept changing ({ANSWER_ATTEMPTS} conflicts); answer again"
    )
