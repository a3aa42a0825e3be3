"""`dressvision import` against hostile or broken catalog folders (issue 11: findings 1, 3, 4,
5, 6, 7, 11, 17, 18). Each test names its findings."""

from __future__ import annotations

import json
import os

import pytest

from local.cli import main
from local.commands.importer import import_catalog
from local.runtime import LocalRuntime
from shared.catalog import CatalogEntry, read_catalog
from shared.errors import CatalogFormatError, ObjectStoreError
from shared.ids import assign_split, image_id_for, sanitize_id, sanitize_part
from shared.taxonomy import load_taxonomy

HEADER = "image_id,path,product_id,silhouette,neckline,sleeve,occasion,x0,y0,x1,y1\n"


def run_json(capsys, *argv) -> dict:
    assert main([*argv]) == 0
    return json.loads(capsys.readouterr().out)


def catalog_objects(home) -> list[str]:
    runtime = LocalRuntime.open(home)
    return list(runtime.ports.catalog.list("catalog/"))


# -- finding 1: paths must stay inside the catalog folder -----------------------------------


def test_csv_paths_leaving_the_folder_are_refused_and_never_uploaded(tmp_path, make_jpeg, capsys):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(make_jpeg())
    folder = tmp_path / "catalog"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "ok.jpg").write_bytes(make_jpeg())
    os.symlink(secret, folder / "img" / "link.jpg")
    (folder / "labels.csv").write_text(
        HEADER
        + ",img/ok.jpg,p1,,,,,,,,\n"
        + ",../secret.jpg,p2,,,,,,,,\n"
        + f",{secret},p3,,,,,,,,\n"
        + ",img/link.jpg,p4,,,,,,,,\n"
    )
    home = str(tmp_path / "home")
    out = run_json(capsys, "--home", home, "import", str(folder), "--json")
    assert out["imported"] == 1
    reasons = {item["image_id"]: item["reason"] for item in out["invalid"]}
    assert set(reasons) == {"p2/secret", "p3/secret", "p4/link"}
    assert all("outside the catalog folder" in r for r in reasons.values())
    assert catalog_objects(home) == ["catalog/p1/ok.jpg"]


def test_a_symlink_leaving_a_folder_without_csv_is_refused(tmp_path, make_jpeg, capsys):
    secret = tmp_path / "elsewhere" / "x.jpg"
    secret.parent.mkdir()
    secret.write_bytes(make_jpeg())
    folder = tmp_path / "catalog" / "p1"
    folder.mkdir(parents=True)
    (folder / "a.jpg").write_bytes(make_jpeg())
    os.symlink(secret, folder / "b.jpg")
    home = str(tmp_path / "home")
    out = run_json(capsys, "--home", home, "import", str(folder.parent), "--json")
    assert out["imported"] == 1
    assert [i["image_id"] for i in out["invalid"]] == ["p1/b"]
    assert "outside the catalog folder" in out["invalid"][0]["reason"]
    assert catalog_objects(home) == ["catalog/p1/a.jpg"]


# -- finding 3: ids in any script stay distinct and stable ------------------------------------


