"""`dressvision review / tasks list / answer / collect` as a user runs them."""

from __future__ import annotations

import csv
import json

import pytest

from local.cli import main
from local.runtime import LocalRuntime
from shared.keys import current_model_key
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
from shared.relabel import oof_version

SLEEVES = ("sleeveless", "cap", "short", "three-quarter", "long")


@pytest.fixture
def home(tmp_path):
    """20 images, two with a wrong sleeve label the model confidently disagrees with."""
    runtime = LocalRuntime.open(tmp_path / "home")
    truth_rows = []
    for i in range(20):
        true = SLEEVES[i % 5]
        given = "long" if i in (2, 7) else true  # 2 and 7 are wrong (truth: short, short)
        record = LabelRecord(
            image_id=f"p{i}/0",
            product_id=f"p{i}",
            split="train",
            object_key=f"catalog/p{i}/0.jpg",
            facets={"sleeve": given},
            sources={"sleeve": LabelSource.CATALOG},
        )
        runtime.ports.labels.register(record)
        probs = [0.02] * 5
        probs[i % 5] = 0.92
        runtime.ports.predictions.put(
            PredictionRecord(
                image_id=record.image_id,
                model_version=oof_version("v1"),
                facets={"sleeve": FacetPrediction(label=true, prob=0.92, probs=probs)},
            )
        )
        truth_rows.append({"image_id": record.image_id, "sleeve": true})
    runtime.ports.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    with (tmp_path / "labels_true.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image_id", "sleeve"])
        writer.writeheader()
        writer.writerows(truth_rows)
    return tmp_path


def cli(capsys, home, *argv):
    code = main(["--home", str(home / "home"), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_review_json_is_the_contract(home, capsys):
    code, out, _ = cli(capsys, home, "review", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {(r["image_id"], r["label"], r["suggested"]) for r in rows} == {
        ("p2/0", "long", "short"),
        ("p7/0", "long", "short"),
    }
    assert all(set(r) == {"image_id", "facet", "label", "suggested", "confidence"} for r in rows)
    assert json.loads(cli(capsys, home, "review", "--json", "--limit", "1")[1]).__len__() == 1


def test_staff_answer_internal_tasks(home, capsys):
    cli(capsys, home, "review", "--publish", "--workforce", "internal")
    code, out, _ = cli(capsys, home, "tasks", "list", "--json")
    tasks = json.loads(out)
    assert {t["status"] for t in tasks} == {"open"} and len(tasks) == 2
    code, out, _ = cli(capsys, home, "answer", tasks[0]["task_id"], "short")
    assert code == 0 and "updated" in out
    code, _, err = cli(capsys, home, "answer", tasks[1]["task_id"], "mini")
    assert code == 2 and "allowed" in err
    exported = json.loads(cli(capsys, home, "labels", "export", "--format", "json")[1])
    assert {r["image_id"]: r["facets"]["sleeve"] for r in exported}[tasks[0]["image_id"]] == "short"


def test_simulated_crowd_fixes_the_labels(home, capsys):
    truth = str(home / "labels_true.csv")
    cli(capsys, home, "review", "--publish", "--workforce", "simulated", "--truth", truth)
    for _ in range(4):  # undecided tasks ask for more answers
        code, _, _ = cli(capsys, home, "collect", "--json", "--truth", truth)
        assert code == 0
    exported = json.loads(cli(capsys, home, "labels", "export", "--format", "json")[1])
    sleeves = {r["image_id"]: r["facets"]["sleeve"] for r in exported}
    assert sleeves["p2/0"] == "short" and sleeves["p7/0"] == "short"


def test_review_before_any_model_says_what_to_do(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "review", "--json"]) == 1
    assert "dressvision train" in capsys.readouterr().err
