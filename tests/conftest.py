"""Fixtures shared across the test tree: fake AWS credentials, tiny images, event files."""

from __future__ import annotations

import io
import json
import os
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
