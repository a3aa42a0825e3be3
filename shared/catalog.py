"""The catalog import format (DESIGN.md §3) and how an upload carries its catalog labels.

A catalog is a folder with images and an optional `labels.csv`:
`image_id,path,product_id,<facet columns>[,x0,y0,x1,y1][,split]`. An empty facet cell means
"unknown". An image uploaded with catalog labels carries them in one S3 user-metadata entry
(`x-amz-meta-dressvision-catalog`, ASCII JSON), so the same ingest handler serves
`dressvision import` and a plain S3 upload (which simply has no labels).
"""

from __future__ import annotations

import csv
import json
import math
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

    @field_validator("bbox")
    @classmethod
    def _sane_box(cls, box: BBox | None) -> BBox | None:
        if box is not None:
            check_box(box)
        return box

    def to_metadata(self) -> dict[str, str]:
        # S3 user metadata must be ASCII: json.dumps escapes every non-ASCII character
        # (pydantic's model_dump_json would write UTF-8).
        body = json.dumps(
            self.model_dump(mode="json", exclude_defaults=True),
            ensure_ascii=True,
            separators=(",", ":"),
        )
        if len(body) > MAX_METADATA_BYTES:
            raise CatalogFormatError(f"catalog labels of {self.image_id} are too long for S3")
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
            error = exc.errors()[0]
            if error["type"] == "value_error":  # our own validators say what is wrong
                reason = str(error["ctx"]["error"])
            else:
                where = ".".join(str(p) for p in error["loc"]) or "the entry"
                reason = f"malformed catalog metadata: {where}: {error['msg']}"
            raise CatalogFormatError(reason) from exc

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
    refused: str | None = None  # why this row must not be uploaded (reported as invalid)


def check_box(box: tuple[float, ...]) -> None:
    """A dress box must be four finite pixel coordinates with 0 <= x0 < x1 and 0 <= y0 < y1;
    ValueError saying what is wrong otherwise. (Whether it fits the image is checked once the
    image's size is known.)"""
    if len(box) != 4:
        raise ValueError(f"dress box needs 4 values x0,y0,x1,y1, got {len(box)}")
    for name, value in zip(BOX_COLUMNS, box, strict=True):
        if not math.isfinite(value):
            raise ValueError(f"dress box {name} is {value}: give a finite number of pixels")
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0:
        raise ValueError(
            f"dress box {list(box)} starts at a negative pixel: x0 and y0 must be >= 0"
        )
    if not (x0 < x1 and y0 < y1):
        raise ValueError(
            f"dress box {list(box)} is empty or reversed: it needs x0 < x1 and y0 < y1"
        )


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
    try:
        check_box((x0, y0, x1, y1))
    except ValueError as exc:
        raise CatalogFormatError(f"labels.csv line {line}: {exc}") from None
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
    under the folder as an unlabeled upload (product id = its parent folder's name).

    Malformed CSV (a stray quote, a row with the wrong number of cells, bytes that are not
    UTF-8) raises `CatalogFormatError` naming the line before anything is uploaded. A row whose
    file lies outside the folder (`../`, an absolute path, a symbolic link leading out) or is
    not an image file name comes back with `refused` set: it is reported, never read.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CatalogFormatError(f"{root} is not a folder")
    csv_path = root / LABELS_CSV
    if csv_path.exists():
        rows = _read_csv_rows(root, csv_path, taxonomy)
    else:
        rows = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            product = sanitize_part(path.parent.name if path.parent != root else path.stem)
            entry = CatalogEntry(image_id=image_id_for(product, path.name), product_id=product)
            rows.append(
                CatalogRow(
                    line=0,
                    path=path,
                    key=catalog_key(product, path.name),
                    entry=entry,
                    refused=source_problem(root, path),
                )
            )
    _refuse_collisions(rows)
    return rows


def source_problem(root: Path, path: Path) -> str | None:
    """Why the file at `path` must not be imported from the catalog folder `root`, or None.

    The path is resolved (symbolic links followed) and must stay inside the folder: a catalog
    file must never make the import read, and upload, anything else on the machine."""
    resolved_root = root.resolve()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"cannot resolve the path: {exc}"
    if not resolved.is_relative_to(resolved_root):
        return (
            f"the path leads outside the catalog folder ({resolved}); only files inside "
            f"{resolved_root} are imported"
        )
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return (
            f"not an image file name ({path.suffix or 'no extension'}); accepted: "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    return None


def _read_csv_rows(root: Path, csv_path: Path, taxonomy: Taxonomy) -> list[CatalogRow]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig", errors="strict") as handle:
            return _parse_csv(root, csv_path, handle, taxonomy)
    except UnicodeDecodeError as exc:
        raise CatalogFormatError(
            f"{csv_path} is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8 and import again"
        ) from None


def _parse_csv(root: Path, csv_path: Path, handle, taxonomy: Taxonomy) -> list[CatalogRow]:
    # strict: a quote in the wrong place is an error, not a field swallowing the next rows.
    reader = csv.reader(handle, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CatalogFormatError(f"{csv_path} line 1: malformed CSV ({exc})") from None
    if not header or "path" not in header:
        raise CatalogFormatError(f"{csv_path} needs a header with at least a 'path' column")
    unknown = set(header) - {
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
    rows: list[CatalogRow] = []
    while True:
        line = reader.line_num + 1  # where the next record starts
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CatalogFormatError(
                f"{csv_path} line {line}: malformed CSV ({exc}); check its quotes. Nothing "
                "was imported"
            ) from None
        if reader.line_num != line or len(cells) != len(header):
            if reader.line_num != line:  # no cell holds a line break: a stray quote
                detail = f"a quoted field runs from line {line} to line {reader.line_num}"
            else:
                detail = f"{len(cells)} cells where the header has {len(header)}"
            raise CatalogFormatError(
                f"{csv_path} line {line}: {detail}; check its commas and quotes. Nothing was "
                "imported"
            )
        row = dict(zip(header, cells, strict=True))
        entry = _row_entry(row, line, taxonomy)
        path = root / str(_cell(row, "path"))
        rows.append(
            CatalogRow(
                line=line,
                path=path,
                key=catalog_key(entry.product_id, path.name),
                entry=entry,
                refused=source_problem(root, path),
            )
        )
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
