"""`dressvision import DIR`: a catalog folder into the object store, through the ingest handler."""

from __future__ import annotations

import json
import mimetypes
import os
import stat
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from local.runtime import LocalRuntime
from shared.catalog import CatalogRow, read_catalog, source_problem
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
    updated, unchanged (valid images) or invalid (with its reason).

    If the import stops half-way (an upload fails, Ctrl-C), what was uploaded is still
    delivered to the ingest handler before the error surfaces, so every uploaded object is
    registered; running the same import again finishes the job (unchanged rows cost one
    HEAD each)."""
    rows = read_catalog(folder, runtime.ports.taxonomy)
    labels = runtime.ports.labels
    before: dict[str, LabelRecord | None] = {
        r.entry.image_id: labels.get(r.entry.image_id) for r in rows
    }
    summary = ImportSummary()
    uploaded: list[tuple[CatalogRow, str | None]] = []
    max_bytes = runtime.settings.max_image_bytes

    def refuse(row: CatalogRow, reason: str) -> None:
        summary.invalid.append(
            {"image_id": row.entry.image_id, "path": str(row.path), "reason": reason}
        )

    try:
        for i, row in enumerate(tqdm(rows, desc="import", unit="img", disable=not progress), 1):
            previous = before[row.entry.image_id]
            if row.refused:
                refuse(row, row.refused)
                continue
            if previous is not None and previous.product_id != row.entry.product_id:
                refuse(
                    row,
                    f"image id {row.entry.image_id!r} belongs to product {previous.product_id!r}"
                    f", not {row.entry.product_id!r}; give this photo its own image_id",
                )
                continue
            try:
                body = _read_source(folder, row, max_bytes)
            except _Refused as exc:
                refuse(row, str(exc))
                continue
            content_type = mimetypes.guess_type(row.path.name)[0] or "application/octet-stream"
            info = runtime.upload(
                row.key, body, metadata=row.entry.to_metadata(), content_type=content_type
            )
            uploaded.append((row, info.etag))
            if i % DRAIN_EVERY == 0:
                runtime.drain()
    finally:
        # Deliver what was uploaded even when the loop stopped: no object is left unregistered.
        runtime.wait_for_jobs()

    for row, etag in uploaded:
        record = labels.get(row.entry.image_id)
        if record is None:
            refuse(row, _unregistered_reason(runtime))
            continue
        if record.status == ImageStatus.INVALID:
            refuse(row, record.reason or "invalid")
            continue
        if record.product_id != row.entry.product_id:  # registered by someone else meanwhile
            refuse(row, f"image id {row.entry.image_id!r} belongs to {record.product_id!r}")
            continue
        if record.etag != etag:  # this upload was refused; the record kept the previous photo
            refuse(row, record.reason or "the upload was refused; the previous photo was kept")
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


class _Refused(Exception):
    """A catalog file that is not read (the message is the reason people see)."""


def _read_source(folder, row: CatalogRow, max_bytes: int) -> bytes:
    """The file's bytes, checked before reading: inside the folder (again, just before
    opening), a regular file (not a device or a pipe: /dev/zero never ends), within the size
    limit. At most `max_bytes + 1` bytes are ever read, so a file growing meanwhile cannot
    exhaust memory either."""
    problem = source_problem(Path(folder), row.path)
    if problem:
        raise _Refused(problem)
    try:
        fd = os.open(row.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise _Refused("file not found") from None
    except OSError as exc:
        raise _Refused(f"cannot open the file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("not a regular file (a device, a pipe or a folder)")
        if info.st_size > max_bytes:
            raise _Refused(f"file too large ({info.st_size} bytes > limit {max_bytes})")
        body = handle.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise _Refused(f"file too large (it grew past the limit {max_bytes} while read)")
    return body


def _unregistered_reason(runtime: LocalRuntime) -> str:
    if runtime.dead_letters:
        return "not registered: its notification failed (see the dead-letter queue)"
    return "not registered: the ingest handler did not register it (see the log)"


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
