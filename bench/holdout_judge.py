"""Would a model that never saw them judge the labels a relabel loop left wrong? (issue 13)

The loop judges the train split's labels by their training dynamics, and on the measured loop
the dynamics favour the wrong label for nearly every train-split flip left
(bench/loop_leftovers.py): the model learns a flipped product before the averaging window
ends. This measures the alternative: on a copy of a finished `bench/loop.py --work W` home, hide
the labels of a share of the train products (chosen by a hash of the product id), retrain with
the recipe as it is (`dressvision train --locator current`), and judge the hidden labels with
the model that never saw them, against the same labels judged by the loop's last training
dynamics. Both are scored against the generator's true labels: precision at K (K = the hidden
labels that are wrong; all hidden labels ranked by the probability of their label, lowest
first) and the labels each flags (its most probable class is another one). W is not changed.

    .venv/bin/python bench/holdout_judge.py --work W [--share 0.25]   # one training, ~10 min
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loop import read_truth  # noqa: E402
from bench.oof_options import emit  # noqa: E402
from bench.train_quality import cli_args  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "holdout_judge.json"


def held_out(product_id: str, share: float) -> bool:
    """Whether a product is in the held-out share (stable across runs and machines)."""
    return int(hashlib.sha256(product_id.encode()).hexdigest(), 16) % 10_000 < share * 10_000


def score(
    labels: Mapping[str, Mapping[str, str | None]],
    judge: Mapping[str, Mapping[str, list[float]]],
    truth: Mapping[str, Mapping[str, str]],
    classes: Mapping[str, list[str]],
) -> dict:
    """How well `judge` (image id -> facet -> probabilities) tells which of `labels` differ
    from `truth`: precision at K over all judged labels ranked by their own probability, and
    the labels whose most probable class is another one."""
    ranked, flagged, hits = [], 0, 0
    for image_id, facets in labels.items():
        for facet, label in facets.items():
            probs = judge.get(image_id, {}).get(facet)
            if label is None or probs is None:
                continue
            wrong = label != truth[image_id][facet]
            ranked.append((probs[classes[facet].index(label)], wrong))
            flag = classes[facet][int(np.argmax(probs))] != label
            flagged += flag
            hits += flag and wrong
    ranked.sort(key=lambda row: row[0])
    k = sum(wrong for _, wrong in ranked)
    return {
        "judged": len(ranked),
        "k": k,
        "precision_at_k": round(sum(w for _, w in ranked[:k]) / k, 3) if k else None,
        "flagged": flagged,
        "flagged_precision": round(hits / flagged, 3) if flagged else None,
        "flagged_recall": round(hits / k, 3) if k else None,
    }


def probabilities(predictions) -> dict[str, dict[str, list[float]]]:
    return {p.image_id: {f: fp.probs for f, fp in p.facets.items()} for p in predictions}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="bench/loop.py's --work folder")
    parser.add_argument("--share", type=float, default=0.25, help="train products held out")
    parser.add_argument("--copy", type=Path, default=None, help="where to copy the home")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not 0.0 < args.share < 1.0:
        parser.error("--share must be between 0 and 1")
    truth_file = args.work / "catalog" / "labels_true.csv"
    if not truth_file.exists():
        parser.error(f"{truth_file} not found: --work is the folder bench/loop.py wrote")

    from batch_jobs.train import train
    from local.commands.train import training_args
    from local.runtime import LocalRuntime
    from shared.records import ImageStatus, LabelSource
    from shared.registry import ModelRegistry
    from shared.relabel import oof_version

    home = (args.copy or Path(tempfile.mkdtemp(prefix="bench-holdout-"))) / "home"
    shutil.copytree(args.work / "home", home)
    runtime = LocalRuntime.open(home, environ={})
    ports = runtime.ports
    classes = {f: list(ports.taxonomy.labels(f)) for f in ports.taxonomy.facet_names}
    loop_model = ModelRegistry(ports.artifacts).current("facets")
    dynamics = probabilities(ports.predictions.for_model(oof_version(loop_model)))
    hidden: dict[str, dict[str, str | None]] = {}
    for record in ports.labels.scan():
        if record.status != ImageStatus.OK or record.split != "train":
            continue
        if not held_out(record.product_id, args.share):
            continue
        hidden[record.image_id] = dict(record.facets)
        for facet, label in record.facets.items():
            if label is not None:  # hidden from the training: an unknown label
                record = ports.labels.update_label(
                    record.image_id,
                    facet,
                    None,
                    source=LabelSource.STAFF,
                    expected_version=record.version,
                    evidence={"bench": "holdout_judge"},
                )
    print(f"{len(hidden)} train images of {args.share:.0%} of the products held out", flush=True)
    started = time.perf_counter()
    result = train(
        training_args(cli_args("--locator", "current", "--force"), runtime.settings), ports
    )
    seconds = time.perf_counter() - started
    truth = read_truth(truth_file)
    document = {
        "command": f"python bench/holdout_judge.py --work {args.work} --share {args.share}",
        "share": args.share,
        "held_out_images": len(hidden),
        "loop_model": loop_model,
        "held_out_model": result.version,
        "training_seconds": round(seconds, 1),
        "held_out_model_judges": score(
            hidden, probabilities(ports.predictions.for_model(result.version)), truth, classes
        ),
        "loop_dynamics_judge": score(hidden, dynamics, truth, classes),
    }
    emit(document, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
