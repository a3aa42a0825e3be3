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
            "of the train and test splits, and store its prediction of every image. --json "
            "prints one JSON object on stdout (--output FILE writes it to FILE): "
            '{"version": V, "splits": {"train": {FACET: {"macro_f1", "accuracy", '
            '"per_class": {LABEL: {"precision", "recall", "f1", "support"}}, "confusion"}}, '
            '"test": {...}}}, plus "locator": {"mean_iou", "iou_50", "iou_75"} on the test '
            'split when a dress locator is current, and "similarity": {"unsupervised", '
            '"supervised"}: same-product retrieval on the test split ({"recall_at_1", '
            '"recall_at_5", "map", "queries"}).'
        ),
    )
    parser.add_argument(
        "--model-version", default=None, metavar="V", help="model version (default: current)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument(
        "--output", type=Path, default=None, metavar="FILE", help="write the JSON figures to FILE"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write PNG figures to DIR: a confusion matrix per facet and split "
        "(confusion_<split>_<facet>.png) and the training curves (training_curves.png)",
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
    evaluation = evaluate_version(
        ports, args.model_version, progress=not args.json and sys.stderr.isatty()
    )
    document = evaluation.document
    locator = evaluate_current_locator(
        ModelRegistry(ports.artifacts), ports.labels.scan(), ports.catalog, settings=ports.settings
    )
    if locator is not None:
        document = {**document, "locator": locator}
    similarity = evaluate_current(ports, evaluation.prepared, document["version"])
    if similarity:
        document = {**document, "similarity": similarity}
    if args.output is not None:
        args.output.write_text(json.dumps(document, indent=2))
    if args.plot is not None:
        from batch_jobs.evaluate import model_history
        from batch_jobs.plots import write_plots

        history = model_history(ModelRegistry(ports.artifacts), document["version"])
        written = write_plots(document, history, args.plot)
        print(f"wrote {len(written)} figures to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(document))
        return 0
    if args.output is not None:
        print(f"wrote {args.output}")
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
