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
import random
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

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


@pytest.fixture
def recording_jobs():
    """A fresh `RecordingJobRunner`: the requests a test's code submitted."""
    return RecordingJobRunner()


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


# --- Tiny facet catalogs: 48 px photos whose sleeve label is visible (the dress colour) and whose
# other facets are random, registered in real local ports --------------------------------------

SLEEVE_COLORS = [(220, 30, 30), (30, 160, 30), (30, 30, 220), (200, 200, 30), (160, 30, 160)]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads slow tiny
    models down tenfold when another process is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo(sleeve_index: int, size: int = 48, seed: int = 0) -> bytes:
    """A JPEG with a dress-like rectangle coloured after the sleeve class."""
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    x0, y0 = rng.randint(2, size // 4), rng.randint(2, size // 4)
    x1, y1 = rng.randint(3 * size // 4, size - 2), rng.randint(3 * size // 4, size - 2)
    draw.rectangle((x0, y0, x1, y1), fill=SLEEVE_COLORS[sleeve_index])
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def tiny_ports(home: Path):
    from shared.backends import build_ports
    from shared.env import Settings

    return build_ports(Settings(home=home))


def add_images(ports, n: int, *, seed: int = 0, size: int = 48, test_every: int = 4) -> list:
    """Register `n` photos (every `test_every`-th product in the test split); one in five has
    an unknown neckline. Returns the records."""
    from shared.records import LabelRecord

    rng = random.Random(seed)
    sleeves = ports.taxonomy.labels("sleeve")
    necklines = ports.taxonomy.labels("neckline")
    records = []
    for i in range(n):
        sleeve = i % len(sleeves)
        key = f"catalog/p{i}/img.jpg"
        ports.catalog.put(key, photo(sleeve, size, seed=seed * 1000 + i))
        record = LabelRecord(
            image_id=f"p{i}/img",
            product_id=f"p{i}",
            object_key=key,
            split="test" if i % test_every == 0 else "train",
            facets={
                "sleeve": sleeves[sleeve],
                "neckline": None if i % 5 == 0 else rng.choice(necklines),
            },
            bbox=(1.0, 1.0, size - 1.0, size - 1.0),
            width=size,
            height=size,
        )
        ports.labels.register(record)
        records.append(record)
    return records


def add_corrupt(ports, image_id: str = "bad/img") -> str:
    """A registered record whose object is a truncated JPEG."""
    from shared.records import LabelRecord

    key = f"catalog/{image_id}.jpg"
    ports.catalog.put(key, photo(0)[:200])
    ports.labels.register(
        LabelRecord(
            image_id=image_id,
            product_id=image_id.split("/")[0],
            object_key=key,
            split="train",
            facets={"sleeve": "cap"},
        )
    )
    return key


def register_untrained_model(ports, *, image_size: int = 32, facets=("sleeve",)) -> str:
    """Save and promote a randomly initialised facet model (for inference plumbing tests)."""
    import torch

    from batch_jobs.facets.preprocess import PreprocessConfig
    from batch_jobs.models import create_model
    from batch_jobs.train import default_args, model_files
    from shared.registry import ModelKind, ModelRegistry
    from shared.taxonomy import Taxonomy

    taxonomy = Taxonomy({f: ports.taxonomy.labels(f) for f in facets})
    torch.manual_seed(0)
    model = create_model(
        ModelKind.FACETS, "resnet18", heads={f: len(taxonomy.labels(f)) for f in facets}
    )
    args = default_args(image_size=image_size, facets=list(facets))
    files = model_files(
        model, PreprocessConfig(image_size=image_size), taxonomy, {"test_macro_f1": 0.5}, args
    )
    registry = ModelRegistry(ports.artifacts)
    version = registry.new_version("facets")
    registry.save("facets", version, files)
    registry.promote("facets", version, metric="test_macro_f1")
    return version


# --- Locator photos: a dark rectangle (the dress) on a light background ------------------------

LOCATOR_SIZE = 64


def drawn_photo(rng: random.Random, size: int = LOCATOR_SIZE) -> tuple[Image.Image, tuple]:
    img = Image.new("RGB", (size, size), tuple(rng.randint(150, 255) for _ in range(3)))
    w, h = rng.randint(size // 5, size // 2), rng.randint(size // 3, int(size * 0.8))
    x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
    ImageDraw.Draw(img).rectangle(
        (x0, y0, x0 + w - 1, y0 + h - 1), fill=tuple(rng.randint(0, 110) for _ in range(3))
    )
    return img, (x0, y0, x0 + w, y0 + h)


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def quick_args(**overrides):
    """Locator training arguments for `drawn_photo` catalogs."""
    from batch_jobs.locator.train import default_args

    # float32: bfloat16 kernels cost more than they save on 64-pixel images (one test uses it).
    return default_args(
        **{"input_size": LOCATOR_SIZE, "epochs": 12, "batch_size": 16, "amp": False, **overrides}
    )


# The helpers above, handed to tests as fixtures of the same name (tests never import them).


@pytest.fixture(scope="session", name="photo")
def photo_fixture():
    return photo


@pytest.fixture(scope="session", name="tiny_ports")
def tiny_ports_fixture():
    return tiny_ports


@pytest.fixture(scope="session", name="add_images")
def add_images_fixture():
    return add_images


@pytest.fixture(scope="session", name="add_corrupt")
def add_corrupt_fixture():
    return add_corrupt


@pytest.fixture(scope="session", name="register_untrained_model")
def register_untrained_model_fixture():
    return register_untrained_model


@pytest.fixture(scope="session", name="drawn_photo")
def drawn_photo_fixture():
    return drawn_photo


@pytest.fixture(scope="session", name="png")
def png_fixture():
    return png


@pytest.fixture(scope="session", name="quick_args")
def quick_args_fixture():
    return quick_args


@pytest.fixture(scope="session")
def locator_size() -> int:
    """The side of a `drawn_photo`, and the locator's input size in `quick_args`."""
    return LOCATOR_SIZE


def moto_batch_queue(job: str, region: str = "us-east-1") -> tuple[str, str]:
    """A job queue and the `dv-<job>` job definition (`python -m batch_jobs.<job>`) on moto's
    AWS Batch (inside `mock_aws`): (queue ARN, definition ARN)."""
    import boto3

    iam = boto3.client("iam", region_name=region)
    role = iam.create_role(
        RoleName="batch-service",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    batch = boto3.client("batch", region_name=region)
    environment = batch.create_compute_environment(
        computeEnvironmentName="gpu", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName="dv-gpu",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    definition = batch.register_job_definition(
        jobDefinitionName=f"dv-{job}",
        type="container",
        containerProperties={
            "image": "dressvision:latest",
            "vcpus": 1,
            "memory": 512,
            "command": ["python", "-m", f"batch_jobs.{job}"],
        },
    )
    return queue["jobQueueArn"], definition["jobDefinitionArn"]


@pytest.fixture(scope="session", name="moto_batch_queue")
def moto_batch_queue_fixture():
    return moto_batch_queue
