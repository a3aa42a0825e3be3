"""`dressvision train`: train the facet model (and the locator) on the current labels, here.

The same function and the same recipe as the Batch job (`python -m batch_jobs.train`), run in
this process so the progress bars show; the labels snapshot, registry and promotion rule are
the job's. The options are the recipe's (`shared/recipe.py`, shared with the job through
`parents=`), over the home's settings (`DRESSVISION_IMAGE_SIZE`, `DRESSVISION_TRAIN_BATCH_SIZE`):
with no option this trains exactly what a deployment's automatic training does. This command
changes no recipe default (see `training_args`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from shared.recipe import TrainingRecipe, recipe_parser


def register(commands) -> None:
    parser = commands.add_parser(
        "train",
        parents=[recipe_parser()],
        help="train the facet model on the current labels",
        description=(
            "Export a labels snapshot, train the dress locator on it when none is current "
            "(--locator), train the facet model on the located crops, evaluate it on the fixed "
            "train/test splits, save it in the model registry and promote it if its test macro "
            "F1 is not worse than the current model's. Predictions of every image are stored, "
            "and the train split's training dynamics, which `review` judges its labels with "
            "(--dynamics; or out-of-fold models, --oof-folds)."
        ),
    )
    parser.add_argument(
        "--what",
        choices=("facets", "similarity", "all"),
        default="facets",
        help="the facet model (default), the similarity embedder (needs a facet model), or both",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print {"version", "promoted", "test_macro_f1", "facets": {FACET: {"train", '
        '"test"}}, "locator", "skipped", "seconds"}',
    )
    parser.set_defaults(func=run)


def training_args(args, settings):
    """The job's complete options: this command's recipe options over the recipe of
    `settings`, and the job's run options. The one thing decided here is a run option, not a
    recipe default: progress bars when a person watches a terminal."""
    from batch_jobs.train import default_args

    recipe = TrainingRecipe.from_args(args, TrainingRecipe.from_settings(settings))
    return default_args(
        **asdict(recipe), progress=not args.json and sys.stderr.isatty(), what=args.what
    )


def summarize(result) -> dict:
    metrics = result.metrics
    facets = {
        facet: {split: metrics["splits"][split][facet]["macro_f1"] for split in ("train", "test")}
        for facet in metrics["splits"]["test"]
    }
    return {
        "version": result.version,
        "promoted": result.promoted,
        "test_macro_f1": metrics["test_macro_f1"],
        "facets": facets,
        "locator": result.locator,
        "skipped": result.skipped,
        "seconds": result.seconds,
    }


def run(args) -> int:
    from batch_jobs.train import train
    from local.runtime import LocalRuntime

    runtime = LocalRuntime.open(args.home)
    if args.what == "similarity":
        return train_embedder(args, runtime)
    result = train(training_args(args, runtime.settings), runtime.ports)
    data = summarize(result)
    if args.json:
        print(json.dumps(data))
        return 0
    if result.locator:
        loc = result.locator
        print(
            f"locator {loc['version']}: mean IoU {loc['mean_iou']:.3f}, "
            f"{'promoted' if loc['promoted'] else 'not promoted'}"
        )
    state = "promoted" if result.promoted else "NOT promoted (worse than the current model)"
    print(f"facet model {result.version}: {state}, {data['seconds']['total']:.0f} s")
    print(f"  {'facet':<12}{'train F1':>10}{'test F1':>10}")
    for facet, f1 in data["facets"].items():
        print(f"  {facet:<12}{f1['train']:>10.3f}{f1['test']:>10.3f}")
    for item in result.skipped:
        print(f"  skipped {item['image_id']}: {item['reason']}")
    return train_embedder(args, runtime) if args.what == "all" else 0


def train_embedder(args, runtime) -> int:
    """`--what similarity`: the supervised embedder (batch_jobs/similarity/train.py)."""
    from batch_jobs.infer import infer_catalog
    from batch_jobs.similarity.train import summary, train_similarity

    ports = runtime.ports
    result = train_similarity(training_args(args, runtime.settings), ports)
    data = summary(result)
    if result.promoted:  # on AWS, batch_events submits this re-inference
        data["embedded"] = infer_catalog(ports).tagged
    if args.json:
        print(json.dumps(data))
        return 0
    state = "promoted" if result.promoted else "NOT promoted (worse than the current one)"
    print(f"similarity embedder {result.version}: {state}, {result.seconds['total']:.0f} s")
    for kind, figures in data["similarity"].items():
        print(
            f"  {kind:<13} test recall@1 {figures['recall_at_1']:.3f}  "
            f"recall@5 {figures['recall_at_5']:.3f}  mAP {figures['map']:.3f}"
        )
    if "embedded" in data:
        print(f"  {data['embedded']} catalog images embedded into the similarity indexes")
    return 0
