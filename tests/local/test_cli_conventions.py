"""The conventions every `dressvision` command follows: version, exit codes, global options
anywhere, one JSON document per --json, no state created by read-only commands."""

from __future__ import annotations

import json

import pytest

from local.cli import main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("dressvision ")


def test_a_usage_error_exits_2_and_a_runtime_failure_exits_1_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--home", str(tmp_path), "review", "--limit", "many"])
    assert exit_.value.code == 2
    assert "invalid int value" in capsys.readouterr().err
    assert main(["--home", str(tmp_path), "import", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dressvision: error:") and "Traceback" not in err
    assert main(["--home", str(tmp_path), "answer", "no-such-task", "long"]) == 1
    assert "no task" in capsys.readouterr().err


def test_global_options_are_accepted_after_the_command(home, capsys):
    before = main(["--home", str(home / "home"), "labels", "export", "--format", "json"])
    first = capsys.readouterr().out
    after = main(["labels", "export", "--format", "json", "--home", str(home / "home")])
    assert before == after == 0 and capsys.readouterr().out == first
    assert len(json.loads(first)) == 20
    # A --home given before the command is not overwritten by the subcommand's default.
    assert main(["--home", str(home / "home"), "tasks", "list", "--json", "-v"]) == 0


def test_model_version_is_the_name_of_the_model_option(cli, home, capsys):
    code, out, _ = cli(capsys, home, "review", "--json", "--model-version", "v1")
    assert code == 0 and len(json.loads(out)) == 2
    with pytest.raises(SystemExit):
        main(["--home", str(home / "home"), "review", "--version", "v1"])
    with pytest.raises(SystemExit):
        main(["--home", str(home / "home"), "evaluate", "--version", "v1"])


def test_review_publish_json_has_the_publish_summary(cli, home, capsys):
    code, out, _ = cli(capsys, home, "review", "--publish", "--workforce", "internal", "--json")
    summary = json.loads(out)
    assert code == 0
    assert set(summary) == {
        "suspicious",
        "published",
        "skipped",
        "budget_exhausted",
        "budget_left_usd",
        "labelled",  # issue 13: what the review could not judge, added keys only
        "without_predictions",
    }
    assert len(summary["suspicious"]) == 2 and summary["published"] == 2
    assert summary["skipped"] == 0 and summary["budget_left_usd"] is None
    again = json.loads(
        cli(capsys, home, "review", "--publish", "--workforce", "internal", "--json")[1]
    )
    assert again["published"] == 0  # the open tasks are no longer suspicious


def test_collect_json_prints_every_key_when_nothing_is_open(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "collect", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "decided": 0,
        "changed": 0,
        "confirmed": 0,
        "asked_more": 0,
        "escalated": 0,
        "conflicts": 0,
        "waiting": 0,
        "votes": 0,
        "siblings_changed": 0,  # issue 13: a product's other photos, an added key
        "failed": 0,
        "closed": 0,
        "answers_received": 0,
        "train_job": None,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["models", "list", "--json"],
        ["labels", "export", "--format", "json"],
        ["labels", "export", "--format", "coco"],
        ["tasks", "list", "--json"],
        ["workers", "--json"],
    ],
)
def test_read_only_commands_create_no_state(tmp_path, capsys, argv):
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    for state in (missing, empty):
        assert main(["--home", str(state), *argv]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == [] or printed["images"] == []
    assert not missing.exists() and list(empty.iterdir()) == []


def test_workers_shows_what_collect_estimated(cli, home, capsys, monkeypatch):
    monkeypatch.setenv("DRESSVISION_MIN_WORKER_ACCURACY", "0.5")
    truth = str(home / "labels_true.csv")
    cli(capsys, home, "review", "--publish", "--workforce", "simulated", "--truth", truth)
    for _ in range(3):
        cli(capsys, home, "collect", "--truth", truth)
    code, out, _ = cli(capsys, home, "workers", "--json")
    workers = json.loads(out)
    assert code == 0 and workers
    assert {w["provider"] for w in workers} == {"simulated"}
    assert sum(w["answers"] for w in workers) >= 6  # 2 tasks x at least 3 answers
    assert all(0.0 < w["accuracy"] < 1.0 for w in workers)
    assert [w["accuracy"] for w in workers] == sorted(w["accuracy"] for w in workers)
    # Two tasks are too few to judge anybody: nobody is flagged or excluded on them.
    assert not any(w["likely_spammer"] or w["excluded"] for w in workers)
    code, out, _ = cli(capsys, home, "workers")
    assert code == 0 and "accuracy" in out
