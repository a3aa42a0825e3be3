"""The labels snapshot every training run starts from.

At the start of a run the LabelStore's ok records are exported as JSON lines to
`snapshots/labels/<utc stamp>.jsonl` in the artifacts store, and training reads only that: a
label changed in the store is in the next training with no manual step, and every model can be
traced back to the exact labels it learned from (the key goes into its args.json).
"""

from __future__ import annotations

from shared.errors import NotFoundError
from shared.keys import snapshot_key
from shared.ports import LabelStore, ObjectStore
from shared.records import ImageStatus, LabelRecord
from shared.registry import unique_stamp


def export_snapshot(labels: LabelStore, artifacts: ObjectStore) -> tuple[str, list[LabelRecord]]:
    """Write every ok record (sorted by image id) to a new snapshot; return (key, records)."""
    records = sorted(
        (r for r in labels.scan() if r.status == ImageStatus.OK), key=lambda r: r.image_id
    )
    key = snapshot_key(unique_stamp(lambda stamp: artifacts.exists(snapshot_key(stamp))))
    body = "".join(r.model_dump_json() + "\n" for r in records)
    artifacts.put(key, body.encode(), content_type="application/x-ndjson")
    return key, records


def read_snapshot(artifacts: ObjectStore, key: str) -> list[LabelRecord]:
    """The records of a snapshot written by `export_snapshot` (a resumed run reads its own)."""
    try:
        body = artifacts.get(key).body
    except NotFoundError as exc:
        raise NotFoundError(f"labels snapshot {key} not found; start a new run instead") from exc
    return [LabelRecord.model_validate_json(line) for line in body.splitlines() if line.strip()]
