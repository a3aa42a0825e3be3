"""A small embedded catalog with a trained-looking facet model, written through the ports.

No torch: the "model" is its metrics.json and its stored predictions, which is all the web app
reads. Deterministic for a seed. Used by the web tests and by `bench/web.py` (10,000 images).
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image

from shared.backends import build_ports
from shared.env import Settings
from shared.keys import catalog_key
from shared.ports import Ports
from shared.records import FacetPrediction, ImageStatus, LabelRecord, PredictionRecord
from shared.registry import ModelKind, ModelRegistry
from shared.relabel import oof_version
from shared.tasks import RelabelTask
from web.auth import AuthConfig

OLD_VERSION = "20261101T000000Z"
VERSION = "20261130T120000Z"
WIDTH, HEIGHT = 60, 80


@dataclass
class FakeCatalog:
    ports: Ports
    version: str
    image_ids: list[str]
    task_id: str


def photo(seed: int) -> bytes:
    buffer = io.BytesIO()
    rng = random.Random(seed)
    Image.new("RGB", (WIDTH, HEIGHT), tuple(rng.randrange(256) for _ in range(3))).save(
        buffer, "JPEG", quality=80
    )
    return buffer.getvalue()


def _probs(rng: random.Random, k: int, top: int) -> list[float]:
    raw = [rng.random() * 0.2 for _ in range(k)]
    raw[top] += 2.0 + rng.random() * 2
    total = sum(raw)
    return [x / total for x in raw]


def _report(pairs: list[tuple[int, int]], labels: tuple[str, ...]) -> dict:
    """The figures batch_jobs/facets/metrics.py writes, computed by hand."""
    k = len(labels)
    confusion = [[0] * k for _ in range(k)]
    for true, pred in pairs:
        confusion[true][pred] += 1
    per_class, f1s = {}, []
    for i, label in enumerate(labels):
        tp = confusion[i][i]
        predicted = sum(confusion[r][i] for r in range(k))
        support = sum(confusion[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support or predicted:
            f1s.append(f1)
    correct = sum(confusion[i][i] for i in range(k))
    return {
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "accuracy": correct / len(pairs) if pairs else 0.0,
        "per_class": per_class,
        "confusion": confusion,
    }


def build_catalog(home: Path, n_images: int = 24, *, seed: int = 0) -> FakeCatalog:
    """`n_images` photos (two per product, every tenth product in the test split, the last
    image invalid), labelled, predicted by a model right 75% of the time, one open task."""
    rng = random.Random(seed)
    ports = build_ports(Settings(home=home))
    taxonomy = ports.taxonomy
    body = photo(seed)
    records = []
    for i in range(n_images):
        product = f"p{i // 2:05d}"
        image_id = f"{product}/img{i}"
        invalid = i == n_images - 1
        record = LabelRecord(
            image_id=image_id,
            product_id=product,
            object_key=catalog_key(product, f"img{i}.jpg"),
            split="test" if (i // 2) % 5 == 0 else "train",
            facets={f: rng.choice(taxonomy.labels(f)) for f in taxonomy.facet_names},
            bbox=None if invalid else (8.0, 10.0, 50.0, 72.0),
            width=WIDTH,
            height=HEIGHT,
            status=ImageStatus.INVALID if invalid else ImageStatus.OK,
            reason="cannot decode the photo: truncated JPEG" if invalid else None,
        )
        ports.catalog.put(record.object_key, body, content_type="image/jpeg")
        ports.labels.register(record)
        records.append(record)

    predictions, oof, pairs = (
        [],
        [],
        {s: {f: [] for f in taxonomy.facet_names} for s in ("train", "test")},
    )
    for record in records:
        if record.status != ImageStatus.OK:
            continue
        facets = {}
        for facet in taxonomy.facet_names:
            labels = taxonomy.labels(facet)
            true = taxonomy.index(facet, record.facets[facet])
            top = (
                true
                if rng.random() < 0.75
                else rng.choice([i for i in range(len(labels)) if i != true])
            )
            probs = _probs(rng, len(labels), top)
            facets[facet] = FacetPrediction(label=labels[top], prob=probs[top], probs=probs)
            pairs[record.split][facet].append((true, top))
        prediction = PredictionRecord(
            image_id=record.image_id,
            model_version=VERSION,
            facets=facets,
            bbox=(10.0, 12.0, 48.0, 70.0),
            bbox_score=0.9,
        )
        predictions.append(prediction)
        if record.split == "train":
            oof.append(prediction.model_copy(update={"model_version": oof_version(VERSION)}))
    ports.predictions.put_many(predictions)
    ports.predictions.put_many(oof)

    registry = ModelRegistry(ports.artifacts)
    splits = {
        split: {f: _report(pairs[split][f], taxonomy.labels(f)) for f in taxonomy.facet_names}
        for split in ("train", "test")
    }
    for version, shift in ((OLD_VERSION, 0.1), (VERSION, 0.0)):
        mean = {
            f"{s}_macro_f1": max(
                0.0, sum(r["macro_f1"] for r in splits[s].values()) / len(splits[s]) - shift
            )
            for s in splits
        }
        metrics = {"version": version, "splits": splits, **mean}
        registry.save(ModelKind.FACETS, version, {"metrics.json": json.dumps(metrics).encode()})
        registry.promote(ModelKind.FACETS, version, metric="test_macro_f1")

    first = records[0]
    facet = taxonomy.facet_names[0]
    labels = taxonomy.labels(facet)
    task = RelabelTask.new(
        image_id=first.image_id,
        facet=facet,
        round=1,
        allowed=labels,
        current_label=first.facets[facet],
        label_version=1,
        suggested=next(lb for lb in labels if lb != first.facets[facet]),
        confidence=0.9,
        provider="internal",
        max_assignments=1,
    )
    ports.tasks.create(task)
    return FakeCatalog(ports, VERSION, [r.image_id for r in records], task.task_id)


SECRET = b"test-secret-of-32-bytes-at-least!"


def make_client(app, auth: AuthConfig, role: str | None) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    if role is not None:
        token = f"token-{role}"
        auth.sign_in_tokens[token] = role
        response = client.get("/signin", params={"token": token})
        assert response.status_code == 303
    return client


def csrf_of(html: str) -> str:
    import re

    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)
