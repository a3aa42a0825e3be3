"""`dressvision tag PATH...`: the current facet model's labels for image files."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(commands) -> None:
    parser = commands.add_parser(
        "tag",
        help="facets of image files, by the current model",
        description=(
            "Locate, crop and tag image files with the current facet model. --json prints a "
            'list, one entry per path: {"path", "facets": {FACET: {"label", "prob"}}, "error"}; '
            "an unreadable file has empty facets and the reason in error. Exits 1 when any file "
            "could not be tagged (every file is still listed)."
        ),
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def tag_paths(paths: list[Path], tagger, settings) -> list[dict]:
    """One entry per path, in order; unreadable files carry their reason."""
    from shared.errors import InvalidImageError
    from shared.images import open_image

    entries: list[dict] = []
    images, positions = [], []
    for path in paths:
        entry = {"path": str(path), "facets": {}, "error": None}
        try:
            images.append(
                open_image(
                    path, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
                )
            )
            positions.append(len(entries))
        except InvalidImageError as exc:
            entry["error"] = exc.reason
        entries.append(entry)
    for start in range(0, len(images), 64):
        for offset, tagged in enumerate(tagger.tag(images[start : start + 64])):
            entries[positions[start + offset]]["facets"] = {
                facet: {"label": p.label, "prob": round(p.prob, 4)}
                for facet, p in tagged.facets.items()
            }
    return entries


def run(args) -> int:
    from batch_jobs.facets.predictor import FacetTagger
    from local.runtime import LocalRuntime
    from shared.errors import NotFoundError
    from shared.registry import ModelRegistry

    runtime = LocalRuntime.open(args.home)
    tagger = FacetTagger.from_registry(ModelRegistry(runtime.ports.artifacts))
    if tagger is None:
        raise NotFoundError("no facet model is current yet; run `dressvision train` first")
    entries = tag_paths(args.paths, tagger, runtime.settings)
    if args.json:
        print(json.dumps(entries))
    else:
        for entry in entries:
            shown = entry["error"] or ", ".join(
                f"{facet} {p['label']} ({p['prob']:.2f})" for facet, p in entry["facets"].items()
            )
            print(f"{entry['path']}: {shown}")
    failed = sum(1 for entry in entries if entry["error"] is not None)
    if failed:
        print(
            f"dressvision: error: {failed} of {len(entries)} files could not be tagged",
            file=sys.stderr,
        )
    return 1 if failed else 0
