"""`dressvision train`, `evaluate`, `tag` and `models`: flags and the JSON contracts."""

from __future__ import annotations

import argparse
import json

import pytest

from local.commands import evaluate, models, tag, train
from local.runtime import LocalRuntime
from shared.errors import NotFoundError

pytestmark = pytest.mark.usefixtures("one_thread")


def cli(home, *argv) -> int:
    parser = argparse.ArgumentParser(prog="dressvision")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (train, evaluate, tag, models):
        module.register(commands)
    args = parser.parse_args(argv)
    args.home = home
    return args.func(args)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def ports(home):
    return LocalRuntime.open(home, environ={}).ports


def test_tag_prints_one_entry_per_path_with_errors_for_unreadable_files(
    photo, register_untrained_model, home, ports, tmp_path, capsys
):
    register_untrained_model(ports)
    good = tmp_path / "dress.jpg"
    good.write_bytes(photo(1))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    # Any failed file makes the exit status 1; the JSON still lists every file.
    assert cli(home, "tag", str(good), str(broken), str(tmp_path / "missing.jpg"), "--json") == 1
    entries = json.loads(capsys.readouterr().out)
    assert [e["path"] for e in entries] == [str(good), str(broken), str(tmp_path / "missing.jpg")]
    assert all(set(e) == {"path", "facets", "error"} for e in entries)
    assert entries[0]["error"] is None
    assert set(entries[0]["facets"]) == {"sleeve"}
    assert set(entries[0]["facets"]["sleeve"]) == {"label", "prob"}
    assert entries[1]["facets"] == {} and "corrupt" in entries[1]["error"]
    assert entries[2]["facets"] == {} and entries[2]["error"]
    assert cli(home, "tag", str(broken), "--json") == 1  # nothing tagged
    assert cli(home, "tag", str(good), "--json") == 0


def test_tag_without_a_model_says_what_to_do(photo, home, ports, tmp_path):
    (tmp_path / "a.jpg").write_bytes(photo(0))
    with pytest.raises(NotFoundError, match="dressvision train"):
        cli(home, "tag", str(tmp_path / "a.jpg"))


def test_models_list_marks_the_current_version(register_untrained_model, home, ports, capsys):
    version = register_untrained_model(ports)
    assert cli(home, "models", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {
            "kind": "facets",
            "version": version,
            "current": True,
            "metric": "test_macro_f1",
            "value": 0.5,
        }
    ]


@pytest.mark.slow
def test_train_then_evaluate_write_the_documented_json(add_images, home, ports, tmp_path, capsys):
    add_images(ports, 16)
    assert (
        cli(
            home,
            "train",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--locator",
            "none",
            "--facets",
            "sleeve,neckline",
            "--json",
        )
        == 0
    )
    trained = json.loads(capsys.readouterr().out)
    assert trained["promoted"] is True
    assert set(trained["facets"]) == {"sleeve", "neckline"}
    assert set(trained["facets"]["sleeve"]) == {"train", "test"}

    out = tmp_path / "eval.json"
    assert cli(home, "evaluate", "--json", "--output", str(out)) == 0
    document = json.loads(capsys.readouterr().out)  # stdout holds the one JSON object
    assert json.loads(out.read_text()) == document
    assert (
        set(document) == {"version", "splits", "similarity"}
        and document["version"] == trained["version"]
    )
    assert set(document["splits"]) == {"train", "test"}
    report = document["splits"]["test"]["neckline"]
    assert set(report) == {"macro_f1", "accuracy", "per_class", "confusion"}
    assert list(report["per_class"]) == list(ports.taxonomy.labels("neckline"))
    assert len(list(ports.predictions.for_model(trained["version"]))) == 16

    plots = tmp_path / "plots"
    assert cli(home, "evaluate", "--plot", str(plots)) == 0
    expected = {f"confusion_{s}_{f}.png" for s in ("train", "test") for f in ("sleeve", "neckline")}
    assert {p.name for p in plots.iterdir()} == expected | {"training_curves.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in plots.iterdir())
