"""Training checkpoints in the artifacts store, so a run killed mid-way (a Spot interruption)
resumes where it stopped: model, optimizer, scheduler, gradient scaler, epoch and args.

They live under `checkpoints/facets/<run id>/checkpoint.pt`. The run id of a Batch job is its
job id, which stays the same across the retries of an interrupted job: the retry finds the
checkpoint and goes on. The local disk of a Spot instance is gone after an interruption, hence
the object store rather than a file.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from shared import keys
from shared.errors import NotFoundError
from shared.ports import ObjectStore
from shared.registry import ModelKind

CHECKPOINT_PREFIX = keys.checkpoints_prefix(ModelKind.FACETS)


def checkpoint_key(run_id: str) -> str:
    return keys.checkpoint_key(ModelKind.FACETS, run_id)


def serialize(state: dict[str, Any]) -> bytes:
    """`state` (state dicts, epoch, args as a plain dict) as bytes: a consistent copy that
    training may go on changing afterwards."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(store: ObjectStore, key: str, state: dict[str, Any] | bytes) -> None:
    """Write a checkpoint at `key`, replacing the previous one."""
    body = state if isinstance(state, bytes) else serialize(state)
    store.put(key, body, content_type="application/octet-stream")


def load_checkpoint(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The checkpoint at `key`, or None when there is none. Tensors only (no pickled code)."""
    try:
        body = store.get(key).body
    except NotFoundError:
        return None
    return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)


def delete_checkpoint(store: ObjectStore, key: str) -> None:
    """Remove a finished run's checkpoint (the registry holds the model from then on)."""
    store.delete(key)
