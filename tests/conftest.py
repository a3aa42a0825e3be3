"""Fixtures shared across the test tree: fake AWS credentials, tiny images, event files, test
doubles of the job runner and the queue, a catalog with flipped labels, tiny facet catalogs and
locator photos.

Tests never import one another nor this file: what several test modules share is a fixture
here (a helper function is handed out by a fixture of the same name).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image

EVENTS = Path(__file__).parent / "events"

# pytest-xdist runs one worker per core; a torch thread pool per worker on top oversubscribes
# the cores and slows the model tests many times over. Set before any test imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials and a region, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def jpeg_bytes(size=(48, 64), color=(200, 30, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def make_jpeg():
    return jpeg_bytes


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


class RecordingJobRunner:
    """A JobRunner test double that records requests (and can be told to fail)."""

    def __init__(self):
        self.requests = []
        self.fail = False

    def submit(self, request) -> str:
        from shared.errors import JobSubmissionError

        if self.fail:
            raise JobSubmissionError("queue unavailable")
        self.requests.append(request)
        return f"job-{len(self.requests)}"


class RecordingQueue:
    def __init__(self):
        self.bodies: list[str] = []

    def send(self, body: str) -> str:
        self.bodies.append(body)
        return str(len(self.bodies))


@pytest.fixture(name="load_event", scope="session")
def load_event_fixture():
    """`load_event(name)`: a real AWS event shape from `tests/events/`."""
    return load_event


# --- A catalog with flipped labels, for the humans-in-the-loop tests ---------------------------


@dataclass(frozen=True)
class FlippedNecklines:
    """60 images of one facet; the catalog label of five is wrong, and an out-of-sample model
    (the test split's own predictions, the train split's out-of-fold ones) puts most of its
    mass on the true label."""

    facet: str = "neckline"
    labels: tuple[str, ...] = ("v-neck", "crew", "boat", "sweetheart", "halter")
    images: int = 60
    flipped: frozenset[int] = frozenset({3, 17, 28, 41, 55})

    def true_label(self, i: int) -> str:
        return self.labels[i % len(self.labels)]

    def index(self, image_id: str) -> int:
        return int(image_id.split("/")[0][1:])


@pytest.fixture
def flipped_necklines() -> FlippedNecklines:
    return FlippedNecklines()


@pytest.fixture
def relabel_ports(tmp_path, flipped_necklines):
    """Embedded ports holding `flipped_necklines` with model "v1" current; jobs and the review
    queue are recorded, not run."""
    import numpy as np

    from shared.backends import build_ports
    from shared.env import Settings
    from shared.keys import current_model_key
    from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
    from shared.relabel import oof_version

    case = flipped_necklines
    settings = Settings(home=tmp_path, retrain_threshold=3, max_assignments=3)
    p = replace(build_ports(settings), jobs=RecordingJobRunner(), review_queue=RecordingQueue())
    rng = np.random.default_rng(0)
    n_labels = len(case.labels)
    for i in range(case.images):
        given = case.labels[(i + 1) % n_labels] if i in case.flipped else case.true_label(i)
        record = LabelRecord(
            image_id=f"p{i}/0",
            product_id=f"p{i}",
            object_key=f"catalog/p{i}/0.jpg",
            split="test" if i % 4 == 0 else "train",
            facets={case.facet: given},
            sources={case.facet: LabelSource.CATALOG},
        )
        p.labels.register(record)
        # A decent out-of-sample model: most mass on the true label.
        probs = rng.dirichlet(np.ones(n_labels) * 0.3) * 0.15
        probs[i % n_labels] += 0.85
        probs = (probs / probs.sum()).tolist()
        version = "v1" if record.split == "test" else oof_version("v1")
        facet = FacetPrediction(label=case.true_label(i), prob=max(probs), probs=probs)
        p.predictions.put(
            PredictionRecord(
                image_id=record.image_id, model_version=version, facets={case.facet: facet}
            )
        )
    p.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    return p


@pytest.fixture
def crowd(flipped_necklines):
    """Seeded simulated workers who know the true labels of `flipped_necklines`."""
    from shared.workforce.simulated import SimulatedWorkforce

    def truth(image_id: str, facet: str) -> str:
        return flipped_necklines.true_label(flipped_necklines.index(image_id))

    return SimulatedWorkforce(truth, seed=3)
