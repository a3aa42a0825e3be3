"""The humans-in-the-loop cycle, measured round by round (issue 13).

1. `dressvision synth-catalog` with 8% label noise per facet (seed 0), imported.
2. The first training with the deployment's recipe: every train image is judged by its
   training dynamics (its probabilities averaged over the first half of the training, before
   the network memorises wrong labels; `--oof-folds K`: by K fold models instead), every test
   image by the model.
3. Round r: the review (`lambdas/review.py`, as the review queue delivers it) ranks the labels
   most likely wrong across facets (confident learning, self-confidence order), within the
   budget (`--budget-tasks` per round, default unlimited), skipping what people decided; it is
   scored against the labels still wrong (catalog label != true label): precision and recall
   at K = the number of labels still wrong. The simulated crowd (12 workers of 60-90%
   accuracy, two spammers) answers with the deployment's policy (`--answers` at first, then
   `--ask-step` more at a time while undecided, the model's suggestion weighed as a witness);
   `collect` runs until no task asks for more answers; then `maybe_retrain` submits the
   deployment's training recipe (the same one as the first training; with `--holdout-folds N`,
   DRESSVISION_LOOP_HOLDOUT_FOLDS, each retraining leaves out a different one of N folds of
   train products, which its model then judges out of sample), the local runtime runs
   it, and its events do what they do on AWS: a promoted model re-infers the catalog, and the
   re-inference queues the next round's review. The loop stops when a round changed fewer
   labels than `--min-changes` (DRESSVISION_LOOP_MIN_CHANGES), when the retrained model was not
   promoted, or after `--max-rounds`.

Reported per round: precision and recall at K, tasks published, answers bought, labels
changed, wrong labels left in the store (all images), the test macro F1 of the round's model
against the TRUE test labels. Writes bench/results/loop.json and prints a Markdown table.

    .venv/bin/python bench/loop.py                       # the issue's setting: 500 products
    .venv/bin/python bench/loop.py --products 150 --epochs 12   # a reduced run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch_jobs.facets.predictor import KIND as FACETS  # noqa: E402
from local.commands.demo import stored_labels  # noqa: E402
from local.commands.importer import import_catalog  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from local.synth_catalog import generate_catalog  # noqa: E402
from shared.env import Settings  # noqa: E402
from shared.records import ImageStatus, LabelRecord  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "loop.json"
MAX_COLLECT_ROUNDS = 10  # collect passes: from 2 answers, one at a time, to the cap of 9


def read_truth(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {row["image_id"]: row for row in csv.DictReader(handle)}


def usable(runtime: LocalRuntime) -> list[LabelRecord]:
    return [r for r in runtime.ports.labels.scan() if r.status == ImageStatus.OK]


def wrong_cells(
    records: list[LabelRecord], truth: dict[str, dict[str, str]]
) -> set[tuple[str, str]]:
    """(image id, facet) of every stored label that differs from the true one."""
    return {
        (r.image_id, facet)
        for r in records
        for facet, label in r.facets.items()
        if label is not None and label != truth[r.image_id][facet]
    }


def error_rates(records: list[LabelRecord], truth: dict[str, dict[str, str]]) -> dict:
    wrong = wrong_cells(records, truth)
    split = {r.image_id: r.split for r in records}
    out = {}
    for name in ("train", "test", None):
        cells = sum(
            1
            for r in records
            if name is None or r.split == name
            for label in r.facets.values()
            if label is not None
        )
        errors = sum(1 for image_id, _ in wrong if name is None or split[image_id] == name)
        out[name or "all"] = {"wrong": errors, "labels": cells, "rate": round(errors / cells, 4)}
    return out


def true_test_f1(runtime: LocalRuntime, version: str, truth) -> dict[str, float]:
    """Macro F1 per facet of model `version` on the test split's TRUE labels."""
    from batch_jobs.evaluate import evaluate_records
    from batch_jobs.facets.predictor import FacetTagger
    from shared.registry import ModelRegistry

    tagger = FacetTagger.from_registry(ModelRegistry(runtime.ports.artifacts), version)
    records = [
        r.model_copy(update={"facets": {f: truth[r.image_id][f] for f in r.facets}})
        for r in usable(runtime)
        if r.split == "test"
    ]
    evaluation = evaluate_records(tagger, records, runtime.ports, with_uncropped=False)
    test = evaluation.document["splits"]["test"]
    return {facet: round(report["macro_f1"], 4) for facet, report in test.items()}


