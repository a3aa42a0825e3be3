"""The infer job: shards of a manifest, predictions stored, unreadable images skipped."""

from __future__ import annotations

import json
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
