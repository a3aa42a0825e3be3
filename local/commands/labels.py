"""`dressvision labels export`: the current labels, with their splits."""

from __future__ import annotations

import csv
import json
import sys

from local.runtime import LocalRuntime
from shared.catalog import BOX_COLUMNS
from shared.records import LabelRecord


def register(commands) -> None:
    parser = commands.add_parser("labels", help="inspect the label store")
    actions = parser.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="dump the current labels",
        description=(
            "Dump every image's current labels. JSON: a list of {image_id, product_id, split, "
            "status, facets: {FACET: LABEL or null}}. CSV: the import format plus status and "
            "reason columns."
        ),
    )
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.set_defaults(func=run_export)


def export_json(records: list[LabelRecord]) -> list[dict]:
    return [
        {
            "image_id": r.image_id,
            "product_id": r.product_id,
            "split": r.split,
            "status": r.status.value,
            "facets": dict(r.facets),
        }
        for r in records
    ]


def write_csv(records: list[LabelRecord], facets: tuple[str, ...], out) -> None:
    columns = ["image_id", "path", "product_id", *facets, *BOX_COLUMNS, "split", "status", "reason"]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        box = dict(zip(BOX_COLUMNS, r.bbox, strict=True)) if r.bbox else {}
        writer.writerow(
            {
                "image_id": r.image_id,
                "path": r.object_key,
                "product_id": r.product_id,
                **{f: r.facets.get(f) or "" for f in facets},
                **box,
                "split": r.split,
                "status": r.status.value,
                "reason": r.reason or "",
            }
        )


def run_export(args) -> int:
    runtime = LocalRuntime.open(args.home)
    records = sorted(runtime.ports.labels.scan(), key=lambda r: r.image_id)
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "json":
            json.dump(export_json(records), out, indent=1)
            out.write("\n")
        else:
            write_csv(records, runtime.ports.taxonomy.facet_names, out)
    finally:
        if args.output:
            out.close()
    return 0
