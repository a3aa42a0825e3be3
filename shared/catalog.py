"""The catalog import format (DESIGN.md §3) and how an upload carries its catalog labels.

A catalog is a folder with images and an optional `labels.csv`:
`image_id,path,product_id,<facet columns>[,x0,y0,x1,y1][,split]`. An empty facet cell means
"unknown". An image uploaded with catalog labels carries them in one S3 user-metadata entry
(`x-amz-meta-dressvision-catalog`, ASCII JSON), so the same ingest handler serves
`dressvision import` and a plain S3 upload (which simply has no labels).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from shared.errors import CatalogFormatError, UnknownLabelError
from shared.ids import image_id_for, sanitize_id, sanitize_part
from shared.keys import IMAGE_SUFFIXES, catalog_key
from shared.records import BBox, Split
from shared.taxonomy import Taxonomy

LABELS_CSV = "labels.csv"
METADATA_KEY = "dressvision-catalog"  # S3 lower-cases user metadata keys
BOX_COLUMNS = ("x0", "y0", "x1", "y1")
MAX_METADATA_BYTES = 1800  # S3 allows 2 KB of user metadata in all


class CatalogEntry(BaseModel):
    """What the catalog says about one image. Travels with the upload as object metadata."""

    # defer_build: validators are built on first use, so a Lambda builds only those it
    # uses, after its cold-start import (bench/cold_start.py).
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    image_id: str
    product_id: str
    facets: dict[str, str | None] = {}
    bbox: BBox | None = None
    split: Split | None = None

    @field_validator("image_id")
    @classmethod
    def _safe_id(cls, value: str) -> str:
        return sanitize_id(value)

    @field_validator("product_id")
    @classmethod
    def _safe_product(cls, value: str) -> str:
        return sanitize_part(value)

    def to_metadata(self) -> dict[str, str]:
        body = self.model_dump_json(exclude_defaults=True)
        if len(body) > MAX_METADATA_BYTES:
            raise CatalogFormatError(f"catalog labels of {self.image_id} are too long for S3")
        # model_dump_json escapes non-ASCII, as S3 metadata must be ASCII.
        return {METADATA_KEY: body}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> CatalogEntry | None:
        """The entry an upload carried, or None for a plain upload. Raises CatalogFormatError
        on a malformed entry (the caller records the image as invalid with that reason)."""
        raw = metadata.get(METADATA_KEY)
        if raw is None:
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise CatalogFormatError(f"malformed catalog metadata: {reason}") from exc

    def validate_labels(self, taxonomy: Taxonomy) -> None:
        for facet, label in self.facets.items():
            taxonomy.validate(facet, label)


class CatalogRow(BaseModel):
    """One row of labels.csv, resolved: the file to upload and where it goes."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    line: int  # 1-based line number in labels.csv (the header is line 1); 0 without a CSV
    path: Path
    key: str
    entry: CatalogEntry


def _cell(row: Mapping[str, str | None], name: str) -> str | None:
    value = (row.get(name) or "").strip()
    return value or None


def _parse_box(row: Mapping[str, str | None], line: int) -> BBox | None:
    cells = [_cell(row, c) for c in BOX_COLUMNS]
    if all(c is None for c in cells):
        return None
    if any(c is None for c in cells):
        raise CatalogFormatError(f"labels.csv line {line}: give all of x0,y0,x1,y1 or none")
    try:
        x0, y0, x1, y1 = (float(c) for c in cells)  # type: ignore[arg-type]
    except ValueError:
        raise CatalogFormatError(f"labels.csv line {line}: box values must be numbers") from None
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise CatalogFormatError(
            f"labels.csv line {line}: box must satisfy 0 <= x0 < x1 and 0 <= y0 < y1"
        )
    return (x0, y0, x1, y1)


def _row_entry(row: Mapping[str, str | None], line: int, taxonomy: Taxonomy) -> CatalogEntry:
    path = _cell(row, "path")
    if path is None:
        raise CatalogFormatError(f"labels.csv line {line}: the path cell is empty")
    product = _cell(row, "product_id") or Path(path).parent.name or Path(path).stem
    facets: dict[str, str | None] = {}
    for facet in taxonomy.facet_names:
        label = _cell(row, facet)
        try:
            facets[facet] = taxonomy.validate(facet, label)
        except UnknownLabelError as exc:
            raise CatalogFormatError(
                f"labels.csv line {line} ({path}): unknown {facet} label {label!r}; "
                f"allowed: {', '.join(exc.allowed)}"
            ) from None
    split = _cell(row, "split")
    if split not in (None, "train", "test"):
        raise CatalogFormatError(f"labels.csv line {line}: split must be train, test or empty")
    given_id = _cell(row, "image_id")
    return CatalogEntry(
        image_id=given_id or image_id_for(product, path),
        product_id=product,
        facets=facets,
        bbox=_parse_box(row, line),
        split=split,  # type: ignore[arg-type]
    )


def read_catalog(folder: str | Path, taxonomy: Taxonomy) -> list[CatalogRow]:
    """Read a catalog folder. With `labels.csv`, its rows (validated against the taxonomy: an
    unknown label is an error naming the row and the allowed labels); without, every image file
    under the folder as an unlabeled upload (product id = its parent folder's name)."""
    root = Path(folder)
    if not root.is_dir():
        raise CatalogFormatError(f"{root} is not a folder")
    csv_path = root / LABELS_CSV
    rows: list[CatalogRow] = []
    if csv_path.exists():
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise CatalogFormatError(f"{csv_path} needs a header with at least a 'path' column")
            unknown = set(reader.fieldnames) - {
                "image_id",
                "path",
                "product_id",
                "split",
                *BOX_COLUMNS,
                *taxonomy.facet_names,
            }
            if unknown:
                raise CatalogFormatError(
                    f"{csv_path}: unknown column(s) {', '.join(sorted(unknown))}; facets are "
                    f"{', '.join(taxonomy.facet_names)}"
                )
            for line, row in enumerate(reader, start=2):
                entry = _row_entry(row, line, taxonomy)
                path = root / str(_cell(row, "path"))
                rows.append(
                    CatalogRow(
                        line=line,
                        path=path,
                        key=catalog_key(entry.product_id, path.name),
                        entry=entry,
                    )
                )
    else:
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            product = sanitize_part(path.parent.name if path.parent != root else path.stem)
            entry = CatalogEntry(image_id=image_id_for(product, path.name), product_id=product)
            rows.append(
                CatalogRow(line=0, path=path, key=catalog_key(product, path.name), entry=entry)
            )
    _refuse_collisions(rows)
    return rows


def _refuse_collisions(rows: list[CatalogRow]) -> None:
    """Two rows that would land on the same object or the same id would lose one silently."""
    seen_keys: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for row in rows:
        for seen, value, what in (
            (seen_keys, row.key, "object key"),
            (seen_ids, row.entry.image_id, "image id"),
        ):
            if value in seen:
                raise CatalogFormatError(
                    f"labels.csv lines {seen[value]} and {row.line} map to the same {what} "
                    f"{value!r}; give distinct image_id values or file names"
                )
            seen[value] = row.line


def write_labels_csv(path: Path, rows: list[dict[str, object]], facets: tuple[str, ...]) -> None:
    """Write rows in the import format (used by exports and the generator's callers)."""
    columns = ["image_id", "path", "product_id", *facets, *BOX_COLUMNS, "split"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
