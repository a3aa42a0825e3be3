"""The ingest handler on the embedded adapters: validation, idempotence, partial failures,
manifests and job submission."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lambdas import ingest
from local.runtime import s3_notification
from shared.backends import build_ports
from shared.catalog import CatalogEntry
from shared.env import Settings
from shared.errors import JobSubmissionError
from shared.ids import assign_split
from shared.inference import flush_pending
from shared.keys import PENDING_INFERENCE_PREFIX, current_model_key
from shared.messages import JobRequest
from shared.ports import JobRunner
from shared.records import FacetPrediction, ImageStatus, LabelSource, PredictionRecord


class RecordingJobRunner(JobRunner):
    """A JobRunner that records requests (and can be told to fail)."""

    def __init__(self):
        self.requests: list[JobRequest] = []
        self.fail = False

    def submit(self, request: JobRequest) -> str:
        if self.fail:
            raise JobSubmissionError("queue unavailable")
        self.requests.append(request)
        return f"job-{len(self.requests)}"


@pytest.fixture
def ports(tmp_path):
    settings = Settings(home=tmp_path, infer_shard_size=2)
    return replace(build_ports(settings), jobs=RecordingJobRunner())


def sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {"messageId": f"m{i}", "body": body, "attributes": {}, "eventSource": "aws:sqs"}
            for i, body in enumerate(bodies)
        ]
    }


def upload(ports, key, body, entry: CatalogEntry | None = None) -> str:
    """Put an object and return the SQS message body S3 would send."""
    info = ports.catalog.put(key, body, metadata=entry.to_metadata() if entry else None)
    return json.dumps(s3_notification(ports.catalog.name, info))


def promote_model(ports, version="v1"):
    ports.artifacts.put(current_model_key("facets"), json.dumps({"version": version}).encode())


def test_s3_test_events_are_skipped(ports, load_event):
    response = ingest.handle_sqs_batch(load_event("s3_test_event_via_sqs.json"), ports)
    assert response == {"batchItemFailures": []}
    assert list(ports.labels.scan()) == []


def test_url_encoded_keys_are_decoded_and_images_registered(ports, make_jpeg):
    body = upload(ports, "catalog/p 1/summer dress (1).jpg", make_jpeg((40, 60)))
    assert "summer+dress+%281%29.jpg" in body  # S3 encodes keys in notifications
    assert ingest.handle_sqs_batch(sqs_event(body), ports) == {"batchItemFailures": []}
    record = ports.labels.get("p-1/summer-dress-1")
    assert record.status == ImageStatus.OK
    assert (record.width, record.height) == (40, 60)
    assert record.object_key == "catalog/p 1/summer dress (1).jpg"
    assert record.split == assign_split(
        "p-1", ports.settings.test_fraction, ports.settings.split_salt
    )  # the product's split: every photo of it lands on the same side


def test_catalog_labels_travel_with_the_upload(ports, make_jpeg):
    entry = CatalogEntry(
        image_id="p2/front",
        product_id="p2",
        facets={"neckline": "halter", "occasion": None},
        bbox=(2, 3, 30, 50),
    )
    ingest.handle_sqs_batch(
        sqs_event(upload(ports, "catalog/p2/front.jpg", make_jpeg(), entry)), ports
    )
    record = ports.labels.get("p2/front")
    assert record.facets["neckline"] == "halter"
    assert record.sources == {"neckline": LabelSource.CATALOG}
    assert record.bbox == (2, 3, 30, 50)


def test_redelivery_and_reupload_never_duplicate_nor_reset(ports, make_jpeg):
    entry = CatalogEntry(image_id="p3/a", product_id="p3", facets={"sleeve": "long"})
    body = upload(ports, "catalog/p3/a.jpg", make_jpeg(), entry)
    ingest.handle_sqs_batch(sqs_event(body), ports)
    first = ports.labels.get("p3/a")
    # Staff fix the label; then the same message is redelivered and the photo re-uploaded.
    ports.labels.update_label(
        "p3/a", "sleeve", "short", source=LabelSource.STAFF, expected_version=first.version
    )
    ingest.handle_sqs_batch(sqs_event(body, body), ports)
    reupload = upload(ports, "catalog/p3/a.jpg", make_jpeg(color=(1, 2, 3)), entry)
    ingest.handle_sqs_batch(sqs_event(reupload), ports)

    records = list(ports.labels.scan())
    assert [r.image_id for r in records] == ["p3/a"]
    final = records[0]
    assert final.split == first.split
    assert final.facets["sleeve"] == "short"  # the person's correction stands
    assert final.etag != first.etag  # the new bytes were registered
    assert final.version == first.version + 2  # staff change + re-upload, not the redeliveries


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am a text file", "not an image"),
        ("truncated", "truncated"),
    ],
)
def test_invalid_files_are_recorded_with_their_reason(ports, make_jpeg, body, reason):
    if body == "truncated":
        body = make_jpeg((64, 64))[:-200]
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p4/bad.jpg", body)), ports)
    record = ports.labels.get("p4/bad")
    assert record.status == ImageStatus.INVALID
    assert reason in record.reason


def test_a_box_outside_the_image_makes_it_invalid(ports, make_jpeg):
    entry = CatalogEntry(image_id="p5/a", product_id="p5", bbox=(0, 0, 500, 500))
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p5/a.jpg", make_jpeg(), entry)), ports)
    assert "outside" in ports.labels.get("p5/a").reason


def test_a_poison_message_fails_alone(ports, make_jpeg):
    good = upload(ports, "catalog/p6/a.jpg", make_jpeg())
    response = ingest.handle_sqs_batch(sqs_event(good, "{not json", '{"Records": [{}]}'), ports)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert ports.labels.get("p6/a") is not None


def test_non_catalog_keys_are_ignored(ports, make_jpeg):
    body = upload(ports, "uploads/tmp/a.jpg", make_jpeg())
    assert ingest.handle_sqs_batch(sqs_event(body), ports) == {"batchItemFailures": []}
    assert list(ports.labels.scan()) == []


def test_no_inference_job_before_a_model_exists(ports, make_jpeg):
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p7/a.jpg", make_jpeg())), ports)
    assert flush_pending(ports) == []
    assert ports.jobs.requests == []


def test_a_current_model_gets_a_manifest_and_an_array_job(ports, make_jpeg):
    promote_model(ports)
    bodies = [upload(ports, f"catalog/p8/{i}.jpg", make_jpeg()) for i in range(3)]
    bodies.append(upload(ports, "catalog/p8/broken.jpg", b"nope"))
    ingest.handle_sqs_batch(sqs_event(*bodies), ports)
    assert ports.jobs.requests == []  # ingest only queues; the window's flush submits
    assert flush_pending(ports) == ["job-1"]

    (request,) = ports.jobs.requests
    assert request.name == "infer"
    assert request.array_size == 2  # 3 valid images, 2 per shard
    manifest_key = request.args[request.args.index("--manifest") + 1]
    lines = ports.artifacts.get(manifest_key).body.decode().splitlines()
    assert sorted(json.loads(line)["image_id"] for line in lines) == ["p8/0", "p8/1", "p8/2"]
    assert {json.loads(line)["bucket"] for line in lines} == {ports.catalog.name}


def test_a_failed_flush_loses_nothing_and_the_next_one_submits(ports, make_jpeg):
    promote_model(ports, "v1")
    body = upload(ports, "catalog/p9/a.jpg", make_jpeg())
    assert ingest.handle_sqs_batch(sqs_event(body), ports)["batchItemFailures"] == []
    ports.jobs.fail = True
    with pytest.raises(JobSubmissionError):
        flush_pending(ports)
    assert list(ports.artifacts.list(PENDING_INFERENCE_PREFIX))  # still pending
    ports.jobs.fail = False
    ingest.handle_sqs_batch(sqs_event(body), ports)  # a redelivery rewrites the same piece
    assert flush_pending(ports) == ["job-1"]
    assert list(ports.artifacts.list(PENDING_INFERENCE_PREFIX)) == []
    assert flush_pending(ports) == []

    # Once predicted, a redelivery queues nothing more.
    probs = FacetPrediction(label="crew", prob=0.9, probs=[0.02, 0.9, 0.03, 0.03, 0.02])
    ports.predictions.put(
        PredictionRecord(image_id="p9/a", model_version="v1", facets={"neckline": probs})
    )
    ingest.handle_sqs_batch(sqs_event(body), ports)
    assert flush_pending(ports) == []
    assert len(ports.jobs.requests) == 1


def test_a_window_larger_than_the_limit_makes_one_job_per_window_images(ports, make_jpeg):
    ports = replace(ports, settings=replace(ports.settings, infer_window_images=3))
    promote_model(ports)
    for batch in range(4):  # 4 ingest batches of 2 photos: 8 images pending
        bodies = [upload(ports, f"catalog/q{batch}/{i}.jpg", make_jpeg()) for i in range(2)]
        ingest.handle_sqs_batch(sqs_event(*bodies), ports)
    assert flush_pending(ports) == ["job-1", "job-2", "job-3"]  # 3 + 3 + 2 images
    assert [r.array_size for r in ports.jobs.requests] == [2, 2, None]  # shards of 2
