"""The labels snapshot: what the store holds now is what the next training reads."""

from __future__ import annotations

from batch_jobs.snapshot import export_snapshot, read_snapshot
from shared.embedded.files import LocalObjectStore
from shared.embedded.sqlite import SqliteLabelStore
from shared.keys import SNAPSHOT_PREFIX
from shared.records import ImageStatus, LabelRecord, LabelSource


def _record(image_id: str, sleeve: str | None, status=ImageStatus.OK) -> LabelRecord:
    return LabelRecord(
        image_id=image_id,
        product_id=image_id.split("/")[0],
        object_key=f"catalog/{image_id}.jpg",
        split="train",
        facets={"sleeve": sleeve},
        status=status,
        reason=None if status == ImageStatus.OK else "corrupt",
    )


def test_snapshot_holds_ok_records_and_picks_up_a_changed_label(tmp_path):
    labels = SqliteLabelStore(tmp_path / "state.db")
    artifacts = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
    labels.register(_record("p1/a", "long"))
    labels.register(_record("p2/b", None))
    labels.register(_record("p3/c", "cap", status=ImageStatus.INVALID))

    key, records = export_snapshot(labels, artifacts)
    assert key.startswith(SNAPSHOT_PREFIX) and key.endswith(".jsonl")
    assert [r.image_id for r in records] == ["p1/a", "p2/b"]
    assert read_snapshot(artifacts, key) == records

    current = labels.get("p1/a")
    labels.update_label(
        "p1/a", "sleeve", "short", source=LabelSource.STAFF, expected_version=current.version
    )
    key2, records2 = export_snapshot(labels, artifacts)
    assert key2 != key  # the first snapshot stays as it was: models stay traceable
    assert records2[0].facets["sleeve"] == "short"
    assert read_snapshot(artifacts, key)[0].facets["sleeve"] == "long"
