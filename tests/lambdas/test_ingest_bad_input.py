"""The ingest handler against bad input (issue 11: findings 5, 6, 8, 9, 10, 17, 18, 19). Each
test names its findings."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import replace

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image

from lambdas import ingest
from local.runtime import s3_notification
from shared.aws.s3 import S3ObjectStore
from shared.backends import build_ports
from shared.catalog import METADATA_KEY, CatalogEntry
from shared.env import Settings
from shared.errors import ObjectStoreError
from shared.images import open_image
from shared.inference import flush_pending
from shared.keys import PENDING_INFERENCE_PREFIX, current_model_key
from shared.records import ImageStatus


@pytest.fixture
def ports(tmp_path, recording_jobs):
    return replace(build_ports(Settings(home=tmp_path)), jobs=recording_jobs)


def sqs_event(*bodies: str) -> dict:
    return {
        "Records": [
            {"messageId": f"m{i}", "body": body, "attributes": {}, "eventSource": "aws:sqs"}
            for i, body in enumerate(bodies)
        ]
    }


def upload(ports, key, body, metadata=None) -> str:
    info = ports.catalog.put(key, body, metadata=metadata)
    return json.dumps(s3_notification(ports.catalog.name, info))


def noisy_jpeg(size=(128, 96), **save) -> bytes:
    pixels = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def raw_entry(bbox: str, image_id="p1/a", product="p1") -> dict[str, str]:
    return {METADATA_KEY: f'{{"image_id":"{image_id}","product_id":"{product}","bbox":{bbox}}}'}


# -- findings 10 and 18: bad boxes and keys are invalid records that say what is wrong --------


@pytest.mark.parametrize(
    ("bbox", "says"),
    [
        ("[-500,-500,50,60]", "negative"),
        ("[30,40,10,20]", "reversed"),
        ("[0,0,1e999,20]", "finite"),
        ("[0,0,Infinity,20]", "finite"),
    ],
)
def test_a_bad_box_in_metadata_is_an_invalid_record_with_its_reason(ports, make_jpeg, bbox, says):
    body = upload(ports, "catalog/p1/a.jpg", make_jpeg((64, 64)), raw_entry(bbox))
    assert ingest.handle_sqs_batch(sqs_event(body), ports) == {"batchItemFailures": []}
    record = ports.labels.get("p1/a")
    assert record.status == ImageStatus.INVALID
    assert says in record.reason and "malformed" not in record.reason


def test_an_object_outside_the_key_layout_is_an_invalid_record(ports, make_jpeg):
    body = upload(ports, "catalog/loose.jpg", make_jpeg())
    assert ingest.handle_sqs_batch(sqs_event(body), ports) == {"batchItemFailures": []}
    [record] = list(ports.labels.scan())
    assert record.status == ImageStatus.INVALID
    assert "catalog/<product_id>/<image file>" in record.reason


# -- finding 8: libjpeg warnings are invalid ---------------------------------------------------


def test_a_jpeg_cut_short_with_an_end_marker_added_is_invalid(ports):
    good = noisy_jpeg()
    cut = good[: len(good) * 2 // 3] + b"\xff\xd9"
    for name, data in (("good", good), ("cut", cut)):
        ingest.handle_sqs_batch(sqs_event(upload(ports, f"catalog/p1/{name}.jpg", data)), ports)
    assert ports.labels.get("p1/good").status == ImageStatus.OK
    cut_record = ports.labels.get("p1/cut")
    assert cut_record.status == ImageStatus.INVALID
    assert "ends before the image does" in cut_record.reason


def test_a_jpeg_header_claiming_a_larger_image_is_invalid(ports):
    data = bytearray(noisy_jpeg((64, 64), progressive=True))
    sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
    data[sof + 5 : sof + 7] = struct.pack(">H", 640)  # height 64 -> 640
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p1/tall.jpg", bytes(data))), ports)
    record = ports.labels.get("p1/tall")
    assert record.status == ImageStatus.INVALID and "ends before" in record.reason


# -- finding 9: one orientation convention (upright, EXIF applied) -----------------------------


def rotated_jpeg() -> bytes:
    """Stored 40 wide x 60 high, EXIF orientation 6: shown (and trained on) 60 x 40."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (40, 60), (200, 30, 60)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_a_rotated_photo_is_measured_upright_as_training_sees_it(ports):
    data = rotated_jpeg()
    fits = CatalogEntry(image_id="p1/wide", product_id="p1", bbox=(0, 0, 58, 38))
    too_tall = CatalogEntry(image_id="p1/tall", product_id="p1", bbox=(0, 0, 38, 58))
    for entry, key in ((fits, "catalog/p1/wide.jpg"), (too_tall, "catalog/p1/tall.jpg")):
        ingest.handle_sqs_batch(sqs_event(upload(ports, key, data, entry.to_metadata())), ports)
    record = ports.labels.get("p1/wide")
    assert record.status == ImageStatus.OK and record.bbox == (0, 0, 58, 38)
    assert (record.width, record.height) == open_image(data).size == (60, 40)
    assert "outside" in ports.labels.get("p1/tall").reason


