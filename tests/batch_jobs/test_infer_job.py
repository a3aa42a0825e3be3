"""The infer job: shards of a manifest, predictions stored, unreadable images skipped."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest

from batch_jobs.infer import get_args_parser, main, shard
from shared.backends import build_ports
from shared.env import BATCH_ARRAY_INDEX
from shared.keys import manifest_key
from shared.messages import ManifestEntry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def ports(tiny_ports, tmp_path):
    base = tiny_ports(tmp_path)
    return build_ports(replace(base.settings, infer_shard_size=2))


def _manifest(ports, entries) -> str:
    key = manifest_key("m1")
    body = "".join(e.model_dump_json() + "\n" for e in entries)
    ports.artifacts.put(key, body.encode())
    return key


def _entries(ports, records):
    return [
        ManifestEntry(image_id=r.image_id, bucket=ports.catalog.name, key=r.object_key)
        for r in records
    ]


def test_job_tags_readable_images_and_reports_the_rest_while_succeeding(
    add_corrupt, add_images, register_untrained_model, ports, capsys
):
    version = register_untrained_model(ports)
    good = _entries(ports, add_images(ports, 3))
    bad = ManifestEntry(image_id="bad/img", bucket=ports.catalog.name, key=add_corrupt(ports))
    gone = ManifestEntry(image_id="gone/x", bucket=ports.catalog.name, key="catalog/gone/x.jpg")
    alien = ManifestEntry(image_id="p0/img", bucket="someone-elses", key=good[0].key)
    key = _manifest(ports, [good[0], bad, good[1], gone, good[2], alien])

    assert main(get_args_parser().parse_args(["--manifest", key]), ports) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_version"] == version
    assert (report["images"], report["tagged"]) == (6, 3)
    assert [s["image_id"] for s in report["skipped"]] == ["bad/img", "gone/x", "p0/img"]
    for entry in good:
        stored = ports.predictions.get(entry.image_id, version)
        assert stored is not None and set(stored.facets) == {"sleeve"}
        assert sum(stored.facets["sleeve"].probs) == pytest.approx(1.0, abs=1e-3)


def test_an_array_child_takes_only_its_shard(
    add_images, register_untrained_model, ports, monkeypatch, capsys
):
    version = register_untrained_model(ports)
    entries = _entries(ports, add_images(ports, 5))
    key = _manifest(ports, entries)
    monkeypatch.setenv(BATCH_ARRAY_INDEX, "1")
    assert main(get_args_parser().parse_args(["--manifest", key]), ports) == 0
    tagged = {p.image_id for p in ports.predictions.for_model(version)}
    assert tagged == {entries[2].image_id, entries[3].image_id}
    assert [e.image_id for e in shard(entries, 2, 2)] == [entries[4].image_id]
    assert len(shard(entries, None, 2)) == 5


def test_without_a_current_model_there_is_nothing_to_do(add_images, ports, capsys):
    key = _manifest(ports, _entries(ports, add_images(ports, 1)))
    assert main(get_args_parser().parse_args(["--manifest", key]), ports) == 0
    assert json.loads(capsys.readouterr().out)["tagged"] == 0


class MiddleLocator:
    """Finds the middle of whatever image it is given: boxes in that image's pixels."""

    class config:  # the attribute the real Locator has
        input_size = 32

    def predict(self, images):  # uint8 (N, 3, S, S) -> normalized boxes, scores, fallback
        import torch

        n = len(images)
        boxes = torch.tensor([[0.2, 0.1, 0.7, 0.9]]).repeat(n, 1)
        return boxes, torch.full((n,), 0.8), torch.zeros(n, dtype=torch.bool)

    def locate(self, images):
        from batch_jobs.locator.inference import LocatedBox

        return [
            LocatedBox((0.2 * i.width, 0.1 * i.height, 0.7 * i.width, 0.9 * i.height), 0.8, False)
            for i in images
        ]


def _cropping_tagger(ports):
    import torch

    from batch_jobs.facets.predictor import FacetTagger
    from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig
    from batch_jobs.models import create_model
    from shared.registry import ModelKind
    from shared.taxonomy import Taxonomy

    taxonomy = Taxonomy({"sleeve": ports.taxonomy.labels("sleeve")})
    torch.manual_seed(0)
    model = create_model(
        ModelKind.FACETS, "resnet18", heads={"sleeve": len(taxonomy.labels("sleeve"))}
    )
    config = PreprocessConfig(image_size=32, crop=CropConfig("loc-1", margin=0.05))
    return FacetTagger(model, config, taxonomy, version="v1", locator=MiddleLocator(), amp=False)


def _big_photo(seed: int) -> bytes:
    """A 600 x 900 JPEG: large enough that the locator and the crop read reduced decodes."""
    import io
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (600, 900), (240, 238, 235))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y = rng.randint(0, 560), rng.randint(0, 860)
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        draw.rectangle((x, y, x + rng.randint(20, 300), y + rng.randint(20, 400)), fill=colour)
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _big_entries(ports, count: int) -> list[ManifestEntry]:
    """`count` large photos in the catalog, as manifest entries."""
    entries = []
    for i in range(count):
        key = f"catalog/p{i}/img.jpg"
        ports.catalog.put(key, _big_photo(i))
        entries.append(ManifestEntry(image_id=f"p{i}/img", bucket=ports.catalog.name, key=key))
    return entries


