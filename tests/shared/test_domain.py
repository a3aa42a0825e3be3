"""Taxonomy, ids and splits, settings, the catalog format: the domain's plain rules."""

from __future__ import annotations

import pytest

from shared.catalog import CatalogEntry, read_catalog
from shared.env import Settings
from shared.errors import CatalogFormatError, TaxonomyError, UnknownLabelError
from shared.ids import assign_split, image_id_for, parse_catalog_key, sanitize_id
from shared.taxonomy import Taxonomy, load_taxonomy


def test_taxonomy_keeps_the_custom_order_from_the_file():
    taxonomy = load_taxonomy()
    assert taxonomy.facet_names == ("silhouette", "neckline", "sleeve", "occasion")
    assert taxonomy.labels("silhouette") == (
        "a-line",
        "sheath",
        "fit-and-flare",
        "shift",
        "ball-gown",
    )
    assert taxonomy.index("sleeve", "three-quarter") == 3


def test_adding_a_class_is_a_config_change(tmp_path, monkeypatch):
    path = tmp_path / "taxonomy.yaml"
    path.write_text("facets:\n  color: [red, blue, green]\n  length: [mini, midi, maxi]\n")
    monkeypatch.setenv("DRESSVISION_TAXONOMY", str(path))
    taxonomy = load_taxonomy()
    assert taxonomy.facet_names == ("color", "length")
    assert taxonomy.index("length", "maxi") == 2


def test_unknown_labels_name_the_allowed_ones():
    with pytest.raises(UnknownLabelError, match="allowed: casual, work, cocktail, evening"):
        load_taxonomy().validate("occasion", "party")
    assert load_taxonomy().validate("occasion", None) is None


@pytest.mark.parametrize(
    "data", [{}, {"facets": {"a": ["x"]}}, {"facets": {"a": ["x", "x"]}}, {"facets": {"a": "x"}}]
)
def test_malformed_taxonomies_are_refused(data):
    with pytest.raises(TaxonomyError):
        Taxonomy.from_mapping(data)


def test_ids_are_sanitized_and_derived_from_product_and_stem():
    assert image_id_for("p 01", "front view.JPG") == "p-01/front-view"
    assert sanitize_id("../../etc/passwd") == "etc/passwd"
    assert parse_catalog_key("catalog/p-1/a b.jpg") == ("p-1", "p-1/a-b")
    with pytest.raises(ValueError):
        parse_catalog_key("catalog/loose.jpg")


def test_split_is_stable_per_product_and_near_the_fraction():
    splits = [assign_split(f"product-{i}", 0.2) for i in range(2000)]
    assert splits == [assign_split(f"product-{i}", 0.2) for i in range(2000)]
    assert 0.17 < splits.count("test") / 2000 < 0.23
    salted = [assign_split(f"product-{i}", 0.2, salt="other") for i in range(2000)]
    assert salted != splits  # another salt, another draw
    assert 0.17 < salted.count("test") / 2000 < 0.23


def test_settings_on_aws_require_resource_names():
    with pytest.raises(ValueError, match="DRESSVISION_CATALOG_BUCKET"):
        Settings.from_env({"DRESSVISION_BACKEND": "aws"})
    env = {
        "DRESSVISION_BACKEND": "aws",
        "DRESSVISION_CATALOG_BUCKET": "c",
        "DRESSVISION_ARTIFACTS_BUCKET": "a",
        "DRESSVISION_LABELS_TABLE": "L",
        "DRESSVISION_PREDICTIONS_TABLE": "P",
        "DRESSVISION_JOB_QUEUE": "q",
        "DRESSVISION_JOB_DEFINITION_INFER": "infer-def",
    }
    settings = Settings.from_env(env)
    assert settings.job_definitions == {"infer": "infer-def"}
    assert Settings.from_env(settings.to_env()) == settings


def test_settings_refuse_a_bad_test_fraction():
    with pytest.raises(ValueError, match="between 0 and 1"):
        Settings.from_env({"DRESSVISION_TEST_FRACTION": "1.5"})


def _write_catalog(folder, rows: str):
    (folder / "img").mkdir(parents=True)
    (folder / "labels.csv").write_text(rows)


def test_catalog_rows_are_validated_and_resolved(tmp_path):
    _write_catalog(
        tmp_path,
        "image_id,path,product_id,silhouette,neckline,sleeve,occasion,x0,y0,x1,y1\n"
        ",img/a.jpg,p1,sheath,,long,work,1,2,30,40\n"
        "custom id,img/b.jpg,p1,,,,,,,,\n",
    )
    rows = read_catalog(tmp_path, load_taxonomy())
    assert [r.entry.image_id for r in rows] == ["p1/a", "custom-id"]
    assert rows[0].key == "catalog/p1/a.jpg"
    assert rows[0].entry.facets == {
        "silhouette": "sheath",
        "neckline": None,
        "sleeve": "long",
        "occasion": "work",
    }
    assert rows[0].entry.bbox == (1.0, 2.0, 30.0, 40.0)
    assert rows[1].entry.bbox is None


def test_an_unknown_label_is_an_error_naming_the_row_and_the_allowed_labels(tmp_path):
    _write_catalog(tmp_path, "path,product_id,neckline\nimg/a.jpg,p1,crew\nimg/b.jpg,p1,scoop\n")
    with pytest.raises(CatalogFormatError, match=r"line 3 .*'scoop'.*v-neck, crew, boat"):
        read_catalog(tmp_path, load_taxonomy())


def test_rows_that_would_overwrite_each_other_are_refused(tmp_path):
    _write_catalog(tmp_path, "path,product_id\nimg/a.jpg,p1\nother/a.jpg,p1\n")
    with pytest.raises(CatalogFormatError, match="lines 2 and 3"):
        read_catalog(tmp_path, load_taxonomy())


def test_a_folder_without_csv_is_a_set_of_unlabeled_uploads(tmp_path, make_jpeg):
    (tmp_path / "p9").mkdir()
    (tmp_path / "p9" / "front.jpg").write_bytes(make_jpeg())
    (tmp_path / "notes.txt").write_text("not an image")
    rows = read_catalog(tmp_path, load_taxonomy())
    assert [(r.entry.image_id, r.key) for r in rows] == [("p9/front", "catalog/p9/front.jpg")]


def test_catalog_metadata_round_trips_as_ascii():
    entry = CatalogEntry(image_id="p/é", product_id="p", facets={"neckline": "crew"})
    metadata = entry.to_metadata()
    assert all(v.isascii() for v in metadata.values())
    assert CatalogEntry.from_metadata(metadata) == entry
    assert CatalogEntry.from_metadata({}) is None
    with pytest.raises(CatalogFormatError):
        CatalogEntry.from_metadata({"dressvision-catalog": "{not json"})