# -- finding 5: one image id, two products -----------------------------------------------------


def test_an_image_id_of_another_product_is_refused_and_the_first_kept(ports, make_jpeg):
    first = CatalogEntry(image_id="look-1", product_id="p1")
    second = CatalogEntry(image_id="look-1", product_id="p2")
    ingest.handle_sqs_batch(
        sqs_event(upload(ports, "catalog/p1/a.jpg", make_jpeg(), first.to_metadata())), ports
    )
    before = ports.labels.get("look-1")
    body = upload(ports, "catalog/p2/b.jpg", make_jpeg(color=(1, 2, 3)), second.to_metadata())
    assert ingest.handle_sqs_batch(sqs_event(body), ports) == {"batchItemFailures": []}
    assert ports.labels.get("look-1") == before


# -- finding 6: a truncated re-upload never destroys the good photo ----------------------------


def test_a_truncated_reupload_restores_the_good_photo_locally(ports):
    good = noisy_jpeg()
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p1/a.jpg", good)), ports)
    ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p1/a.jpg", good[:-300])), ports)
    record = ports.labels.get("p1/a")
    assert record.status == ImageStatus.OK
    assert "truncated" in record.reason and "previous photo was restored" in record.reason
    assert ports.catalog.get("catalog/p1/a.jpg").body == good


def test_a_truncated_reupload_restores_the_good_version_on_a_versioned_bucket(
    tmp_path, aws_env, recording_jobs
):
    good = noisy_jpeg()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="catalog")
        s3.put_bucket_versioning(Bucket="catalog", VersioningConfiguration={"Status": "Enabled"})
        ports = replace(
            build_ports(Settings(home=tmp_path)),
            catalog=S3ObjectStore("catalog", client=s3),
            jobs=recording_jobs,
        )
        ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p1/a.jpg", good)), ports)
        ingest.handle_sqs_batch(sqs_event(upload(ports, "catalog/p1/a.jpg", good[:-300])), ports)
        record = ports.labels.get("p1/a")
        assert record.status == ImageStatus.OK and "restored" in record.reason
        assert ports.catalog.get("catalog/p1/a.jpg").body == good
        versions = s3.list_object_versions(Bucket="catalog")["Versions"]
        assert len(versions) == 3  # good, truncated (kept as noncurrent), good again


def test_s3_metadata_must_be_ascii(aws_env):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="catalog")
        store = S3ObjectStore("catalog", client=s3)
        # A clear error that says what to do (botocore's was wrapped as an access problem).
        with pytest.raises(ObjectStoreError, match=r"not ASCII.*escape") as error:
            store.put("catalog/p1/a.jpg", b"x", metadata={"label": "décolleté"})
        assert "may access" not in str(error.value)


# -- finding 19: a redelivered batch, one manifest and one job ---------------------------------


def test_a_redelivered_batch_writes_the_same_manifest_and_submits_one_job(ports, make_jpeg):
    ports.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    bodies = [upload(ports, f"catalog/p1/{i}.jpg", make_jpeg(color=(i, 0, 0))) for i in range(2)]
    ingest.handle_sqs_batch(sqs_event(*bodies), ports)
    ingest.handle_sqs_batch(sqs_event(*bodies), ports)  # no prediction yet: the same entries
    assert len(list(ports.artifacts.list(PENDING_INFERENCE_PREFIX))) == 1  # the same piece
    flush_pending(ports)
    ingest.handle_sqs_batch(sqs_event(*bodies), ports)  # redelivered after the window
    flush_pending(ports)  # the same manifest: found submitted, not submitted again
    assert len(ports.jobs.requests) == 1
    assert len(list(ports.artifacts.list("manifests/infer/"))) >= 1
    manifests = {r.args[-1] for r in ports.jobs.requests}
    assert len(manifests) == 1
