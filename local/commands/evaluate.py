"""`dressvision evaluate`: per facet and class figures of a facet model on the current labels."""

from __future__ import annotations

import json
from pathlib import Path


def register(commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="per-class precision, recall and F1 of a facet model",
        description=(
            "Evaluate a registered facet model (default: the current one) on the current labels "
            "of the train and test splits, and store its prediction of every image. --json FILE "
            'writes {"version": V, "splits": {"train": {FACET: {"macro_f1", "accuracy", '
            '"per_class": {LABEL: {"precision", "recall", "f1", "support"}}, "confusion"}}, '
            '"test": {...}}}, plus "locator": {"mean_iou", "iou_50", "iou_75"} on the test '
            'split when a dress locator is current, and "similarity": {"unsupervised", '
            '"supervised"}: same-product retrieval on the test split ({"recall_at_1", '
            '"recall_at_5", "map", "queries"}).'
        ),
    )
    parser.add_argument("--version", default=None, help="model version (default: current)")
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write the figures to FILE as JSON"
    )
    parser.set_defaults(func=run)


def print_document(document: dict, title: str) -> None:
    print(title)
    for split, facets in document["splits"].items():
        for facet, report in facets.items():
            print(
                f"  {split:<5} {facet:<11} macro F1 {report['macro_f1']:.3f}  "
                f"accuracy {report['accuracy']:.3f}"
            )
            for label, c in report["per_class"].items():
                print(
                    f"      {label:<14} P {c['precision']:.2f}  R {c['recall']:.2f}  "
                    f"F1 {c['f1']:.2f}  n {c['support']}"
                )


def run(args) -> int:
    import sys

    from batch_jobs.evaluate import evaluate_version
    from batch_jobs.locator.evaluate import evaluate_current_locator
    from batch_jobs.similarity.evaluate import evaluate_current
    from local.runtime import LocalRuntime
    from shared.registry import ModelRegistry

    runtime = LocalRuntime.open(args.home)
    ports = runtime.ports
    evaluation = evaluate_version(ports, args.version, progress=sys.stderr.isatty())
    document = evaluation.document
    locator = evaluate_current_locator(
        ModelRegistry(ports.artifacts), ports.labels.scan(), ports.catalog, settings=ports.settings
    )
    if locator is not None:
        document = {**document, "locator": locator}
    similarity = evaluate_current(ports, evaluation.prepared, document["version"])
    if similarity:
        document = {**document, "similarity": similarity}
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2))
        print(f"wrote {args.json}")
    print_document(document, f"facet model {document['version']}")
    if evaluation.without_crop is not None:
        print_document(evaluation.without_crop, "the same model on whole photos (without crop)")
    if locator is not None:
        print(
            f"dress locator: mean IoU {locator['mean_iou']:.3f}, IoU >= 0.5 on "
            f"{locator['iou_50']:.1%}, IoU >= 0.75 on {locator['iou_75']:.1%} of test images"
        )
    for kind, figures in (document.get("similarity") or {}).items():
        print(
            f"similarity ({kind}): same-product retrieval on the test split, recall@1 "
            f"{figures['recall_at_1']:.3f}, recall@5 {figures['recall_at_5']:.3f}, "
            f"mAP {figures['map']:.3f} ({figures['queries']} queries)"
        )
    for item in evaluation.skipped:
        print(f"skipped {item.image_id}: {item.reason}")
    return 0
