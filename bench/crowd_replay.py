"""The crowd's decision policy (issue 13: answers bought per label fixed), measured by replaying
round 1 of a `bench/loop.py` run: same catalog, same flips, same first model's predictions;
no training.

For every combination of `--answers` (DRESSVISION_MAX_ASSIGNMENTS: the answers a task is
published with), `--ask-step` (DRESSVISION_ASK_STEP: how many more while it is undecided),
`--witness` (whether the model's suggestion joins Dawid-Skene as a pseudo-worker,
`shared.relabel.MODEL_WITNESS`), `--threshold` (the posterior a decision needs) and `--doubt`
(DRESSVISION_REVIEW_DOUBT: what the review flags), and every crowd seed of `--seeds`, a fresh
home imports the run's catalog (its catalog labels, 8% of them wrong), gets a copy of the first
model's stored predictions (its own and the train split's judging ones), and runs the round as
bench/loop.py does: the review publishes every flagged label, the simulated crowd (12 workers
of 60-90% accuracy, two spammers; the seed draws who they are and what they answer) answers,
`collect` runs until no task asks for more answers (decided at the posterior threshold with two
people agreeing, up to 9 answers; then staff). Reported per replay: tasks, answers, labels
changed by the tasks, labels fixed and labels made wrong (counted in the store: a task's
decision also sets its product's other photos), escalations, answers per label fixed, and the
wrong labels left; per policy, the mean and the range over the seeds.

    .venv/bin/python bench/crowd_replay.py --work /tmp/loop --answers 2 3 --ask-step 1 2 \\
        --witness on off --seeds 0 1 2 --out bench/results/crowd_replay.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loop import MAX_COLLECT_ROUNDS, read_truth, usable, wrong_cells  # noqa: E402
from bench.oof_options import emit  # noqa: E402
from local.commands.importer import import_catalog  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from shared.relabel import oof_version  # noqa: E402


def replay(
    work: Path,
    version: str,
    answers: int,
    seed: int,
    *,
    ask_step: int = 1,
    witness: bool = True,
    threshold: float = 0.9,
    doubt: float | None = None,
) -> dict:
    from lambdas.review import ReviewRequest, review
    from shared import relabel
    from shared.aggregation import AggregationConfig
    from shared.backends import build_workforce

    catalog = work / "catalog"
    truth = read_truth(catalog / "labels_true.csv")
    home = work / "replay"
    shutil.rmtree(home, ignore_errors=True)
    runtime = LocalRuntime.open(
        home,
        environ={
            "DRESSVISION_WORKFORCE": "simulated",
            "DRESSVISION_SIMULATED_TRUTH": str(catalog / "labels_true.csv"),
            "DRESSVISION_MAX_ASSIGNMENTS": str(answers),
            **({} if doubt is None else {"DRESSVISION_REVIEW_DOUBT": repr(doubt)}),
        },
    )
    import_catalog(runtime, catalog, progress=False)
    source = LocalRuntime.open(work / "home", environ={}).ports.predictions
    for name in (version, oof_version(version)):
        runtime.ports.predictions.put_many(list(source.for_model(name)))
    wrong_before = wrong_cells(usable(runtime), truth)
    crowd = build_workforce(replace(runtime.settings, simulated_seed=seed), runtime.ports)
    holding = replace(runtime.ports, settings=replace(runtime.settings, retrain_threshold=10**9))
    review(runtime.ports, crowd, ReviewRequest(model_version=version, limit=10**9))
    config = AggregationConfig(ask_step=ask_step, model_witness=witness, threshold=threshold)
    for _ in range(MAX_COLLECT_ROUNDS):
        if not relabel.collect(holding, crowd, config=config).asked_more:
            break
    tasks = list(runtime.ports.tasks.list())
    decided = [t for t in tasks if t.status == "decided"]
    changed = [t for t in decided if t.outcome != t.current_label]
    wrong_after = wrong_cells(usable(runtime), truth)
    # Labels, not tasks: a task's decision also sets its product's other photos.
    fixed = len(wrong_before - wrong_after)
    bought = sum(len(t.votes) for t in tasks)
    result = {
        "answers_per_task_at_first": answers,
        "ask_step": ask_step,
        "model_witness": witness,
        "posterior_threshold": threshold,
        "review_doubt": runtime.settings.review_doubt,
        "crowd_seed": seed,
        "tasks": len(tasks),
        "answers": bought,
        "changed": len(changed),
        "fixed": fixed,
        "changed_to_a_wrong_label": len(wrong_after - wrong_before),
        "escalated_to_staff": sum(t.status == "escalated" for t in tasks),
        "answers_per_label_fixed": round(bought / fixed, 2) if fixed else None,
        "wrong_labels": {
            "before": len(wrong_before),
            "after": len(wrong_after),
        },
    }
    shutil.rmtree(home, ignore_errors=True)  # a replay is read once: keep the disk
    return result


def policies(replays: list[dict]) -> list[dict]:
    """Per (answers at first, ask step, witness): the mean and range of each figure over the
    crowd seeds."""
    keys = (
        "answers_per_task_at_first",
        "ask_step",
        "model_witness",
        "posterior_threshold",
        "review_doubt",
    )
    groups: dict[tuple, list[dict]] = {}
    for r in replays:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for policy, runs in groups.items():
        row = dict(zip(keys, policy, strict=True)) | {
            "crowd_seeds": [r["crowd_seed"] for r in runs]
        }
        for name in ("answers", "fixed", "changed_to_a_wrong_label", "answers_per_label_fixed"):
            values = [r[name] for r in runs if r[name] is not None]
            row[name] = {
                "mean": round(sum(values) / len(values), 2) if values else None,
                "min": min(values, default=None),
                "max": max(values, default=None),
            }
        out.append(row)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/loop.py --work folder")
    parser.add_argument("--model", default=None, help="facet model version (default: the first)")
    parser.add_argument("--answers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--ask-step", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--witness", choices=("on", "off"), nargs="+", default=["on", "off"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="crowd seeds")
    parser.add_argument(
        "--threshold",
        type=float,
        nargs="+",
        default=[0.9],
        help="posterior a decision needs (default 0.9, the deployment's)",
    )
    parser.add_argument(
        "--doubt",
        type=float,
        nargs="+",
        default=[None],
        help="DRESSVISION_REVIEW_DOUBT of the review (default: the deployment's)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from shared.registry import ModelRegistry

    artifacts = LocalRuntime.open(args.work / "home", environ={}).ports.artifacts
    version = args.model or sorted(ModelRegistry(artifacts).versions("facets"))[0]
    replays = []
    grid = itertools.product(args.answers, args.ask_step, args.witness, args.threshold, args.doubt)
    for answers, step, witness, threshold, doubt in grid:
        for seed in args.seeds:
            replays.append(
                replay(
                    args.work,
                    version,
                    answers,
                    seed,
                    ask_step=step,
                    witness=witness == "on",
                    threshold=threshold,
                    doubt=doubt,
                )
            )
            print(json.dumps(replays[-1]), file=sys.stderr, flush=True)
    report = {
        "command": " ".join(["python", "bench/crowd_replay.py", *sys.argv[1:]]),
        "model": version,
        "policies": policies(replays),
        "replays": replays,
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
