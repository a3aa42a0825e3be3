"""`dressvision synth-catalog` as a user runs it."""

from __future__ import annotations

import json

from PIL import Image

from local.cli import main


def test_synth_catalog_writes_an_importable_catalog_and_a_contact_sheet(tmp_path, capsys):
    out, sheet = tmp_path / "cat", tmp_path / "sheet.png"
    argv = ["synth-catalog", str(out), "--products", "4", "--seed", "1", "--image-size", "96"]
    assert main([*argv, "--contact-sheet", str(sheet), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["products"] == 4 and summary["images"] >= 8
    assert (out / "labels.csv").exists() and Image.open(sheet).size[0] > 0

    assert main(["--home", str(tmp_path / "h"), "import", str(out), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert imported["imported"] + len(imported["invalid"]) == summary["images"]


def test_synth_catalog_refuses_to_overwrite_a_folder(tmp_path, capsys):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "keep.txt").write_text("mine")
    assert main(["synth-catalog", str(tmp_path / "cat"), "--products", "2"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "cat" / "keep.txt").read_text() == "mine"
