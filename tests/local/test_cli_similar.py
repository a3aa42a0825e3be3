"""`dressvision similar` as a user runs it: the --json contract, the filters, the contact
sheet, and a clear error for an image the index does not hold."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from local.cli import main
from local.runtime import LocalRuntime
from shared.similarity import index_metadata

NECKLINES = ("v-neck", "crew", "boat")


@pytest.fixture
def home(tmp_path, make_jpeg):
    """Eight products x 2 photos imported, and their unsupervised embeddings in the index:
    product i lies near direction i; necklines cycle by product."""
    folder = tmp_path / "catalog"
    (folder / "img").mkdir(parents=True)
    rows = ["image_id,path,product_id,neckline,split"]
    for p in range(8):
        for photo in range(2):
            name = f"p{p}-{photo}.jpg"
            (folder / "img" / name).write_bytes(make_jpeg((40, 60), (30 * p, 200, 40 * photo)))
            rows.append(f"p{p}/{photo},img/{name},p{p},{NECKLINES[p % 3]},test")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    home = tmp_path / "home"
    assert main(["--home", str(home), "import", str(folder)]) == 0
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 512))
    ids, vectors, meta = [], [], []
    for p in range(8):
        for photo in range(2):
            ids.append(f"p{p}/{photo}")
            vectors.append(centres[p] + 0.05 * rng.normal(size=512))
            meta.append(index_metadata(f"p{p}", "test", "v1", {"neckline": NECKLINES[p % 3]}))
    LocalRuntime.open(home).ports.vectors("unsupervised").upsert(ids, np.array(vectors), meta)
    return home


def test_json_is_one_object_best_first_without_the_query(home, capsys):
    assert main(["--home", str(home), "similar", "p2/0", "--k", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)

    assert set(answer) == {"query", "results"}
    assert answer["query"] == {"image_id": "p2/0", "facets": {"neckline": "boat"}}
    assert answer["results"][0]["image_id"] == "p2/1"
    assert len(answer["results"]) == 3
    for result in answer["results"]:
        assert set(result) == {"image_id", "product_id", "score", "facets"}
        assert result["image_id"] != "p2/0"
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)


def test_differ_and_other_products_with_a_contact_sheet(home, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    argv = ["--home", str(home), "similar", "p2/0", "--k", "4", "--differ", "neckline"]
    argv += ["--other-products", "--contact-sheet", str(sheet), "--json"]

    assert main(argv) == 0
    answer = json.loads(capsys.readouterr().out)

    assert len(answer["results"]) == 4
    assert all(r["facets"]["neckline"] != "boat" for r in answer["results"])
    assert all(r["product_id"] != "p2" for r in answer["results"])
    with Image.open(sheet) as picture:
        assert picture.width == 5 * 180  # the query and its four results


def test_an_unknown_image_or_facet_is_a_clear_error(home, capsys):
    assert main(["--home", str(home), "similar", "nope/0"]) == 1  # a runtime failure
    assert "not in the similarity index" in capsys.readouterr().err
    assert main(["--home", str(home), "similar", "p2/0", "--same", "colour"]) == 2
    assert "unknown facet 'colour'" in capsys.readouterr().err
