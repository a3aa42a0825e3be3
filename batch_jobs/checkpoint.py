"""Training checkpoints in the artifacts store, for every model kind (facets, locator), so a run
killed mid-way (a Spot interruption) resumes where it stopped: model, optimizer, scheduler,
gradient scaler or generator, epoch, history and args.

They live at `shared.keys.checkpoint_key(kind, run_id)`. The run id of a Batch job is its job
id, which stays the same across the retries of an interrupted job: the retry finds the
checkpoint and goes on. The local disk of a Spot instance is gone after an interruption, hence
the object store rather than a file.

Checkpoints are read with `torch.load(weights_only=True)`: tensors, numbers, strings and plain
containers only. A file that carries anything else (a pickled callable would run code on load)
is refused, so args must be stored as plain values (`plain_args`).
"""

from __future__ import annotations

import argparse
import io
import pickle
from pathlib import Path
from typing import Any

import torch

from shared.errors import ConfigurationError, NotFoundError
from shared.ports import ObjectStore


def plain_args(args: argparse.Namespace) -> dict[str, Any]:
    """`vars(args)` with paths as strings: what a weights-only checkpoint can hold."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}


def serialize(state: dict[str, Any]) -> bytes:
    """`state` (state dicts, epoch, args as a plain dict) as bytes: a consistent copy that
    training may go on changing afterwards."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(store: ObjectStore, key: str, state: dict[str, Any] | bytes) -> None:
    """Write a checkpoint at `key`, replacing the previous one (one put: never half written)."""
    body = state if isinstance(state, bytes) else serialize(state)
    store.put(key, body, content_type="application/octet-stream")


def load_checkpoint(store: ObjectStore, key: str) -> dict[str, Any] | None:
    """The checkpoint at `key`, or None when there is none. Raises ConfigurationError when the
    file holds more than tensors and plain values (it is never executed)."""
    try:
        body = store.get(key).body
    except NotFoundError:
        return None
    try:
        return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ConfigurationError(
            f"refusing the checkpoint at {key}: it is not a weights-only training checkpoint "
            f"({str(exc).splitlines()[0]}); delete it to train afresh"
        ) from exc


def delete_checkpoint(store: ObjectStore, key: str) -> None:
    """Remove a finished run's checkpoint (the registry holds the model from then on)."""
    store.delete(key)
