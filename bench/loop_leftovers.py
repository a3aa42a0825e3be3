"""What the judge says about the labels a relabel loop left wrong (issue 13).

Reads the work folder of a finished `bench/loop.py --work W` run (W/home, and the generator's
true labels in W/catalog/labels_true.csv) and, for every stored label that still differs from
the true one, looks up what review judged it with: the current facet model's prediction for a
test image, its training dynamics (the averaged probabilities of the first half of its
training) for a train image. Reported per split and facet: how many are left, who set them
(catalog or people), how many the judge covers, and how many it favours the wrong label for
(the wrong label's probability above the true one's), with the ranges of both probabilities.

    .venv/bin/python bench/loop_leftovers.py --work W     # W: bench/loop.py's --work
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.loop import read_truth, wrong_cells  # noqa: E402
from bench.oof_options import emit  # noqa: E402
from local.runtime import LocalRuntime  # noqa: E402
from shared.ports import Ports  # noqa: E402
from shared.records import ImageStatus, LabelSource  # noqa: E402
from shared.registry import ModelRegistry  # noqa: E402
from shared.relabel import oof_version  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "loop_leftovers.json"


def spread(values: list[float]) -> list[float] | None:
    return [round(min(values), 3), round(max(values), 3)] if values else None


def leftovers(ports: Ports, model: str, truth: dict[str, dict[str, str]]) -> dict:
    """The labels in `ports` that differ from `truth`, grouped by split and facet, with what
    facet model `model` judged each with (see the module docstring)."""
    records = {r.image_id: r for r in ports.labels.scan() if r.status == ImageStatus.OK}
    judged = {
        "test": {p.image_id: p for p in ports.predictions.for_model(model)},
        "train": {p.image_id: p for p in ports.predictions.for_model(oof_version(model))},
    }
    groups: dict[str, dict] = defaultdict(
        lambda: {
            "left": 0,
            "set_by": defaultdict(int),
            "judged": 0,
            "favours_wrong": 0,
            "p_wrong": [],
            "p_true": [],
        }
    )
    for image_id, facet in sorted(wrong_cells(list(records.values()), truth)):
        record = records[image_id]
        group = groups[f"{record.split}/{facet}"]
        group["left"] += 1
        group["set_by"][str(record.sources.get(facet, LabelSource.CATALOG))] += 1
        prediction = judged.get(record.split, {}).get(image_id)
        if prediction is None or facet not in prediction.facets:
            continue
        labels = ports.taxonomy.labels(facet)
        probs = prediction.facets[facet].probs
        p_wrong = probs[labels.index(record.facets[facet])]
        p_true = probs[labels.index(truth[image_id][facet])]
        group["judged"] += 1
        group["favours_wrong"] += p_wrong > p_true
        group["p_wrong"].append(p_wrong)
        group["p_true"].append(p_true)
    return {
        "model": model,
        "groups": {
            name: {
                "left": g["left"],
                "set_by": dict(g["set_by"]),
                "judged": g["judged"],
                "favours_wrong": int(g["favours_wrong"]),
                "p_wrong_label": spread(g["p_wrong"]),
                "p_true_label": spread(g["p_true"]),
            }
            for name, g in sorted(groups.items())
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="bench/loop.py's --work folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    truth_file = args.work / "catalog" / "labels_true.csv"
    if not truth_file.exists():
        raise SystemExit(f"{truth_file} not found: --work is the folder bench/loop.py wrote")
    ports = LocalRuntime.open(args.work / "home", environ={}).ports
    model = ModelRegistry(ports.artifacts).current("facets")
    if model is None:
        raise SystemExit(f"no current facet model in {args.work / 'home'}: run bench/loop.py")
    document = {
        "command": f"python bench/loop_leftovers.py --work {args.work}",
        **leftovers(ports, model, read_truth(truth_file)),
    }
    emit(document, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