def mean(values: dict[str, float]) -> float:
    return round(sum(values.values()) / len(values), 4)


def cells(suspect) -> list[tuple[str, str]]:
    """The labels a suspect stands for: its photo's and its product's other photos'."""
    return [(image_id, suspect.facet) for image_id in (suspect.image_id, *suspect.siblings)]


def precision_recall_at_k(suspects, wrong: set[tuple[str, str]]) -> dict:
    """Precision and recall of the top K labels of the ranking, K = the number of labels still
    wrong (a suspect stands for its product's photos: one label each), and of the tasks."""
    k = len(wrong)
    top = [cell for s in suspects for cell in cells(s)][:k]
    hits = sum(cell in wrong for cell in top)
    flagged = [cell for s in suspects for cell in cells(s)]
    return {
        "k": k,
        "flagged": len(flagged),
        "suspects": len(suspects),
        "precision_at_k": round(hits / len(top), 4) if top else None,
        "recall_at_k": round(hits / k, 4) if k else None,
        "precision_flagged": round(sum(c in wrong for c in flagged) / len(flagged), 4)
        if flagged
        else None,
        "suspects_right": round(sum(cells(s)[0] in wrong for s in suspects) / len(suspects), 4)
        if suspects
        else None,
    }


def wrong_images(records: list[LabelRecord], truth) -> float:
    """Share of images with at least one wrong label."""
    wrong = {image_id for image_id, _ in wrong_cells(records, truth)}
    return round(len(wrong) / len(records), 4)


def markdown_table(rounds: list[dict]) -> str:
    head = (
        "| round | model | precision@K | recall@K | K | tasks | answers | labels changed | "
        "fixed | wrong labels after | wrong images after | test macro F1 (true labels) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {r['round']} | {r['model']} | {r['ranking']['precision_at_k']} | "
        f"{r['ranking']['recall_at_k']} | {r['ranking']['k']} | {r['tasks']} | {r['answers']} | "
        f"{r.get('labels_changed', r['changed'])} | {r['fixed']} | "
        f"{r['wrong_labels_after']} | {r['wrong_images_after']} | "
        f"{r['test_macro_f1_true']} |\n"
        for r in rounds
    )
    return head + rows


