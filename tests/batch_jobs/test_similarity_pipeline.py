"""The pipeline keeps the similarity indexes current: the infer job embeds what it tags and
upserts both indexes, an unreadable image leaves them, an image re-uploaded invalid leaves
them, a newly promoted embedder re-embeds the catalog; and the embedder trains end to end."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from batch_jobs.facets.predictor import FacetTagger
from batch_jobs.infer import get_args_parser, main
from batch_jobs.similarity.model import EmbeddingNet
from lambdas import batch_events
from lambdas.ingest import ingest_object
from shared.keys import EMBEDDING_DIMENSIONS, manifest_key
from shared.messages import BatchJobStateChange, ManifestEntry
from shared.records import ImageStatus, LabelRecord
from shared.registry import ModelRegistry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ports(tmp_path, tiny_ports):
    return tiny_ports(tmp_path)


def register_untrained_embedder(ports, image_size: int = 32) -> str:
    from batch_jobs.facets.preprocess import PreprocessConfig

    torch.manual_seed(1)
    net = EmbeddingNet("resnet18", EMBEDDING_DIMENSIONS["supervised"])
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    registry = ModelRegistry(ports.artifacts)
    version = registry.new_version("similarity")
    files = {
        "weights.pt": buffer.getvalue(),
        "preprocess.json": PreprocessConfig(image_size=image_size).to_json(),
        "metrics.json": json.dumps({"test": {"supervised": {"recall_at_5": 0.5}}}).encode(),
        "args.json": json.dumps({"arch": "resnet18", "dim": net.dim}).encode(),
    }
    registry.save("similarity", version, files)
    registry.promote("similarity", version, metric="test.supervised.recall_at_5")
    return version


def run_infer(ports, entries) -> None:
    key = manifest_key("m1")
    ports.artifacts.put(key, "".join(e.model_dump_json() + "\n" for e in entries).encode())
    assert main(get_args_parser().parse_args(["--manifest", key]), ports) == 0


def entries_of(ports, records):
    return [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key)
        for r in records
    ]


@pytest.mark.slow
def test_infer_embeds_what_it_tags_into_both_indexes(
    ports, capsys, add_images, register_untrained_model
):
    facet_version = register_untrained_model(ports)
    embedder_version = register_untrained_embedder(ports)
    records = add_images(ports, 4)

    run_infer(ports, entries_of(ports, records))

    report = json.loads(capsys.readouterr().out)
    assert report["embedded"] == {"unsupervised": 4, "supervised": 4}
    ids = [r.image_id for r in records]
    unsupervised = ports.vectors("unsupervised").get(ids)
    supervised = ports.vectors("supervised").get(ids)
    assert set(unsupervised) == set(supervised) == set(ids)
    for record in records:
        prediction = ports.predictions.get(record.image_id, facet_version)
        for stored, version, dim in (
            (unsupervised[record.image_id], facet_version, 512),
            (supervised[record.image_id], embedder_version, 128),
        ):
            assert len(stored.vector) == dim
            assert np.linalg.norm(stored.vector) == pytest.approx(1.0, abs=1e-4)
            assert stored.metadata == {
                "product_id": record.product_id,
                "split": record.split,
                "model_version": version,
                "sleeve": prediction.facets["sleeve"].label,
            }
    # The unsupervised vector is the facet model's pooled features of the same input.
    tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts), device="cpu", amp=False)
    from PIL import Image

    photo = Image.open(io.BytesIO(ports.catalog.get(records[0].object_key).body)).convert("RGB")
    prepared, _, _ = tagger.prepare([photo])
    from batch_jobs.facets.preprocess import to_model_input

    with torch.inference_mode():
        features = tagger.model.forward_features(to_model_input(prepared, tagger.config))
    expected = torch.nn.functional.normalize(features, dim=1)[0].numpy()
    assert np.dot(expected, unsupervised[records[0].image_id].vector) > 0.99


def test_an_image_that_can_no_longer_be_read_leaves_the_indexes(
    ports, add_corrupt, add_images, register_untrained_model
):
    register_untrained_model(ports)
    key = add_corrupt(ports)
    for kind, dim in EMBEDDING_DIMENSIONS.items():
        ports.vectors(kind).upsert(["bad/img"], [np.ones(dim)], [{"product_id": "bad"}])
    good = add_images(ports, 1)

    run_infer(
        ports,
        [
            ManifestEntry(image_id="bad/img", bucket=ports.catalog.name, key=key),
            *entries_of(ports, good),
        ],
    )

    for kind in EMBEDDING_DIMENSIONS:
        assert ports.vectors(kind).get(["bad/img"]) == {}
    assert set(ports.vectors("unsupervised").ids()) == {good[0].image_id}


def test_a_reupload_that_would_break_an_image_keeps_it_and_its_vectors(ports, make_jpeg):
    """A bad re-upload never destroys the good photo (the catalog keeps versions), so the
    image stays valid and stays similar; only an image that can no longer be read leaves."""
    key = "catalog/p1/a.jpg"
    ports.catalog.put(key, make_jpeg())
    assert ingest_object(ports, key).status == ImageStatus.OK
    ports.vectors("supervised").upsert(["p1/a"], [np.ones(128)], [{"product_id": "p1"}])

    ports.catalog.put(key, b"not an image at all")
    result = ingest_object(ports, key)

    assert result.status == ImageStatus.INVALID  # this upload was refused
    assert ports.labels.get("p1/a").status == ImageStatus.OK
    assert set(ports.vectors("supervised").get(["p1/a"])) == {"p1/a"}


def test_a_newly_promoted_embedder_re_embeds_the_catalog(
    ports, add_images, register_untrained_model, load_event, recording_jobs
):
    ports = replace(ports, jobs=recording_jobs)
    register_untrained_model(ports)
    add_images(ports, 2)
    event = load_event("batch_job_state_change_succeeded.json")
    event["detail"]["container"]["command"] = ["python", "-m", "batch_jobs.train"]
    trained = BatchJobStateChange.model_validate(event)

    assert batch_events.on_job_state_change(ports, trained).startswith("re-inference")
    assert batch_events.on_job_state_change(ports, trained).startswith("catalog already")
    register_untrained_embedder(ports)  # `train --what similarity` promoted one
    assert batch_events.on_job_state_change(ports, trained).startswith("re-inference")
    assert [r.name for r in ports.jobs.requests] == ["infer", "infer"]


@pytest.mark.slow
def test_the_embedder_trains_evaluates_and_is_promoted(
    ports, add_images, photo, register_untrained_model
):
    from batch_jobs.similarity.train import train_similarity
    from batch_jobs.train import default_args

    register_untrained_model(ports)
    records = add_images(ports, 6, test_every=3)
    for i in range(6):  # a second photo of every product: the same dress, moved a little
        key = f"catalog/p{i}/img2.jpg"
        ports.catalog.put(key, photo(i % 5, 48, seed=900 + i))
        ports.labels.register(
            LabelRecord(
                image_id=f"p{i}/img2",
                product_id=f"p{i}",
                object_key=key,
                split=records[i].split,
                facets={"sleeve": records[i].facets["sleeve"]},
            )
        )
    args = default_args(sim_epochs=1, sim_products=4, sim_photos=2, workers=1, device="cpu")

    result = train_similarity(args, ports)

    registry = ModelRegistry(ports.artifacts)
    assert result.promoted and registry.current("similarity") == result.version
    metrics = registry.metrics("similarity", result.version)
    for kind in ("supervised", "unsupervised"):
        figures = metrics["test"][kind]
        assert figures["queries"] == 4  # p0 and p3, two photos each
        assert 0.0 <= figures["recall_at_1"] <= figures["recall_at_5"] <= 1.0
    saved = set(json.loads(registry.read("similarity", result.version, "saved.json"))["files"])
    assert saved == {"weights.pt", "preprocess.json", "metrics.json", "args.json"}


def test_the_training_job_routes_what_and_explains_a_missing_facet_model(ports, capsys):
    from batch_jobs.train import get_args_parser as train_parser
    from batch_jobs.train import main as train_main

    assert train_parser().parse_args([]).what == "facets"  # today's behaviour by default
    args = train_parser().parse_args(["--what", "similarity"])

    assert train_main(args, ports) == 2
    assert "train it first" in capsys.readouterr().err
    assert ModelRegistry(ports.artifacts).versions("similarity") == []


def test_evaluate_reports_both_embedders_on_the_test_split(
    ports, add_images, photo, register_untrained_model
):
    from batch_jobs.facets.data import prepare_records
    from batch_jobs.similarity.evaluate import evaluate_current

    register_untrained_model(ports)
    embedder = register_untrained_embedder(ports)
    add_images(ports, 6, test_every=2)  # p0, p2, p4 in the test split
    for i in (0, 2):  # a second photo of two test products: two queries each
        key = f"catalog/p{i}/img2.jpg"
        ports.catalog.put(key, photo(i % 5, 48, seed=700 + i))
        ports.labels.register(
            LabelRecord(image_id=f"p{i}/img2", product_id=f"p{i}", object_key=key, split="test")
        )
    tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts))
    prepared = prepare_records(
        list(ports.labels.scan()), ports.catalog, ports.settings, tagger.config
    )

    figures = evaluate_current(ports, prepared)

    assert set(figures) == {"supervised", "unsupervised"}
    assert figures["supervised"]["version"] == embedder
    assert figures["unsupervised"]["queries"] == figures["supervised"]["queries"] == 4