def test_overlapped_stages_give_the_sequential_predictions(ports, add_corrupt):
    from batch_jobs.facets.data import load_photo
    from batch_jobs.infer import run_inference

    tagger = _cropping_tagger(ports)
    entries = _big_entries(ports, 7)
    bad = ManifestEntry(image_id="bad/img", bucket=ports.catalog.name, key=add_corrupt(ports))
    entries.insert(3, bad)

    report = run_inference(ports, entries, tagger, batch_size=3, workers=3)

    assert (report.images, report.tagged) == (8, 7)
    assert [s.image_id for s in report.skipped] == ["bad/img"]
    for entry in entries:
        if entry is bad:
            continue
        # The sequential path: one photo at a time, located and cropped in this thread.
        loaded = load_photo(ports.catalog, entry.key, ports.settings, small=32)
        (expected,) = tagger.tag([loaded])
        stored = ports.predictions.get(entry.image_id, "v1")
        assert stored.bbox == pytest.approx(expected.box)
        assert stored.bbox == pytest.approx((120.0, 90.0, 420.0, 810.0))  # full-size pixels
        assert stored.facets["sleeve"].label == expected.facets["sleeve"].label
        assert stored.facets["sleeve"].probs == pytest.approx(
            expected.facets["sleeve"].probs, abs=1e-5
        )


def test_decoding_on_the_device_gives_the_pillow_predictions(ports, add_corrupt, monkeypatch):
    """The GPU path, run on the CPU: only the device of the decode call differs on CUDA."""
    from batch_jobs.facets import device_decode
    from batch_jobs.infer import run_inference

    decoded_there = []
    real = device_decode.decode_batch

    def spy(photos, device):
        images = real(photos, device)
        decoded_there.extend(images)
        return images

    monkeypatch.setattr(device_decode, "decode_batch", spy)

    tagger = _cropping_tagger(ports)
    entries = _big_entries(ports, 5)
    bad = ManifestEntry(image_id="bad/img", bucket=ports.catalog.name, key=add_corrupt(ports))
    ports.catalog.put("catalog/cut/img.jpg", _big_photo(9)[:20000])  # header fine, data cut
    cut = ManifestEntry(image_id="cut/img", bucket=ports.catalog.name, key="catalog/cut/img.jpg")
    entries[1:1] = [bad, cut]

    pillow = run_inference(ports, entries, tagger, batch_size=3, decode_device=None)
    unread = ("bad/img", "cut/img")
    expected = {
        e.image_id: ports.predictions.get(e.image_id, "v1")
        for e in entries
        if e.image_id not in unread
    }
    device = run_inference(ports, entries, tagger, batch_size=3, decode_device="cpu")

    assert (device.tagged, [s.image_id for s in device.skipped]) == (5, list(unread))
    assert (pillow.tagged, [s.image_id for s in pillow.skipped]) == (5, list(unread))
    # The batch with the cut photo fell back to Pillow; the others decoded "there".
    assert len(decoded_there) == 4
    for image_id, before in expected.items():
        after = ports.predictions.get(image_id, "v1")
        assert after.bbox == pytest.approx(before.bbox)
        assert after.facets["sleeve"].probs == pytest.approx(
            before.facets["sleeve"].probs, abs=0.02
        )


def test_staging_stays_one_batch_ahead_of_the_model(ports):
    from concurrent.futures import ThreadPoolExecutor

    from batch_jobs.infer import staged_batches

    pulled = []

    def batches():
        for i in range(5):
            pulled.append(i)
            yield []

    with ThreadPoolExecutor(1) as pool:
        for consumed, _ in enumerate(staged_batches(_cropping_tagger(ports), batches(), pool)):
            assert len(pulled) <= consumed + 2  # memory: this batch and the next one's crops
    assert len(pulled) == 5


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_job_process_lets_openmp_threads_sleep_unless_told_otherwise(given, expected):
    """`python -m batch_jobs.infer` sets OMP_WAIT_POLICY before torch loads OpenMP (which
    reads it once): spinning model threads would keep the cores from the decoding threads."""
    import subprocess
    import sys

    probe = """
import os, sys
when_torch_loads = []
class Spy:  # notes the policy at the moment torch is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not when_torch_loads:
            when_torch_loads.append(os.environ.get("OMP_WAIT_POLICY"))
sys.meta_path.insert(0, Spy())
import runpy
sys.argv = ["batch_jobs.infer"]  # no --manifest: argparse stops on stderr, after the imports
try:  # as `python -m batch_jobs.infer` runs it
    runpy.run_module("batch_jobs.infer", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print(when_torch_loads[0])
"""
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        environ["OMP_WAIT_POLICY"] = given
    out = subprocess.run(
        [sys.executable, "-c", probe], env=environ, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [expected]
