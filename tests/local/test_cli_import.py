"""`dressvision import` and `labels export` as a user runs them, on the local runtime."""

from __future__ import annotations

import json

import pytest

from local.cli import main

HEADER = "image_id,path,product_id,silhouette,neckline,sleeve,occasion,x0,y0,x1,y1\n"


@pytest.fixture
def catalog(tmp_path, make_jpeg):
    folder = tmp_path / "catalog"
    (folder / "img").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / "img" / f"{name}.jpg").write_bytes(make_jpeg((40, 60)))
    (folder / "img" / "broken.jpg").write_bytes(b"this is not a photo")
    (folder / "labels.csv").write_text(
        HEADER
        + ",img/a.jpg,p1,sheath,crew,long,work,2,2,30,50\n"
        + ",img/b.jpg,p1,sheath,crew,long,work,,,,\n"
        + "front,img/c.jpg,p2,,halter,,,,,,\n"
        + ",img/broken.jpg,p3,shift,,,,,,,\n"
        + ",img/missing.jpg,p4,,,,,,,,\n"
    )
    return folder


def run_json(capsys, *argv) -> object:
    assert main([*argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_import_reports_every_row_once_and_is_idempotent(tmp_path, catalog, capsys):
    home = str(tmp_path / "home")
    first = run_json(capsys, "--home", home, "import", str(catalog), "--json")
    assert (first["imported"], first["updated"], first["unchanged"]) == (3, 0, 0)
    reasons = {item["image_id"]: item["reason"] for item in first["invalid"]}
    assert set(reasons) == {"p3/broken", "p4/missing"}
    assert "not an image" in reasons["p3/broken"]
    assert reasons["p4/missing"] == "file not found"
    assert all(set(item) == {"image_id", "path", "reason"} for item in first["invalid"])

    second = run_json(capsys, "--home", home, "import", str(catalog), "--json")
    assert (second["imported"], second["updated"], second["unchanged"]) == (0, 0, 3)
    assert second["invalid"] == first["invalid"]


def test_a_changed_catalog_label_is_an_update(tmp_path, catalog, capsys):
    home = str(tmp_path / "home")
    run_json(capsys, "--home", home, "import", str(catalog), "--json")
    csv = catalog / "labels.csv"
    csv.write_text(
        csv.read_text().replace("front,img/c.jpg,p2,,halter", "front,img/c.jpg,p2,,boat")
    )
    again = run_json(capsys, "--home", home, "import", str(catalog), "--json")
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 1, 2)


def test_an_unknown_label_stops_the_import_before_anything_is_uploaded(tmp_path, catalog, capsys):
    csv = catalog / "labels.csv"
    csv.write_text(
        csv.read_text().replace("sheath,crew,long,work,,,,", "sheath,scoop,long,work,,,,")
    )
    home = tmp_path / "home"
    assert main(["--home", str(home), "import", str(catalog), "--json"]) == 1
    error = capsys.readouterr().err
    assert "line 3" in error and "'scoop'" in error and "v-neck, crew, boat" in error
    assert main(["--home", str(home), "labels", "export", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_labels_export_json_and_csv(tmp_path, catalog, capsys):
    home = str(tmp_path / "home")
    run_json(capsys, "--home", home, "import", str(catalog), "--json")
    exported = run_json(capsys, "--home", home, "labels", "export", "--format", "json")
    by_id = {row["image_id"]: row for row in exported}
    assert set(by_id) == {"p1/a", "p1/b", "front", "p3/broken"}
    assert by_id["front"] == {
        "image_id": "front",
        "product_id": "p2",
        "split": by_id["front"]["split"],
        "status": "ok",
        "facets": {"silhouette": None, "neckline": "halter", "sleeve": None, "occasion": None},
    }
    assert by_id["p1/a"]["split"] == by_id["p1/b"]["split"]  # one product, one split
    assert by_id["p3/broken"]["status"] == "invalid"

    assert main(["--home", home, "labels", "export"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("image_id,path,product_id,silhouette,neckline,sleeve,occasion")
    assert any(
        line.startswith("p1/a,catalog/p1/a.jpg,p1,sheath,crew,long,work,2.0,2.0") for line in lines
    )


def test_a_folder_without_labels_is_imported_as_unlabeled(tmp_path, make_jpeg, capsys):
    folder = tmp_path / "uploads" / "p7"
    folder.mkdir(parents=True)
    (folder / "side.png").write_bytes(make_jpeg())  # a JPEG named .png: the bytes decide
    result = run_json(capsys, "--home", str(tmp_path / "h"), "import", str(folder.parent), "--json")
    assert result == {"imported": 1, "updated": 0, "unchanged": 0, "invalid": []}


def test_the_human_summary_names_what_was_rejected(tmp_path, catalog, capsys):
    assert main(["--home", str(tmp_path / "h"), "import", str(catalog)]) == 0
    out = capsys.readouterr().out
    assert "3 images ok: 3 imported, 0 updated, 0 unchanged" in out
    assert "2 invalid" in out and "p4/missing" in out and "file not found" in out
