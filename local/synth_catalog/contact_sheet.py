"""The contact sheet: the first photos tiled with their labels and dress boxes, to look at."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from local.synth_catalog.writer import BOX_COLUMNS
from shared.errors import InvalidImageError
from shared.images import open_image


def make_contact_sheet(
    catalog_dir: Path, out_png: Path, n: int = 48, *, thumb: int = 192, columns: int = 8
) -> Path:
    """Tile the first `n` photos of a catalog with their labels and dress boxes drawn.

    A catalog label that differs from `labels_true.csv` is shown in red with the truth after it;
    a file that does not load shows why.
    """
    catalog_dir = Path(catalog_dir)
    rows = _read_csv(catalog_dir / "labels.csv")[:n]
    truth = {r["image_id"]: r for r in _read_csv(catalog_dir / "labels_true.csv")}
    facets = (
        [c for c in rows[0] if c not in ("image_id", "path", "product_id", "split", *BOX_COLUMNS)]
        if rows
        else []
    )
    text_h = 14 * (len(facets) + 1) + 4
    cols = max(1, min(columns, len(rows)))
    sheet = Image.new(
        "RGB", (cols * thumb, max(1, -(-len(rows) // cols)) * (thumb + text_h)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for k, row in enumerate(rows):
        x, y = (k % cols) * thumb, (k // cols) * (thumb + text_h)
        _contact_tile(sheet, draw, font, (x, y), thumb, catalog_dir, row)
        true = truth.get(row["image_id"], row)
        lines = [(row["image_id"], (0, 0, 0))]
        for f in facets:
            wrong = true.get(f) != row[f]
            lines.append(
                (
                    f"{f[:4]}: {row[f]}" + (f" (true {true[f]})" if wrong else ""),
                    (200, 0, 0) if wrong else (40, 40, 40),
                )
            )
        for j, (line, color) in enumerate(lines):
            draw.text((x + 4, y + thumb + 2 + 14 * j), line, fill=color, font=font)
    out_png = Path(out_png)
    sheet.save(out_png)
    return out_png


def _contact_tile(
    sheet: Image.Image,
    draw: ImageDraw.ImageDraw,
    font,
    origin: tuple[int, int],
    thumb: int,
    catalog_dir: Path,
    row: dict[str, str],
) -> None:
    x, y = origin
    try:
        img = open_image(catalog_dir / row["path"])
    except InvalidImageError as exc:
        draw.rectangle([x + 2, y + 2, x + thumb - 3, y + thumb - 3], fill=(90, 90, 90))
        draw.multiline_text(
            (x + 8, y + 8),
            "invalid:\n"
            + "\n".join(exc.reason[i : i + 28] for i in range(0, min(len(exc.reason), 112), 28)),
            fill="white",
            font=font,
        )
        return
    factor = thumb / max(img.size)
    sheet.paste(img.resize((round(img.width * factor), round(img.height * factor))), (x, y))
    if row.get("x0"):
        b = [float(row[c]) * factor for c in BOX_COLUMNS]
        draw.rectangle([x + b[0], y + b[1], x + b[2] - 1, y + b[3] - 1], outline=(255, 0, 0))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))
