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
            "Generate a small synthetic catalog with some wrong labels, import it through the "
            "ingest handler (twice: a redelivery changes nothing), train the dress locator and "
            "the facet model, tag a few photos, rank the suspicious labels, let a simulated "
            "crowd relabel them in rounds (retraining between them), and show the label error "
            "rate before and after. Small and "
            "quick on purpose: see bench/ for the real figures."
        ),
    )
    parser.add_argument("--products", type=int, default=150, help="products (default 150)")
    parser.add_argument("--seed", type=int, default=7, help="catalog seed (default 7)")
    parser.add_argument("--epochs", type=int, default=25, help="training epochs (default 25)")
    parser.add_argument(
        "--skip-training", action="store_true", help="stop after the import (no torch needed)"
    )
    parser.set_defaults(func=run)


DEMO_REVIEW_LIMIT = 40  # tasks sent to the simulated crowd per round
DEMO_ROUNDS = 2  # the short version of the cycle: two rounds, one retraining between them
DEMO_MIN_CHANGES = 3  # a round that changed fewer labels ends the cycle


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
    if not args.skip_training:
        _train_tag_and_relabel(runtime, catalog, args, interactive)
    print(f"\nState is in {home}; try: dressvision --home {home} labels export --format json")
    return 0


def stored_labels(runtime: LocalRuntime) -> dict[tuple[str, str], str | None]:
    """(image id, facet) -> label, for counting what a round changed."""
    return {(r.image_id, f): v for r in runtime.ports.labels.scan() for f, v in r.facets.items()}


def label_errors(runtime: LocalRuntime, truth_csv: Path) -> tuple[int, int]:
    """(wrong, labelled) facet cells of the store against the generator's true labels."""
    import csv

    with truth_csv.open(newline="") as handle:
        truth = {row["image_id"]: row for row in csv.DictReader(handle)}
    wrong = total = 0
    for record in runtime.ports.labels.scan():
        true = truth.get(record.image_id)
        for facet, label in record.facets.items():
            if label is not None and true is not None and true.get(facet):
                total += 1
                wrong += label != true[facet]
    return wrong, total


