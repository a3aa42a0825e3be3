"""The views show the registry's figures and the stored predictions, in taxonomy order."""

from __future__ import annotations

import re

from shared.registry import ModelRegistry


def _metrics(catalog):
    return ModelRegistry(catalog.ports.artifacts).metrics("facets", catalog.version)


def test_models_lists_versions_with_current_and_facet_f1(staff, catalog):
    html = staff.get("/models").text
    assert "20261101T000000Z" in html and catalog.version in html
    current = re.search(r'<tr class="current">(.*?)</tr>', html, re.S).group(1)
    assert catalog.version in current
    test_f1 = _metrics(catalog)["splits"]["test"]["silhouette"]["macro_f1"]
    assert f"{test_f1:.3f}" in current
    assert "<polyline" in html  # the trend across versions
    kinds = staff.get("/api/models").json()["kinds"]
    assert [k["kind"] for k in kinds] == ["facets", "locator", "similarity"]
    assert kinds[0]["current"] == catalog.version


def test_f1_shows_per_class_figures_in_taxonomy_order(staff, catalog):
    assert staff.get("/f1").headers["location"] == f"/f1/{catalog.version}/silhouette"
    html = staff.get(f"/f1/{catalog.version}/neckline").text
    labels = catalog.ports.taxonomy.labels("neckline")
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>", html)
    assert rows[: len(labels)] == list(labels)  # train table, taxonomy order
    per_class = _metrics(catalog)["splits"]["train"]["neckline"]["per_class"]
    assert f"{per_class['crew']['recall']:.3f}" in html
    data = staff.get(f"/api/f1/{catalog.version}/neckline").json()
    assert [c["label"] for c in data["splits"]["test"]["per_class"]] == list(labels)
    assert staff.get(f"/f1/{catalog.version}/colour").status_code == 404
    assert staff.get("/f1/20991231T000000Z/neckline").status_code == 404


def test_confusion_cells_link_to_exactly_their_images(staff, catalog):
    version = catalog.version
    html = staff.get(f"/confusion/{version}/sleeve/train").text
    links = re.findall(
        rf'href="(/confusion/{version}/sleeve/train/([^/"]+)/([^/"]+))">(\d+)<', html
    )
    assert links
    predictions = {p.image_id: p for p in catalog.ports.predictions.for_model(version)}
    for href, true, predicted, count in links:
        cell = staff.get("/api" + href).json()
        assert cell["total"] == int(count)  # nobody relabelled since the evaluation
        for image in cell["images"]:
            assert image["label"] == true
            assert predictions[image["image_id"]].facets["sleeve"].label == predicted
        confidences = [i["confidence"] for i in cell["images"]]
        assert confidences == sorted(confidences, reverse=True)
    page = staff.get(links[0][0]).text
    assert 'src="/images/' in page


def test_false_negatives_and_positives(staff, catalog):
    version = catalog.version
    predictions = {p.image_id: p for p in catalog.ports.predictions.for_model(version)}
    records = {r.image_id: r for r in catalog.ports.labels.scan()}
    for label in catalog.ports.taxonomy.labels("occasion"):
        fn = staff.get(f"/api/errors/{version}/occasion/{label}/fn", params={"split": "train"})
        fp = staff.get(f"/api/errors/{version}/occasion/{label}/fp", params={"split": "train"})
        expect_fn = {
            i
            for i, p in predictions.items()
            if records[i].split == "train"
            and records[i].facets["occasion"] == label
            and p.facets["occasion"].label != label
        }
        expect_fp = {
            i
            for i, p in predictions.items()
            if records[i].split == "train"
            and records[i].facets["occasion"] != label
            and p.facets["occasion"].label == label
        }
        assert {i["image_id"] for i in fn.json()["images"]} == expect_fn
        assert {i["image_id"] for i in fp.json()["images"]} == expect_fp
        confidences = [i["confidence"] for i in fn.json()["images"]]
        assert confidences == sorted(confidences, reverse=True)
    assert staff.get(f"/errors/{version}/occasion/work/xx").status_code == 404


def test_catalog_filters_and_pages(staff, catalog):
    invalid = staff.get("/api/catalog", params={"status": "invalid"}).json()
    assert [i["image_id"] for i in invalid["images"]] == [catalog.image_ids[-1]]
    assert "truncated JPEG" in staff.get("/catalog?status=invalid").text
    test = staff.get("/api/catalog", params={"split": "test"}).json()
    assert test["total"] and all(i["split"] == "test" for i in test["images"])
    label = staff.get("/api/catalog", params={"facet": "sleeve", "label": "long"}).json()
    assert all(i["facets"]["sleeve"] == "long" for i in label["images"])
    staff_source = staff.get("/api/catalog", params={"source": "staff"}).json()
    assert staff_source["total"] == 0
    assert staff.get("/catalog?split=validation").status_code == 404


def test_image_page_shows_box_labels_predictions_tasks_and_history(staff, catalog):
    html = staff.get("/catalog/p00000/img0").text
    assert '<rect class="box located-box" x="10.0" y="12.0" width="38.0" height="58.0"' in html
    assert 'href="/images/p00000/img0"' in html
    record = catalog.ports.labels.get("p00000/img0")
    prediction = catalog.ports.predictions.get("p00000/img0", catalog.version)
    for facet, label in record.facets.items():
        assert f'<td class="label">{label}</td>' in html
        assert f"<strong>{prediction.facets[facet].label}</strong>" in html
    assert catalog.task_id in html
    assert html.count("registered") == len(record.facets)  # one event per catalog label
    data = staff.get("/api/catalog/p00000/img0").json()
    assert data["record"]["split"] == record.split
    assert data["tasks"][0]["task_id"] == catalog.task_id
    assert staff.get("/catalog/p99999/none").status_code == 404