def request_fold(runtime: LocalRuntime) -> int | None:
    """The fold of train products the round's model left out (None: the first training)."""
    from shared.errors import NotFoundError
    from shared.keys import TRAIN_REQUEST_KEY

    try:
        return json.loads(runtime.ports.artifacts.get(TRAIN_REQUEST_KEY).body).get("holdout_fold")
    except NotFoundError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.08)
    parser.add_argument(
        "--oof-folds",
        type=int,
        default=0,
        help="judge the train split with K fold models instead of the training dynamics",
    )
    parser.add_argument(
        "--holdout-folds",
        type=int,
        default=Settings.loop_holdout_folds,
        help="the loop's retrainings leave one of N folds of train products out, a different "
        "one each round, judged by the new model (DRESSVISION_LOOP_HOLDOUT_FOLDS; default "
        f"{Settings.loop_holdout_folds})",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the recipe's)"
    )
    parser.add_argument("--budget-tasks", type=int, default=None, help="tasks per round")
    parser.add_argument(
        "--answers",
        type=int,
        default=Settings.max_assignments,
        help=f"answers a task is published with (default {Settings.max_assignments})",
    )
    parser.add_argument(
        "--ask-step",
        type=int,
        default=Settings.ask_step,
        help=f"more answers asked at a time while undecided (default {Settings.ask_step})",
    )
    parser.add_argument(
        "--doubt",
        type=float,
        default=Settings.review_doubt,
        help="DRESSVISION_REVIEW_DOUBT: also ask about labels the model gives less than this "
        f"share of its class's mean (default {Settings.review_doubt})",
    )
    parser.add_argument("--min-changes", type=int, default=10, help="stop below this per round")
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument(
        "--force-promote",
        action="store_true",
        help="promote every retrained model even when its test macro F1 (on the store's "
        "labels) is worse: for reduced runs whose weak models fluctuate; off by default",
    )
    parser.add_argument("--work", type=Path, default=None, help="folder for catalog and home")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dressvision-loop-"))
    started = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        seconds[name] = round(time.perf_counter() - started - sum(seconds.values()), 1)
        print(f"[{name}] {seconds[name]:.0f} s", flush=True)

    catalog = work / "catalog"
    if not (catalog / "labels.csv").exists():
        generate_catalog(catalog, products=args.products, seed=args.seed, noise=args.noise)
    truth = read_truth(catalog / "labels_true.csv")
    environ = {
        "DRESSVISION_RETRAIN_THRESHOLD": str(args.min_changes),  # a round that continues retrains
        "DRESSVISION_LOOP_MIN_CHANGES": str(args.min_changes),
        "DRESSVISION_LOOP_HOLDOUT_FOLDS": str(args.holdout_folds),
        "DRESSVISION_WORKFORCE": "simulated",
        "DRESSVISION_SIMULATED_TRUTH": str(catalog / "labels_true.csv"),
        "DRESSVISION_MAX_ASSIGNMENTS": str(args.answers),
        "DRESSVISION_ASK_STEP": str(args.ask_step),
        "DRESSVISION_REVIEW_DOUBT": repr(args.doubt),
    }
    runtime = LocalRuntime.open(work / "home", environ=environ)
    import_catalog(runtime, catalog, progress=False)
    images = len(usable(runtime))
    before = error_rates(usable(runtime), truth)
    wrong_images_before = wrong_images(usable(runtime), truth)
    print(f"{images} images, {before['all']['wrong']} wrong labels injected", flush=True)
    lap("generate_and_import")

    from batch_jobs.train import default_args, train
    from lambdas.review import ReviewRequest, review
    from shared import relabel
    from shared.backends import build_workforce
    from shared.messages import JobRequest
    from shared.recipe import TrainingRecipe
    from shared.registry import ModelRegistry

    recipe = replace(TrainingRecipe.from_settings(runtime.settings), oof_folds=args.oof_folds)
    if args.epochs is not None:
        recipe = replace(recipe, epochs=args.epochs)
    if args.force_promote:
        recipe = replace(recipe, force=True)

    # The retraining collect submits carries this recipe (the deployment's, with the bench's
    # epochs and folds: the settings have no epochs).
    def loop_request(ports, holdout_fold=None):
        held = recipe
        if holdout_fold is not None and args.holdout_folds:
            held = replace(recipe, holdout_folds=args.holdout_folds, holdout_fold=holdout_fold)
        return JobRequest(name="train", args=held.to_args())

    relabel.training_request = loop_request
    first_args = {"oof_folds": args.oof_folds, "locator": "train"}
    if args.epochs is not None:
        first_args["epochs"] = args.epochs
    train(default_args(**first_args), runtime.ports)
    lap("first_training")

    crowd_settings = replace(runtime.settings, simulated_seed=args.seed)
    crowd = build_workforce(crowd_settings, runtime.ports)
    # The review queue's messages are kept, to be scored before the review Lambda runs them.
    messages: list[dict] = []
    runtime._review_handler = lambda event: (
        messages.extend(json.loads(r["body"]) for r in event["Records"])
        or {"batchItemFailures": []}
    )
    holding = replace(runtime.ports, settings=replace(runtime.settings, retrain_threshold=10**9))
    registry = ModelRegistry(runtime.ports.artifacts)
    request = {"round": True}
    rounds: list[dict] = []

    def write_report(stopped: str) -> dict:
        """The report so far, written to --out: after every round, so that a run stopped
        between rounds (each a training of several minutes) keeps what it measured."""
        final = usable(runtime)
        final_version = registry.current(FACETS)
        answers = sum(r["answers"] for r in rounds)
        fixed = sum(r["fixed"] for r in rounds)
        report = {
            "command": " ".join(["python", "bench/loop.py", *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
            "catalog": {
                "products": args.products,
                "seed": args.seed,
                "noise_per_facet": args.noise,
                "images": images,
            },
            "crowd": {"answers_at_first": args.answers, "ask_step": args.ask_step},
            "review": {"by_product": True, "doubt": args.doubt},
            "recipe": {
                "epochs": recipe.epochs,
                "oof_folds": args.oof_folds,
                "loop_holdout_folds": args.holdout_folds,
                "force_promote": args.force_promote,
            },
            "rounds": rounds,
            "stopped": stopped,
            "label_error_rate": {"before": before, "after": error_rates(final, truth)},
            "wrong_images": {"before": wrong_images_before, "after": wrong_images(final, truth)},
            "answers_per_label_fixed": round(answers / fixed, 2) if fixed else None,
            "final_model": final_version,
            "final_test_macro_f1_true": mean(true_test_f1(runtime, final_version, truth)),
            "seconds": seconds,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        return report

    stopped = f"after --max-rounds {args.max_rounds}"
    for number in range(1, args.max_rounds + 1):
        version = registry.current(FACETS)
        labels_before = stored_labels(runtime)
        wrong = wrong_cells(usable(runtime), truth)
        ranking = relabel.review_labels(runtime.ports, version)
        scored = precision_recall_at_k(ranking.suspects, wrong)
        print(f"round {number}: {json.dumps(scored)}", flush=True)
        request = {**request, "model_version": version, "limit": args.budget_tasks or 10**9}
        published = review(runtime.ports, crowd, ReviewRequest(**request))
        if published.get("reason"):
            stopped = published["reason"]
            break
        round_ids = {t.task_id for t in runtime.ports.tasks.list("open")}
        for _ in range(MAX_COLLECT_ROUNDS):
            if not relabel.collect(holding, crowd).asked_more:
                break
        tasks = [t for t in runtime.ports.tasks.list() if t.task_id in round_ids]
        decided = [t for t in tasks if t.status == "decided"]
        changed = sum(t.outcome != t.current_label for t in decided)
        after = usable(runtime)
        wrong_after = wrong_cells(after, truth)
        labels_after = stored_labels(runtime)
        rounds.append(
            {
                "round": number,
                "model": version,
                "held_out_fold": request_fold(runtime),
                "ranking": scored,
                "without_predictions": ranking.without_predictions,
                "tasks": len(tasks),
                "answers": sum(len(t.votes) for t in tasks),
                "changed": changed,
                "labels_changed": sum(
                    labels_after[cell] != label for cell, label in labels_before.items()
                ),
                # Labels: a task's decision also sets its product's other photos.
                "fixed": len(wrong - wrong_after),
                "broken": len(wrong_after - wrong),
                "escalated_to_staff": sum(t.status == "escalated" for t in tasks),
                "wrong_labels_after": len(wrong_after),
                "wrong_images_after": wrong_images(after, truth),
                "test_macro_f1_true": mean(true_test_f1(runtime, version, truth)),
            }
        )
        print(json.dumps(rounds[-1]), flush=True)
        lap(f"round_{number}")
        write_report(f"running: round {number} done, its retraining not yet")
        labels_changed = rounds[-1]["labels_changed"]
        if labels_changed < args.min_changes:
            stopped = f"round {number} changed {labels_changed} labels (< {args.min_changes})"
            break
        job = relabel.maybe_retrain(runtime.ports)
        if job is None:
            stopped = f"round {number}: too few changes to retrain"
            break
        messages.clear()
        runtime.wait_for_jobs()  # the training, and what its end submits: the re-inference
        runtime.wait_for_jobs()  # the re-inference, whose end queues the next round
        if runtime.jobs.status(job) != "SUCCEEDED":
            raise SystemExit(f"retraining job {job} failed; see {runtime.jobs.log_path(job)}")
        lap(f"retrain_{number}")
        rounds_queued = [m for m in messages if m.get("round")]
        if registry.current(FACETS) == version or not rounds_queued:
            stopped = f"round {number}: the retrained model was not promoted"
            break
        request = rounds_queued[-1]

    print(json.dumps(write_report(stopped), indent=2))
    print(markdown_table(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
