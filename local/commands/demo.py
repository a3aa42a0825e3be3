"""`dressvision demo`: the whole loop on a generated catalog, on this machine."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from local.commands.importer import import_catalog, print_summary
from local.runtime import LocalRuntime
from shared.records import ImageStatus


def register(commands) -> None:
    parser = commands.add_parser(
        "demo",
        help="run the whole loop on a generated catalog",
        description=(
            "Generate a small synthetic catalog, import it through the ingest handler (twice, to "
            "show that a redelivery changes nothing), and show what was registered, with which "
            "split, and what was rejected and why."
        ),
    )
    parser.add_argument("--products", type=int, default=60, help="products (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="catalog seed (default 7)")
    parser.set_defaults(func=run)


def _heading(text: str) -> None:
    print(f"\n== {text}")


def run(args) -> int:
    from local.synth_catalog import generate_catalog

    home = Path(args.home)
    catalog = home / f"catalog-{args.products}-{args.seed}"
    runtime = LocalRuntime.open(home)
    interactive = sys.stderr.isatty()

    _heading(f"1. Generate a catalog of {args.products} products in {catalog}")
    if not (catalog / "labels.csv").exists():
        generate_catalog(
            catalog, products=args.products, seed=args.seed, noise=0.05, progress=interactive
        )
    print(f"{sum(1 for _ in (catalog / 'images').rglob('*.jpg'))} photos and labels.csv")

    _heading("2. Import it (upload -> S3-shaped notification -> ingest handler -> label store)")
    print_summary(import_catalog(runtime, catalog, progress=interactive))

    _heading("3. Import it again: at-least-once delivery must change nothing")
    print_summary(import_catalog(runtime, catalog, progress=False))

    _heading("4. What the label store holds")
    records = list(runtime.ports.labels.scan())
    ok = [r for r in records if r.status == ImageStatus.OK]
    products = {r.product_id: r.split for r in ok}
    split_counts = Counter(products.values())
    print(
        f"{len(ok)} usable images of {len(products)} products; products per split: "
        f"{split_counts['train']} train, {split_counts['test']} test "
        "(fixed from a hash of the product id)"
    )
    for facet in runtime.ports.taxonomy.facet_names:
        counts = Counter(r.facets.get(facet) for r in ok)
        shown = ", ".join(
            f"{label} {counts.get(label, 0)}" for label in runtime.ports.taxonomy.labels(facet)
        )
        print(f"  {facet:<10} {shown}")
    print(f"\nState is in {home}; try: dressvision --home {home} labels export --format json")
    return 0
