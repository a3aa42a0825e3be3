"""The synthetic catalog: small runs (a few products, 96-pixel photos)."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from local.synth_catalog import (
    DressStyle,
    check_drawable,
    generate_catalog,
    make_contact_sheet,
    render_photo,
    sample_products,
)
from shared.errors import InvalidImageError, TaxonomyError
from shared.images import validate_image
from shared.taxonomy import Taxonomy, load_taxonomy

SIZE = 96
COLUMNS = ["image_id", "path", "product_id", "silhouette", "neckline", "sleeve", "occasion"]
COLUMNS += ["x0", "y0", "x1", "y1", "split"]
FACETS = ["silhouette", "neckline", "sleeve", "occasion"]
LIMITS = {"max_bytes": 10_000_000, "max_pixels": 10_000_000}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    out = tmp_path_factory.mktemp("catalog") / "cat"
    summary = generate_catalog(out, products=10, seed=11, image_size=SIZE)
    return summary, read_rows(out / "labels.csv")


def test_same_seed_same_bytes_other_seed_other_catalog(tmp_path):
    runs = [
        generate_catalog(tmp_path / name, products=6, seed=seed, image_size=SIZE, corrupt=1)
        for name, seed in (("a", 5), ("b", 5), ("c", 6))
    ]
    a, b, c = (tree_bytes(r.root) for r in runs)
    assert a == b
    assert a["labels.csv"] != c["labels.csv"]


# The digest of a small catalog and its contact sheet, taken before `local/synth_catalog.py`
# became a package and unchanged by the split. A change to the drawing, the sampling or the
# writing changes it: if that change is meant, look at the contact sheet, then update the pin.
# A Pillow or NumPy upgrade may change the JPEG or PNG bytes too (pinned with Pillow 13.0,
# NumPy 2.4).
PINNED_DIGEST = "663ce5aac1a52e8295464467377406bcab71110343147462c962b408945084a4"


def test_a_small_catalog_has_the_pinned_bytes(tmp_path):
    generate_catalog(tmp_path / "cat", products=6, seed=3, noise=0.3, image_size=64, corrupt=3)
    make_contact_sheet(tmp_path / "cat", tmp_path / "sheet.png")
    digest = hashlib.sha256()
    for name, data in tree_bytes(tmp_path).items():
        digest.update(PurePosixPath(name).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(data).digest())
    assert digest.hexdigest() == PINNED_DIGEST


def test_csv_has_the_import_columns_and_relative_paths_that_exist(catalog):
    summary, rows = catalog
    with summary.labels_csv.open() as fh:
        assert next(csv.reader(fh)) == COLUMNS
    assert len(rows) == summary.images
    for row in rows:
        path = PurePosixPath(row["path"])
        assert not path.is_absolute() and ".." not in path.parts
        assert path.parts[:2] == ("images", row["product_id"]) and path.suffix == ".jpg"
        assert (summary.root / path).is_file()
        assert row["image_id"] == f"{row['product_id']}/{path.stem}"
        assert row["split"] == ""  # the system assigns it
    assert len({row["image_id"] for row in rows}) == len(rows)


def test_every_label_is_in_the_taxonomy(catalog):
    taxonomy = load_taxonomy()
    _, rows = catalog
    for row in rows:
        for facet in FACETS:
            assert row[facet] in taxonomy.labels(facet)


def test_boxes_are_inside_the_image_and_sized_like_a_catalog(catalog):
    summary, rows = catalog
    corrupt = set(summary.corrupt)
    for row in rows:
        if row["path"] in corrupt:
            assert [row[c] for c in ("x0", "y0", "x1", "y1")] == [""] * 4
            continue
        x0, y0, x1, y1 = (int(row[c]) for c in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
        assert 0.2 * SIZE <= y1 - y0 <= 0.95 * SIZE
        assert Image.open(summary.root / row["path"]).size == (SIZE, SIZE)


def test_box_is_tight_around_the_drawn_dress():
    # A magenta dress: nothing else in the picture is that colour, so its pixels show the box.
    style = DressStyle(
        silhouette="a-line",
        neckline="v-neck",
        sleeve="long",
        occasion="work",
        hem_y=0.72,
        color=(255.0, 0.0, 255.0),
        pattern=None,
        pattern_color=(0.0, 0.0, 0.0),
        pattern_period=0.02,
        pattern_angle=0.0,
        sheen=0.0,
        sparkle=False,
        belt=None,
    )
    for k in range(4):
        img, (x0, y0, x1, y1) = render_photo(style, np.random.default_rng(k), 128)
        rgb = np.asarray(img).astype(int)
        magenta = (rgb[..., 0] > 110) & (rgb[..., 2] > 110) & (rgb[..., 1] < 70)
        ys, xs = np.nonzero(magenta)
        assert xs.size > 200
        assert abs(xs.min() - x0) <= 2 and abs(xs.max() + 1 - x1) <= 2
        assert abs(ys.min() - y0) <= 2 and abs(ys.max() + 1 - y1) <= 2


def test_photos_of_a_product_share_labels_and_there_are_several(catalog):
    _, rows = catalog
    by_product = defaultdict(list)
    for row in rows:
        by_product[row["product_id"]].append(row)
    assert len(by_product) == 10
    for photos in by_product.values():
        assert 2 <= len(photos) <= 4
        for facet in FACETS:
            assert len({p[facet] for p in photos}) == 1
    assert max(len(p) for p in by_product.values()) > 2


def test_without_noise_the_catalog_labels_are_the_truth(catalog):
    summary, _ = catalog
    assert summary.labels_csv.read_bytes() == summary.labels_true_csv.read_bytes()
    assert summary.flipped_labels == 0


def test_label_noise_flips_whole_products_and_leaves_truth_and_photos(tmp_path):
    clean = generate_catalog(tmp_path / "clean", products=12, seed=4, image_size=SIZE, corrupt=0)
    noisy = generate_catalog(
        tmp_path / "noisy", products=12, seed=4, image_size=SIZE, corrupt=0, noise=0.5
    )
    assert noisy.labels_true_csv.read_bytes() == clean.labels_true_csv.read_bytes()
    assert tree_bytes(noisy.root / "images") == tree_bytes(clean.root / "images")
    flipped: dict[tuple[str, str], set[str]] = defaultdict(set)
    for said, true in zip(
        read_rows(noisy.labels_csv), read_rows(noisy.labels_true_csv), strict=True
    ):
        assert {k: v for k, v in said.items() if k not in FACETS} == {
            k: v for k, v in true.items() if k not in FACETS
        }
        for facet in FACETS:
            if said[facet] != true[facet]:
                flipped[(said["product_id"], facet)].add(said[facet])
    assert len(flipped) == noisy.flipped_labels > 0
    assert all(len(wrong) == 1 for wrong in flipped.values())
    for (product, facet), _ in flipped.items():  # every photo of that product is flipped
        photos = [r for r in read_rows(noisy.labels_csv) if r["product_id"] == product]
        truth = [r for r in read_rows(noisy.labels_true_csv) if r["product_id"] == product]
        assert all(p[facet] != t[facet] for p, t in zip(photos, truth, strict=True))


def test_corrupt_files_are_exactly_the_listed_ones(tmp_path):
    summary = generate_catalog(tmp_path / "c", products=6, seed=2, image_size=SIZE, corrupt=3)
    listed = summary.corrupt_txt.read_text().splitlines()
    assert listed == list(summary.corrupt) and len(listed) == 3
    invalid = set()
    for row in read_rows(summary.labels_csv):
        try:
            validate_image((summary.root / row["path"]).read_bytes(), **LIMITS)
        except InvalidImageError:
            invalid.add(row["path"])
    assert invalid == set(listed)
    contents = [(summary.root / p).read_bytes() for p in listed]
    assert sorted(len(c) == 0 for c in contents) == [False, False, True]  # one empty file
    assert any(c.startswith(b"\xff\xd8") for c in contents)  # one truncated JPEG
    assert any(c[:1].isalpha() for c in contents)  # one text file named .jpg


def test_default_corrupt_share_and_none_on_request(catalog, tmp_path):
    summary, _ = catalog
    assert len(summary.corrupt) == 1  # 10 products: at least one
    clean = generate_catalog(tmp_path / "z", products=10, seed=11, image_size=SIZE, corrupt=0)
    assert clean.corrupt == () and clean.corrupt_txt.read_text() == ""


def test_classes_are_imbalanced_but_none_is_missing():
    products = sample_products(200, seed=8)
    taxonomy = load_taxonomy()
    for facet in FACETS:
        counts = Counter(p.labels[facet] for p in products)
        assert set(counts) == set(taxonomy.labels(facet))
        assert min(counts.values()) >= 6  # the rarest class still has test examples
        assert max(counts.values()) >= 2.5 * min(counts.values())


def test_labels_never_contradict_the_drawing():
    for p in sample_products(300, seed=3):
        if p.labels["silhouette"] == "ball-gown":
            assert p.labels["occasion"] == "evening" and p.style.hem_y > 0.9
        if p.labels["neckline"] == "halter":
            assert p.labels["sleeve"] == "sleeveless"
        if p.style.pattern is not None:
            assert p.labels["occasion"] == "casual"
        if p.labels["occasion"] in ("cocktail", "evening"):
            assert (p.style.hem_y > 0.9) == (p.labels["occasion"] == "evening")


def test_true_labels_do_not_depend_on_noise():
    clean = [p.labels for p in sample_products(40, seed=9)]
    assert clean == [p.labels for p in sample_products(40, seed=9, noise=0.7)]


def test_a_label_without_drawing_rule_is_refused():
    with pytest.raises(TaxonomyError, match="'mermaid'"):
        check_drawable(Taxonomy.from_mapping({"facets": {"silhouette": ["a-line", "mermaid"]}}))
    with pytest.raises(TaxonomyError, match="'fabric'"):
        check_drawable(Taxonomy.from_mapping({"facets": {"fabric": ["silk", "wool"]}}))


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_catalog(tmp_path, products=1, seed=1, image_size=SIZE)


def test_contact_sheet_tiles_the_photos(catalog, tmp_path):
    summary, _ = catalog
    out = make_contact_sheet(summary.root, tmp_path / "sheet.png", n=12, thumb=64, columns=4)
    sheet = Image.open(out)
    assert sheet.width == 4 * 64 and sheet.height > 3 * 64
