"""`dressvision similar IMAGE_ID|PATH`: the catalog's dresses most like one, optionally with a
facet kept or changed ("like this one, but with another neckline").

An image id is looked up in the similarity index (its stored embedding and predicted facets;
no model is loaded); a file path is located, tagged and embedded here, with torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from shared.keys import EMBEDDING_KINDS


def register(commands) -> None:
    parser = commands.add_parser(
        "similar",
        help="the most similar dresses of the catalog, optionally with a facet changed",
        description=(
            "Query the similarity index with a catalog image id (or an image file). --same "
            "FACET keeps the query's predicted FACET; --differ FACET asks for another label of "
            "it, --differ FACET=LABEL for that label; --other-products leaves out the query's "
            "own product. --json prints exactly one object: "
            '{"query": {"image_id", "facets"}, "results": [{"image_id", "product_id", "score", '
            '"facets"}]}, best first, never the query image itself.'
        ),
    )
    parser.add_argument("image", metavar="IMAGE_ID|PATH", help="a catalog image id or a file")
    parser.add_argument("--k", type=int, default=10, help="how many results (default 10)")
    parser.add_argument(
        "--same", action="append", default=[], metavar="FACET", help="keep this facet's label"
    )
    parser.add_argument(
        "--differ",
        action="append",
        default=[],
        metavar="FACET[=LABEL]",
        help="another label of FACET (or exactly LABEL)",
    )
    parser.add_argument(
        "--other-products", action="store_true", help="leave out the query's own product"
    )
    parser.add_argument(
        "--kind",
        choices=EMBEDDING_KINDS,
        default=None,
        help="embedding (default: supervised once an embedder is trained, else unsupervised)",
    )
    parser.add_argument(
        "--contact-sheet",
        type=Path,
        default=None,
        metavar="PNG",
        help="draw the query and its results with their facets",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def embed_file(path: Path, kind: str, ports) -> tuple[list[float], dict[str, str]]:
    """The embedding of an image file and its metadata (predicted facets, embedder version)."""
    from batch_jobs.facets.predictor import FacetTagger, facet_predictions
    from batch_jobs.similarity.embedder import load_embedders
    from shared.errors import NotFoundError
    from shared.images import open_image
    from shared.registry import ModelRegistry
    from shared.similarity import MODEL_VERSION

    registry = ModelRegistry(ports.artifacts)
    tagger = FacetTagger.from_registry(registry)
    if tagger is None:
        raise NotFoundError("no facet model is current yet; run `dressvision train` first")
    embedders = load_embedders(registry, tagger)
    if kind not in embedders:
        raise NotFoundError(
            f"no {kind} embedder yet; run `dressvision train --what similarity` first"
        )
    settings = ports.settings
    img = open_image(path, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    prepared, _, _ = tagger.prepare([img])  # locate and crop once, for both models
    predicted = facet_predictions(tagger.probs(prepared), 0, tagger.taxonomy)
    vector = embedders[kind].embed(prepared)[0]
    facets = {facet: p.label for facet, p in predicted.items()}
    return vector.tolist(), {**facets, MODEL_VERSION: embedders[kind].version or ""}


def contact_sheet(answer: dict, query_image, ports, out: Path, *, thumb: int = 180) -> Path:
    """The query (first, framed) and its results in one row, each with its facets below."""
    from PIL import Image, ImageDraw, ImageFont

    from shared.errors import DressvisionError
    from shared.images import open_image

    def photo(image_id: str):
        record = ports.labels.get(image_id)
        if record is None:
            return None
        try:
            return open_image(ports.catalog.get(record.object_key).body)
        except DressvisionError:
            return None

    asked = answer["query"]
    tiles = [(query_image, asked["image_id"] or "query", asked["facets"], None)]
    for r in answer["results"]:
        tiles.append((photo(r["image_id"]), r["image_id"], r["facets"], r["score"]))
    font = ImageFont.load_default(size=11)
    text_h = 14 * (len(answer["query"]["facets"]) + 2) + 4
    sheet = Image.new("RGB", (len(tiles) * thumb, thumb + text_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (img, title, facets, score) in enumerate(tiles):
        x = i * thumb
        if img is not None:
            factor = thumb / max(img.size)
            size = (max(1, round(img.width * factor)), max(1, round(img.height * factor)))
            small = img.resize(size)
            sheet.paste(small, (x, 0))
        if i == 0:
            draw.rectangle([x + 1, 1, x + thumb - 2, thumb - 2], outline=(0, 90, 200), width=3)
        lines = [(title if score is None else f"{title}  {score:.3f}", (30, 30, 30))]
        for f, label in facets.items():  # a facet other than the query's in red
            changed = i > 0 and asked["facets"].get(f) != label
            lines.append((f"{f[:4]}: {label}", (200, 0, 0) if changed else (30, 30, 30)))
        for j, (line, color) in enumerate(lines):
            draw.text((x + 4, thumb + 2 + 14 * j), line, fill=color, font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


def query(args, ports) -> tuple[dict, object]:
    """The answer, and the query's photo (for the contact sheet)."""
    from shared.errors import NotFoundError
    from shared.similarity import check_kind, default_kind, parse_differ, search, similar

    if ports.vectors is None:
        raise NotFoundError("this deployment has no similarity index")
    kind = check_kind(args.kind or default_kind(ports.artifacts))
    index = ports.vectors(kind)
    options = dict(
        k=args.k,
        same=args.same,
        differ=[parse_differ(d) for d in args.differ],
        other_products=args.other_products,
    )
    path = Path(args.image)
    record = ports.labels.get(args.image)
    if record is None and path.is_file():
        from shared.images import open_image

        vector, metadata = embed_file(path, kind, ports)
        answer = search(index, vector, metadata, ports.taxonomy, **options)
        return answer, open_image(path)
    answer = similar(index, args.image, ports.taxonomy, **options)
    image = None
    if record is not None:
        from shared.errors import DressvisionError
        from shared.images import open_image

        try:
            image = open_image(ports.catalog.get(record.object_key).body)
        except DressvisionError:
            image = None
    return answer, image


def run(args) -> int:
    from local.runtime import LocalRuntime

    runtime = LocalRuntime.open(args.home)
    answer, image = query(args, runtime.ports)
    if args.contact_sheet is not None:
        contact_sheet(answer, image, runtime.ports, args.contact_sheet)
    if args.json:
        print(json.dumps(answer))
        return 0
    print_answer(answer)
    if args.contact_sheet is not None:
        print(f"wrote {args.contact_sheet}")
    return 0


def print_answer(answer: dict) -> None:
    q = answer["query"]
    shown = ", ".join(f"{f} {label}" for f, label in q["facets"].items())
    print(f"query {q['image_id'] or '(file)'}: {shown}")
    if not answer["results"]:
        print("  nothing matches")
    for rank, r in enumerate(answer["results"], 1):
        diff = ", ".join(
            f"{f} {label}" for f, label in r["facets"].items() if q["facets"].get(f) != label
        )
        print(
            f"  {rank:>2}. {r['image_id']:<16} {r['score']:.3f}  product {r['product_id']}"
            + (f"  ({diff})" if diff else "")
        )
