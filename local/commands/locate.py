"""`dressvision locate PATH... [--json]`: where the dress is in image files, by the current
locator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

CHUNK = 64  # images decoded and located at a time: bounded memory for long path lists


def register(commands) -> None:
    parser = commands.add_parser(
        "locate",
        help="find the dress box in image files",
        description=(
            "Locate the dress in each image with the current locator model. JSON: a list of "
            '{"path", "box": [x0, y0, x1, y1] in pixels or null, "score", "error"}; box is null '
            "when no window of the image looks like a dress (score is then the best window's "
            "foreground probability) or when the file is not a readable image (error says why). "
            "Exits 1 when any file could not be read (every file is still listed)."
        ),
    )
    parser.add_argument("paths", metavar="PATH", nargs="+", type=Path, help="image files")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def locate_files(paths: list[Path], locator, *, max_bytes: int, max_pixels: int) -> list[dict]:
    """One result per path, in order; an unreadable file is an `error`, never a crash."""
    from shared.errors import InvalidImageError
    from shared.images import open_image

    results: list[dict] = []
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        loaded, rows = [], []
        for path in chunk:
            row = {"path": str(path), "box": None, "score": None, "error": None}
            try:
                loaded.append(open_image(path, max_bytes=max_bytes, max_pixels=max_pixels))
            except InvalidImageError as exc:
                row["error"] = exc.reason
            rows.append(row)
        located = iter(locator.locate(loaded))
        for row in rows:
            if row["error"] is None:
                found = next(located)
                row["score"] = round(found.score, 4)
                if not found.fallback:
                    row["box"] = [round(v, 1) for v in found.box]
        results.extend(rows)
    return results


def run(args) -> int:
    from batch_jobs.locator import Locator
    from local.runtime import LocalRuntime
    from shared.errors import NotFoundError
    from shared.registry import ModelRegistry

    runtime = LocalRuntime.open(args.home)
    locator = Locator.from_registry(ModelRegistry(runtime.ports.artifacts))
    if locator is None:
        raise NotFoundError(
            "no locator is current: run `dressvision train` on a catalog with dress boxes "
            "(x0,y0,x1,y1 in labels.csv) first"
        )
    results = locate_files(
        list(args.paths),
        locator,
        max_bytes=runtime.settings.max_image_bytes,
        max_pixels=runtime.settings.max_image_pixels,
    )
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for row in results:
            if row["error"]:
                print(f"{row['path']}\terror: {row['error']}")
            elif row["box"] is None:
                print(f"{row['path']}\tno dress found\t{row['score']:.3f}")
            else:
                box = " ".join(f"{v:g}" for v in row["box"])
                print(f"{row['path']}\t{box}\t{row['score']:.3f}")
    failed = sum(1 for row in results if row["error"])
    if failed:
        print(
            f"dressvision: error: {failed} of {len(results)} files could not be read",
            file=sys.stderr,
        )
    return 1 if failed else 0
