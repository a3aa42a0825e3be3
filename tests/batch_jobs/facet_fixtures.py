"""Tiny labelled catalogs for the facet tests: 48 px photos whose sleeve label is visible (the
dress colour) and whose other facets are random, registered in real local ports."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from shared.backends import build_ports
from shared.env import Settings
from shared.ports import Ports
from shared.records import LabelRecord

SLEEVE_COLORS = [(220, 30, 30), (30, 160, 30), (30, 30, 220), (200, 200, 30), (160, 30, 160)]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP's spinning threads slow tiny
    models down tenfold when another process is busy."""
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


def tiny_ports(home: Path) -> Ports:
    return build_ports(Settings(home=home))


def add_images(
    ports: Ports, n: int, *, seed: int = 0, size: int = 48, test_every: int = 4
) -> list[LabelRecord]:
    """Register `n` photos (every `test_every`-th product in the test split); one in five has
    an unknown neckline. Returns the records."""
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


def add_corrupt(ports: Ports, image_id: str = "bad/img") -> str:
    """A registered record whose object is a truncated JPEG."""
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


def register_untrained_model(ports: Ports, *, image_size: int = 32, facets=("sleeve",)) -> str:
    """Save and promote a randomly initialised facet model (for inference plumbing tests)."""
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
