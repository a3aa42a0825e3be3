"""`dressvision review / tasks list / answer / collect` as a user runs them."""

from __future__ import annotations

import json

from local.cli import main


def test_review_json_is_the_contract(cli, home, capsys):
    code, out, _ = cli(capsys, home, "review", "--json")
    assert code == 0
    rows = json.loads(out)
    assert {(r["image_id"], r["label"], r["suggested"]) for r in rows} == {
        ("p2/0", "long", "short"),
        ("p7/0", "long", "short"),
    }
    assert all(set(r) == {"image_id", "facet", "label", "suggested", "confidence"} for r in rows)
    assert json.loads(cli(capsys, home, "review", "--json", "--limit", "1")[1]).__len__() == 1


def test_staff_answer_internal_tasks(cli, home, capsys):
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


def test_simulated_crowd_fixes_the_labels(cli, home, capsys):
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


def test_review_spends_a_task_budget_and_says_what_it_could_not_see(cli, home, capsys):
    code, out, err = cli(capsys, home, "review", "--json", "--budget-tasks", "1")
    assert code == 0 and len(json.loads(out)) == 1 and "warning" not in err
    code, out, _ = cli(
        capsys,
        home,
        "review",
        "--publish",
        "--json",
        "--budget-tasks",
        "1",
        "--workforce",
        "internal",
    )
    published = json.loads(out)
    assert published["published"] == 1
    assert (published["labelled"], published["without_predictions"]) == (20, 0)
    # A model with no judging probabilities: nothing judged, and it says so.
    code, out, err = cli(capsys, home, "review", "--json", "--model-version", "v9")
    assert code == 0 and json.loads(out) == []
    assert "20 of 20 labelled images have no judging probabilities" in err
    assert "--dynamics" in err


def test_a_money_budget_needs_a_workforce_with_a_price(cli, home, capsys):
    code, _, err = cli(capsys, home, "review", "--budget-usd", "5", "--workforce", "internal")
    assert code == 1 and "--budget-tasks" in err
    code, _, err = cli(capsys, home, "review", "--budget-tasks", "-1")
    assert code == 2 and ">= 0" in err