def test_non_latin_product_ids_stay_distinct_stable_and_split_per_product():
    names = ["Платье-1", "Платье-2", "连衣裙", "فستان", "ドレス", "café", "cafe"]
    ids = [sanitize_part(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert all(i.isascii() and sanitize_part(i) == i for i in ids)
    assert ids == [sanitize_part(n) for n in names]  # stable
    assert ids[5].startswith("cafe-")  # a readable part survives
    splits = {assign_split(i) for i in ids + [sanitize_part(f"Платье-{k}") for k in range(40)]}
    assert splits == {"train", "test"}


def test_existing_ascii_ids_do_not_change():
    # The split derives from these ids: they must be exactly what earlier versions made.
    assert sanitize_part("p 1") == "p-1"
    assert sanitize_part("..p1..") == "p1"
    assert sanitize_id("p 1/summer dress (1)") == "p-1/summer-dress-1"
    assert image_id_for("p-0001", "0.jpg") == "p-0001/0"
    assert sanitize_part("") == "x"


def test_two_non_latin_products_import_as_two_products(tmp_path, make_jpeg):
    folder = tmp_path / "catalog"
    for name in ("Платье", "连衣裙"):
        (folder / name).mkdir(parents=True)
        (folder / name / "фото.jpg").write_bytes(make_jpeg())
    rows = read_catalog(folder, load_taxonomy())
    assert len({r.entry.product_id for r in rows}) == 2
    assert len({r.entry.image_id for r in rows}) == 2
    assert len({r.key for r in rows}) == 2


# -- finding 4: malformed CSV stops the import, naming the row --------------------------------


def test_a_stray_quote_stops_the_import_naming_the_row(tmp_path, make_jpeg, capsys):
    folder = tmp_path / "catalog"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.jpg").write_bytes(make_jpeg())
    (folder / "labels.csv").write_text(
        HEADER + ',a.jpg,p1,,,,,,,,\n,"b.jpg,p2,,,,,,,,\n,c.jpg,p3,,,,,,,,\n'
    )
    home = str(tmp_path / "home")
    assert main(["--home", home, "import", str(folder), "--json"]) != 0
    err = capsys.readouterr().err
    assert "line 3" in err
    assert catalog_objects(home) == []


def test_a_row_with_too_many_or_too_few_cells_stops_the_import(tmp_path, make_jpeg):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(make_jpeg())
    taxonomy = load_taxonomy()
    (folder / "labels.csv").write_text(HEADER + ",a.jpg,p1,,,,,,,,,extra\n")
    with pytest.raises(CatalogFormatError, match=r"line 2.*12 cells.*11"):
        read_catalog(folder, taxonomy)
    (folder / "labels.csv").write_text(HEADER + ",a.jpg,p1\n")
    with pytest.raises(CatalogFormatError, match=r"line 2.*3 cells.*11"):
        read_catalog(folder, taxonomy)


# -- finding 17: non-UTF-8 labels.csv, non-ASCII metadata -------------------------------------


def test_a_labels_csv_that_is_not_utf8_is_a_clear_error(tmp_path, make_jpeg, capsys):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(make_jpeg())
    (folder / "labels.csv").write_bytes((HEADER + ",a.jpg,robe-été,,,,,,,,\n").encode("latin-1"))
    assert main(["--home", str(tmp_path / "home"), "import", str(folder)]) != 0
    err = capsys.readouterr().err
    assert "UTF-8" in err and "Traceback" not in err


def test_catalog_metadata_is_ascii_even_for_non_ascii_labels():
    entry = CatalogEntry(image_id="p1/a", product_id="p1", facets={"neckline": "décolleté"})
    metadata = entry.to_metadata()
    assert all(v.isascii() for v in metadata.values())
    assert CatalogEntry.from_metadata(metadata) == entry


def test_the_local_store_refuses_non_ascii_metadata_as_s3_does(tmp_path, make_jpeg):
    runtime = LocalRuntime.open(tmp_path / "home")
    with pytest.raises(ObjectStoreError, match="ASCII"):
        runtime.upload("catalog/p1/a.jpg", make_jpeg(), metadata={"note": "été"})


# -- finding 11: size before reading; bounded reads -------------------------------------------


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path, make_jpeg, monkeypatch):
    folder = tmp_path / "catalog" / "p1"
    folder.mkdir(parents=True)
    (folder / "small.jpg").write_bytes(make_jpeg())
    with (folder / "big.jpg").open("wb") as f:  # sparse: big on paper, nothing on disk
        f.truncate(5_000_000)
    monkeypatch.setenv("DRESSVISION_MAX_IMAGE_BYTES", "1000000")
    runtime = LocalRuntime.open(tmp_path / "home")
    summary = import_catalog(runtime, folder.parent, progress=False)
    assert summary.imported == 1
    [item] = summary.invalid
    assert item["image_id"] == "p1/big" and "too large" in item["reason"]
    assert list(runtime.ports.catalog.list("catalog/")) == ["catalog/p1/small.jpg"]


def test_a_device_file_in_the_folder_is_refused_not_read(tmp_path, make_jpeg):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(make_jpeg())
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.mkfifo(folder / "pipe.jpg")  # inside the folder, but it never ends either
    (folder / "labels.csv").write_text(
        HEADER + ",a.jpg,p1,,,,,,,,\n,zero.jpg,p2,,,,,,,,\n,pipe.jpg,p3,,,,,,,,\n"
    )
    summary = import_catalog(LocalRuntime.open(tmp_path / "home"), folder, progress=False)
    assert summary.imported == 1
    reasons = {i["image_id"]: i["reason"] for i in summary.invalid}
    assert set(reasons) == {"p2/zero", "p3/pipe"}
    assert "not a regular file" in reasons["p3/pipe"]


# -- finding 18 (import side): a non-image file name gets a true reason ------------------------


def test_a_text_file_row_says_what_is_wrong(tmp_path, make_jpeg):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    (folder / "labels.csv").write_text(HEADER + ",notes.txt,p1,,,,,,,,\n")
    runtime = LocalRuntime.open(tmp_path / "home")
    summary = import_catalog(runtime, folder, progress=False)
    [item] = summary.invalid
    assert "dead-letter" not in item["reason"]
    assert ".txt" in item["reason"] and ".jpg" in item["reason"]
    assert list(runtime.ports.catalog.list("catalog/")) == []


# -- finding 5: one image id, two products ---------------------------------------------------


def test_an_image_id_reused_by_another_product_is_refused_across_imports(tmp_path, make_jpeg):
    runtime = LocalRuntime.open(tmp_path / "home")
    first = tmp_path / "one"
    first.mkdir()
    (first / "a.jpg").write_bytes(make_jpeg(color=(10, 10, 10)))
    (first / "labels.csv").write_text(HEADER + "look-1,a.jpg,p1,,,,,,,,\n")
    assert import_catalog(runtime, first, progress=False).imported == 1
    second = tmp_path / "two"
    second.mkdir()
    (second / "b.jpg").write_bytes(make_jpeg(color=(200, 10, 10)))
    (second / "labels.csv").write_text(HEADER + "look-1,b.jpg,p2,,,,,,,,\n")
    summary = import_catalog(runtime, second, progress=False)
    [item] = summary.invalid
    assert item["image_id"] == "look-1" and "p1" in item["reason"] and "p2" in item["reason"]
    record = runtime.ports.labels.get("look-1")
    assert (record.product_id, record.object_key) == ("p1", "catalog/p1/a.jpg")
    assert list(runtime.ports.catalog.list("catalog/")) == ["catalog/p1/a.jpg"]


# -- finding 6: a truncated re-upload keeps the good photo ------------------------------------


def test_a_truncated_reupload_keeps_the_good_photo_and_says_so(tmp_path, make_jpeg):
    runtime = LocalRuntime.open(tmp_path / "home")
    folder = tmp_path / "catalog" / "p1"
    folder.mkdir(parents=True)
    good = make_jpeg((64, 64))
    (folder / "a.jpg").write_bytes(good)
    assert import_catalog(runtime, folder.parent, progress=False).imported == 1
    (folder / "a.jpg").write_bytes(good[: len(good) // 2])
    summary = import_catalog(runtime, folder.parent, progress=False)
    [item] = summary.invalid
    assert "truncated" in item["reason"] and "previous photo" in item["reason"]
    record = runtime.ports.labels.get("p1/a")
    assert record.status == "ok" and "truncated" in record.reason
    assert runtime.ports.catalog.get("catalog/p1/a.jpg").body == good


# -- finding 7: an import that stops half-way -------------------------------------------------


def test_an_import_that_fails_half_way_registers_what_it_uploaded_and_a_rerun_finishes(
    tmp_path, make_jpeg, monkeypatch
):
    folder = tmp_path / "catalog" / "p1"
    folder.mkdir(parents=True)
    for i in range(5):
        (folder / f"{i}.jpg").write_bytes(make_jpeg(color=(i * 40, 0, 0)))
    runtime = LocalRuntime.open(tmp_path / "home")
    real_upload = runtime.upload
    calls = []

    def flaky(key, body, **kwargs):
        calls.append(key)
        if len(calls) == 4:
            raise ObjectStoreError("disk full")
        return real_upload(key, body, **kwargs)

    monkeypatch.setattr(runtime, "upload", flaky)
    with pytest.raises(ObjectStoreError):
        import_catalog(runtime, folder.parent, progress=False)
    uploaded = list(runtime.ports.catalog.list("catalog/"))
    assert len(uploaded) == 3
    assert {r.object_key for r in runtime.ports.labels.scan()} == set(uploaded)  # no orphan

    monkeypatch.setattr(runtime, "upload", real_upload)
    summary = import_catalog(runtime, folder.parent, progress=False)
    assert (summary.imported, summary.unchanged, summary.invalid) == (2, 3, [])
