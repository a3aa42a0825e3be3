"""How many answers a task starts with (issue 13: answers bought per label fixed), measured by
replaying round 1 of a `bench/loop.py` run: same catalog, same flips, same first model's
predictions, same simulated crowd; no training.

For each value of `--answers` (DRESSVISION_MAX_ASSIGNMENTS: the answers a task is published
with), a fresh home imports the run's catalog (its catalog labels, 8% of them wrong), gets a
copy of the first model's stored predictions (its own and the train split's judging ones),
and runs the round as bench/loop.py does: the review publishes every flagged label, the
simulated crowd (12 workers of 60-90% accuracy, two spammers) answers, `collect` runs until no
task asks for more answers (Dawid-Skene; decided at posterior 0.9 with two agreeing answers;
more answers asked two at a time, up to 9; then staff). Reported per value: tasks, answers,
labels changed, flips fixed, labels changed to a WRONG label, escalations, answers per flip
fixed, and the wrong labels left.

    .venv/bin/python bench/crowd_replay.py --work /tmp/loop --answers 2 3 \\
        --out bench/results/crowd_replay.json
"""

from __future__ import annotations

import argparse
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


def replay(work: Path, version: str, answers: int, seed: int) -> dict:
    from lambdas.review import ReviewRequest, review
    from shared import relabel
    from shared.backends import build_workforce

    catalog = work / "catalog"
    truth = read_truth(catalog / "labels_true.csv")
    home = work / f"replay-{answers}"
    shutil.rmtree(home, ignore_errors=True)
    runtime = LocalRuntime.open(
        home,
        environ={
            "DRESSVISION_WORKFORCE": "simulated",
            "DRESSVISION_SIMULATED_TRUTH": str(catalog / "labels_true.csv"),
            "DRESSVISION_MAX_ASSIGNMENTS": str(answers),
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
    for _ in range(MAX_COLLECT_ROUNDS):
        if not relabel.collect(holding, crowd).asked_more:
            break
    tasks = list(runtime.ports.tasks.list())
    decided = [t for t in tasks if t.status == "decided"]
    changed = [t for t in decided if t.outcome != t.current_label]
    fixed = sum(t.outcome == truth[t.image_id][t.facet] for t in changed)
    bought = sum(len(t.votes) for t in tasks)
    return {
        "answers_per_task_at_first": answers,
        "tasks": len(tasks),
        "answers": bought,
        "changed": len(changed),
        "fixed": fixed,
        "changed_to_a_wrong_label": len(changed) - fixed,
        "escalated_to_staff": sum(t.status == "escalated" for t in tasks),
        "answers_per_label_fixed": round(bought / fixed, 2) if fixed else None,
        "wrong_labels": {
            "before": len(wrong_before),
            "after": len(wrong_cells(usable(runtime), truth)),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a bench/loop.py --work folder")
    parser.add_argument("--model", default=None, help="facet model version (default: the first)")
    parser.add_argument("--answers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--seed", type=int, default=0, help="the simulated crowd's seed")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from shared.registry import ModelRegistry

    artifacts = LocalRuntime.open(args.work / "home", environ={}).ports.artifacts
    version = args.model or sorted(ModelRegistry(artifacts).versions("facets"))[0]
    report = {
        "command": " ".join(["python", "bench/crowd_replay.py", *sys.argv[1:]]),
        "model": version,
        "replays": [replay(args.work, version, n, args.seed) for n in args.answers],
    }
    emit(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
