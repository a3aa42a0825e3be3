"""`dressvision synth-catalog OUT`: a generated catalog for tests, demos and benchmarks."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path


def register(commands) -> None:
    parser = commands.add_parser(
        "synth-catalog",
        help="generate a synthetic dress catalog in the import format",
        description=(
            "Draw product photos of dresses whose facets are visible in the picture, several "
            "photos per product, with dress boxes, imbalanced classes, optional label noise "
            "(true labels in labels_true.csv) and a few corrupt files (listed in corrupt.txt)."
        ),
    )
    parser.add_argument("out", metavar="OUT", type=Path, help="folder to write (created)")
    parser.add_argument("--products", type=int, default=100, help="products (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="share of products whose catalog label is flipped, per facet (default 0)",
    )
    parser.add_argument("--image-size", type=int, default=256, help="pixels (default 256)")
    parser.add_argument(
        "--contact-sheet",
        type=Path,
        metavar="PNG",
        help="also tile the first photos, with labels and boxes, into this PNG to look at",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(func=run)


def run(args) -> int:
    from local.synth_catalog import generate_catalog, make_contact_sheet
    from shared.errors import UsageError

    if args.products < 1:
        raise UsageError("--products must be at least 1")
    if not 0.0 <= args.noise < 1.0:
        raise UsageError("--noise must be in [0, 1)")
    try:
        summary = generate_catalog(
            args.out,
            products=args.products,
            seed=args.seed,
            noise=args.noise,
            image_size=args.image_size,
            progress=not args.json and sys.stderr.isatty(),
        )
    except FileExistsError:
        raise UsageError(f"{args.out} is not empty; choose a new folder") from None
    if args.contact_sheet:
        make_contact_sheet(args.out, args.contact_sheet)
    if args.json:
        print(json.dumps(asdict(summary), default=str))
        return 0
    print(
        f"wrote {summary.images} photos of {summary.products} products to {summary.root} in "
        f"{summary.seconds:.1f} s: {len(summary.corrupt)} corrupt files (corrupt.txt), "
        f"{summary.flipped_labels} flipped labels (true labels in labels_true.csv)"
    )
    return 0
