"""`dressvision import DIR`: a catalog folder into the object store, through the ingest handler."""

from __future__ import annotations

import json
import mimetypes
import sys
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from local.runtime import LocalRuntime
from shared.catalog import read_catalog
from shared.records import ImageStatus, LabelRecord

DRAIN_EVERY = 20  # deliver queued notifications while uploading, as the event source would


def register(commands) -> None:
    parser = commands.add_parser(
        "import",
        help="import a catalog folder (images + optional labels.csv)",
        description=(
            "Put every image of DIR into the catalog bucket and register it through the ingest "
            "handler. DIR/labels.csv (image_id,path,product_id,<facets>[,x0,y0,x1,y1][,split]) "
            "gives catalog labels; without it every image is an unlabeled upload. Importing "
            "the same folder twice changes nothing the second time."
        ),
    )
    parser.add_argument("folder", metavar="DIR", help="the catalog folder")
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: {"imported", "updated", "unchanged", "invalid": [...]}',
    )
    parser.set_defaults(func=run)


@dataclass
class ImportSummary:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    invalid: list[dict] = field(default_factory=list)
    splits: Counter = field(default_factory=Counter)

    def to_json(self) -> dict:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
        }


def import_catalog(runtime: LocalRuntime, folder, *, progress: bool = True) -> ImportSummary:
    """Upload and register a catalog folder. Every row lands in exactly one place: imported,
    updated, unchanged (valid images) or invalid (with its reason)."""
    rows = read_catalog(folder, runtime.ports.taxonomy)
    labels = runtime.ports.labels
    before: dict[str, LabelRecord | None] = {
        r.entry.image_id: labels.get(r.entry.image_id) for r in rows
    }
    summary = ImportSummary()
    uploaded = []
    for i, row in enumerate(tqdm(rows, desc="import", unit="img", disable=not progress), 1):
        try:
            body = row.path.read_bytes()
        except OSError as exc:
            reason = "file not found" if isinstance(exc, FileNotFoundError) else str(exc)
            summary.invalid.append(
                {"image_id": row.entry.image_id, "path": str(row.path), "reason": reason}
            )
            continue
        content_type = mimetypes.guess_type(row.path.name)[0] or "application/octet-stream"
        runtime.upload(row.key, body, metadata=row.entry.to_metadata(), content_type=content_type)
        uploaded.append(row)
        if i % DRAIN_EVERY == 0:
            runtime.drain()
    runtime.wait_for_jobs()

    for row in uploaded:
        record = labels.get(row.entry.image_id)
        if record is None or record.status == ImageStatus.INVALID:
            reason = record.reason if record else "not registered (see the dead-letter queue)"
            summary.invalid.append(
                {"image_id": row.entry.image_id, "path": str(row.path), "reason": reason}
            )
            continue
        summary.splits[record.split] += 1
        previous = before[row.entry.image_id]
        if previous is None:
            summary.imported += 1
        elif previous.version != record.version:
            summary.updated += 1
        else:
            summary.unchanged += 1
    return summary


def print_summary(summary: ImportSummary, out=None) -> None:
    out = out or sys.stdout
    total = summary.imported + summary.updated + summary.unchanged
    print(
        f"{total} images ok: {summary.imported} imported, {summary.updated} updated, "
        f"{summary.unchanged} unchanged (split: {summary.splits['train']} train, "
        f"{summary.splits['test']} test)",
        file=out,
    )
    if summary.invalid:
        print(f"{len(summary.invalid)} invalid, not used for training or tagging:", file=out)
        width = max(len(item["image_id"]) for item in summary.invalid)
        for item in summary.invalid:
            print(f"  {item['image_id']:<{width}}  {item['reason']}", file=out)


def run(args) -> int:
    runtime = LocalRuntime.open(args.home)
    summary = import_catalog(runtime, args.folder, progress=not args.json and sys.stderr.isatty())
    if args.json:
        print(json.dumps(summary.to_json()))
    else:
        print_summary(summary)
    return 0