def _train_tag_and_relabel(runtime: LocalRuntime, catalog: Path, args, interactive: bool) -> None:
    from dataclasses import replace

    from batch_jobs.facets.predictor import FacetTagger
    from batch_jobs.train import default_args, train
    from local.commands.relabel import other_photos
    from local.commands.tag import tag_paths
    from shared.backends import build_workforce
    from shared.registry import ModelRegistry
    from shared.relabel import collect, publish_tasks, review_labels

    ports = runtime.ports
    _heading(
        f"5. Train the dress locator, then the facet model on its crops ({args.epochs} epochs, "
        "recording its training dynamics)"
    )
    result = train(
        default_args(
            epochs=args.epochs,
            image_size=96,
            locator="train",
            force=True,
            progress=interactive,
        ),
        ports,
    )
    if result.locator:
        print(
            f"locator {result.locator['version']}: mean IoU {result.locator['mean_iou']:.2f} "
            "on the test split"
        )
    test = result.metrics["splits"]["test"]
    print(
        f"facet model {result.version}: test macro F1 "
        + ", ".join(f"{facet} {report['macro_f1']:.2f}" for facet, report in test.items())
    )
    print(
        f"(trained in {result.seconds.get('total', 0):.0f} s from random weights on "
        f"{args.products} products: a toy model that shows the plumbing, not the quality)"
    )

    _heading("6. Tag a few photos")
    tagger = FacetTagger.from_registry(ModelRegistry(ports.artifacts))
    photos = sorted((catalog / "images").rglob("*.jpg"))[:3]
    for entry in tag_paths(photos, tagger, runtime.settings):
        shown = entry["error"] or ", ".join(
            f"{f} {p['label']} ({p['prob']:.2f})" for f, p in entry["facets"].items()
        )
        print(f"  {Path(entry['path']).relative_to(catalog)}: {shown}")

    _heading("7. Rounds: suspicious labels -> a simulated crowd -> corrected labels -> retrain")
    truth = catalog / "labels_true.csv"
    before = label_errors(runtime, truth)
    crowd = build_workforce(
        replace(runtime.settings, workforce="simulated", simulated_truth=str(truth)), ports
    )
    version = result.version
    for number in range(1, DEMO_ROUNDS + 1):
        review = review_labels(ports, version, budget_tasks=DEMO_REVIEW_LIMIT)
        if number == 1:
            for s in review.suspects[:3]:
                print(
                    f"  {s.image_id:<10} {s.facet:<10} {s.label:>14} -> {s.suggested:<14} "
                    f"p(label) {s.self_confidence:.2f}{other_photos(s.siblings)}"
                )
        if warning := review.coverage_warning():
            print(f"  warning: {warning}")
        labels_before = stored_labels(runtime)
        assignments = runtime.settings.max_assignments  # 2 by default, then one at a time
        published = publish_tasks(ports, crowd, review.suspects, max_assignments=assignments)
        ids = set(published.task_ids)
        for _ in range(10):  # undecided tasks ask for more answers, up to 9
            if not collect(ports, crowd).asked_more:
                break
        tasks = [t for t in ports.tasks.list() if t.task_id in ids]
        after = stored_labels(runtime)
        changed = sum(after[cell] != label for cell, label in labels_before.items())
        errors = label_errors(runtime, truth)[0]
        print(
            f"round {number} (model {version}): {len(tasks)} tasks, "
            f"{sum(len(t.votes) for t in tasks)} answers, {changed} labels changed "
            "(a task's answer sets the product's other photos too), "
            f"{sum(t.status == 'escalated' for t in tasks)} escalated to staff; "
            f"{errors} wrong labels left"
        )
        if changed < DEMO_MIN_CHANGES or number == DEMO_ROUNDS:
            break
        # What collect's retraining does (the demo's short recipe): the next round ranks the
        # corrected catalog with the new model's training dynamics.
        version = train(
            default_args(epochs=args.epochs, image_size=96, locator="current", force=True),
            ports,
        ).version
    workers = list(ports.tasks.workers(crowd.name))
    spammers = sorted(w.worker_id for w in workers if w.likely_spammer)
    print(
        f"{len(workers)} workers estimated; likely spammers: {', '.join(spammers) or 'none yet'} "
        f"(see `dressvision --home {runtime.home} workers`)"
    )
    after = label_errors(runtime, truth)
    print(
        f"label errors against the true labels: {before[0]} of {before[1]} before, "
        f"{after[0]} of {after[1]} after"
    )
    _similar_dresses(runtime, args, interactive)


def _similar_dresses(runtime: LocalRuntime, args, interactive: bool) -> None:
    """Step 8: the embedder, the catalog embedded, and two queries with contact sheets."""
    from batch_jobs.infer import infer_catalog
    from batch_jobs.similarity.train import train_similarity
    from batch_jobs.train import default_args
    from local.commands.similar import contact_sheet, print_answer
    from shared.images import open_image
    from shared.similarity import similar

    ports = runtime.ports
    _heading("8. Similar dresses: a triplet-trained embedder, the catalog embedded, two queries")
    trained = train_similarity(default_args(force=True, progress=interactive), ports)
    for kind, figures in trained.metrics["test"].items():
        print(
            f"  {kind:<13} same-product retrieval on the test split: recall@1 "
            f"{figures['recall_at_1']:.2f}, recall@5 {figures['recall_at_5']:.2f}"
        )
    print(f"{infer_catalog(ports).tagged} images embedded into the similarity indexes")
    index = ports.vectors("supervised")
    stored = set(index.ids())
    test = sorted(
        r.image_id
        for r in ports.labels.scan()
        if r.split == "test" and r.status == ImageStatus.OK and r.image_id in stored
    )
    if not test:
        print("no test photo in the index")
        return
    query = test[0]
    record = ports.labels.get(query)
    photo = open_image(ports.catalog.get(record.object_key).body)
    for title, flags, options, name in (
        ("similar to this dress", "", {}, "similar.png"),
        (
            "similar, but with another neckline",
            " --differ neckline",
            {"differ": [("neckline", None)]},
            "neckline.png",
        ),
    ):
        answer = similar(index, query, ports.taxonomy, k=5, **options)
        print(f"-- {title}: dressvision similar {query}{flags}")
        print_answer(answer)
        sheet = contact_sheet(answer, photo, ports, Path(args.home) / name)
        print(f"   contact sheet: {sheet}")
