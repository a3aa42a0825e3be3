"""Relabel tasks: the records and the `TaskStore` port.

One task per (image, facet, round) asks people which label is right where the model confidently
disagrees with the current one. Its id is derived from that triple, so publishing the same
round twice finds the task that is already there. `version` is the optimistic-lock counter;
`label_version` is the image's `LabelRecord.version` at publish time, so an outcome is never
applied over a label that staff changed after publishing.

Adapters: `shared/embedded/tasks_sqlite.py`, `shared/aws/tasks_dynamodb.py`; the workforces that
answer tasks are in `shared/workforce/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.ids import sanitize_id, sanitize_part
from shared.records import utcnow

Provider = Literal["internal", "simulated", "mturk", "a2i"]
TaskStatus = Literal["open", "decided", "escalated", "conflict", "closed"]
TASK_STATUSES: tuple[TaskStatus, ...] = ("open", "decided", "escalated", "conflict", "closed")

Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def task_id_for(image_id: str, facet: str, round: int) -> str:
    """`<image_id>#<facet>#<round>`, each part sanitized: the same triple, the same id."""
    if round < 0:
        raise ValueError(f"round must be >= 0, got {round}")
    return f"{sanitize_id(image_id)}#{sanitize_part(facet)}#{round}"


class Vote(BaseModel):
    """One person's answer to one task. `assignment_id` is unique per answer (MTurk assignment,
    A2I loop and answer index, staff answer number)."""

    # defer_build: validators are built on first use, so a Lambda builds only those it
    # uses, after its cold-start import (bench/cold_start.py).
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    worker_id: str = Field(min_length=1)
    label: str
    assignment_id: str = Field(min_length=1)
    at: datetime = Field(default_factory=utcnow)


class RelabelTask(BaseModel):
    """One question to people: which of `allowed` is this image's `facet`?"""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    task_id: str
    image_id: str
    facet: str
    round: int = Field(ge=0)
    allowed: tuple[str, ...]  # the facet's labels in taxonomy order
    current_label: str | None  # the label at publish time
    label_version: int = Field(ge=0)  # LabelRecord.version at publish time
    # The product's other photos that carried `current_label` at publish time: a facet is the
    # product's, so the decision is theirs too (unless people changed one since).
    siblings: tuple[str, ...] = ()
    suggested: str  # the model's label
    confidence: Probability  # the model's probability of `suggested`
    provider: Provider
    external_id: str | None = None  # HIT id, human loop name; None for internal/simulated
    status: TaskStatus = "open"
    votes: tuple[Vote, ...] = ()
    max_assignments: int = Field(ge=1)
    outcome: str | None = None
    outcome_posterior: Probability | None = None
    # What happened that people should know: the last collect failure of this task, why it
    # was escalated or closed. `failures` counts the collect passes that failed on it.
    note: str | None = Field(default=None, max_length=1000)
    failures: int = Field(default=0, ge=0)
    version: int = Field(default=1, ge=1)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _labels_are_allowed(self) -> RelabelTask:
        if len(self.allowed) < 2 or len(set(self.allowed)) != len(self.allowed):
            raise ValueError(f"allowed must list at least two distinct labels, got {self.allowed}")
        if self.task_id != task_id_for(self.image_id, self.facet, self.round):
            raise ValueError(f"task_id {self.task_id!r} does not match (image, facet, round)")
        if self.image_id in self.siblings or len(set(self.siblings)) != len(self.siblings):
            raise ValueError("siblings must be other images than the task's, each once")
        named = {
            "current_label": self.current_label,
            "suggested": self.suggested,
            "outcome": self.outcome,
        }
        named |= {f"vote {v.assignment_id}": v.label for v in self.votes}
        for what, label in named.items():
            if label is not None and label not in self.allowed:
                raise ValueError(f"{what} {label!r} is not one of {', '.join(self.allowed)}")
        return self

    @classmethod
    def new(
        cls,
        *,
        image_id: str,
        facet: str,
        round: int,
        allowed: tuple[str, ...] | list[str],
        current_label: str | None,
        label_version: int,
        suggested: str,
        confidence: float,
        provider: Provider,
        max_assignments: int,
        siblings: tuple[str, ...] | list[str] = (),
    ) -> RelabelTask:
        """A new open task at version 1, its id derived from (image, facet, round)."""
        return cls(
            task_id=task_id_for(image_id, facet, round),
            image_id=image_id,
            facet=facet,
            round=round,
            allowed=tuple(allowed),
            current_label=current_label,
            label_version=label_version,
            suggested=suggested,
            confidence=confidence,
            provider=provider,
            max_assignments=max_assignments,
            siblings=tuple(siblings),
        )


def next_version(task: RelabelTask, expected_version: int) -> RelabelTask:
    """The task as `TaskStore.update` stores it, validated again (a `model_copy` made by the
    caller skips validation). Shared by the adapters so they agree."""
    fields = task.model_dump()
    return RelabelTask.model_validate(
        {**fields, "version": expected_version + 1, "updated_at": utcnow()}
    )
