"""Training checkpoints in the object store: they round-trip, and one that carries pickled code
is refused without running it (every checkpoint load is weights-only)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from batch_jobs.checkpoint import delete_checkpoint, load_checkpoint, save_checkpoint
from shared.embedded.files import LocalObjectStore
from shared.errors import ConfigurationError
from shared.keys import checkpoint_key


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "artifacts", name="artifacts")


class _Payload:
    """What a tampered checkpoint could carry: unpickling it calls `Path.touch(marker)`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_round_trips_under_its_kind_and_run(store):
    key = checkpoint_key("locator", "job-7")
    assert key == "checkpoints/locator/job-7/checkpoint.pt"
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "args": {"lr": 0.1, "weights": None}}
    save_checkpoint(store, key, state)
    loaded = load_checkpoint(store, key)
    assert loaded["epoch"] == 2 and torch.equal(loaded["model"]["w"], torch.arange(3.0))
    delete_checkpoint(store, key)
    assert load_checkpoint(store, key) is None


def test_a_checkpoint_carrying_a_pickled_callable_is_refused_unrun(store, tmp_path):
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"model": {}, "epoch": 1, "hook": _Payload(marker)}, buffer)
    key = checkpoint_key("locator", "tampered")
    store.put(key, buffer.getvalue())
    with pytest.raises(ConfigurationError, match=r"refusing the checkpoint at .*tampered.*delete"):
        load_checkpoint(store, key)
    assert not marker.exists()
    # The same file loaded the unsafe way would have run the payload: the test can fail.
    torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert marker.exists()


def test_every_torch_load_of_the_product_is_weights_only():
    repo = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("batch_jobs", "shared", "lambdas", "local", "bench"):
        for path in (repo / folder).rglob("*.py"):
            lines = path.read_text().splitlines()
            for number, line in enumerate(lines):
                call = " ".join(lines[number : number + 4])  # a call may span a few lines
                if "torch.load(" in line and "weights_only=True" not in call:
                    offenders.append(f"{path.relative_to(repo)}:{number + 1}")
    assert offenders == []
