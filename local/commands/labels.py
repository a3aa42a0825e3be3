"""`dressvision labels export`: the current labels, with their splits."""

from __future__ import annotations

import csv
import json
import sys

from local.runtime import LocalRuntime
from shared.catalog import BOX_COLUMNS
from shared.records import ImageStatus, LabelRecord
from shared.taxonomy import load_taxonomy


def register(commands) -> None:
    parser = commands.add_parser("labels", help="inspect the label store")
    actions = parser.add_subparsers(dest="labels_command", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="dump the current labels",
        description=(
            "Dump every image's current labels. JSON: a list of {image_id, product_id, split, "
            "status, facets: {FACET: LABEL or null}}. CSV: the import format plus status and "
            "reason columns. COCO: the usable images (file_name = object key, width, height, "
            "split, facets), one 'dress' annotation per dress box (bbox [x, y, w, h], the box "
            "as segmentation polygon, area, the facet labels as attributes), for pycocotools, "
            "FiftyOne and other COCO tools."
        ),
    )
    export.add_argument("--format", choices=("csv", "json", "coco"), default="csv")
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


COCO_DRESS_CATEGORY = {"id": 1, "name": "dress", "supercategory": "garment"}


def export_coco(records: list[LabelRecord], facets: tuple[str, ...]) -> dict:
    """A COCO detection document of the usable images. COCO ids are integers: images are
    numbered in `image_id` order and keep their dressvision id as `dressvision_id`. Facet labels
    (null = unknown) are COCO "attributes" of the dress annotation, and sit on the image too so
    an image without a box keeps them; `split` is per image."""
    images, annotations = [], []
    for number, r in enumerate((r for r in records if r.status == ImageStatus.OK), 1):
        labels = {f: r.facets.get(f) for f in facets}
        images.append(
            {
                "id": number,
                "file_name": r.object_key,
                "width": r.width,
                "height": r.height,
                "dressvision_id": r.image_id,
                "product_id": r.product_id,
                "split": r.split,
                "facets": labels,
            }
        )
        if r.bbox is not None:
            x0, y0, x1, y1 = r.bbox
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": COCO_DRESS_CATEGORY["id"],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    # The box as a polygon: tools that want a region (masks) get the box.
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "attributes": labels,
                }
            )
    return {
        "info": {"description": "dressvision labels export", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [COCO_DRESS_CATEGORY],
    }


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
    runtime = LocalRuntime.open_existing(args.home)  # read-only: no state in a fresh home
    records = sorted(runtime.ports.labels.scan(), key=lambda r: r.image_id) if runtime else []
    facets = (runtime.ports.taxonomy if runtime else load_taxonomy()).facet_names
    out = open(args.output, "w", newline="") if args.output else sys.stdout  # noqa: SIM115
    try:
        if args.format == "json":
            json.dump(export_json(records), out, indent=1)
            out.write("\n")
        elif args.format == "coco":
            json.dump(export_coco(records, facets), out)
            out.write("\n")
        else:
            write_csv(records, facets, out)
    finally:
        if args.output:
            out.close()
    return 0
