"""Retagging and the review queue go through the same label update as the crowd."""

from __future__ import annotations

import re

from shared.records import LabelSource
from tests.web.fake_catalog import csrf_of


def _retag(client, image_id, facet, label, version):
    csrf = csrf_of(client.get(f"/catalog/{image_id}").text)
    data = {"facet": facet, "label": label, "version": version, "csrf": csrf}
    return client.post(f"/retag/{image_id}", data=data)


def _other(catalog, facet, label):
    return next(lb for lb in catalog.ports.taxonomy.labels(facet) if lb != label)


def test_retag_updates_the_label_with_a_staff_event_and_keeps_the_split(staff, catalog):
    labels = catalog.ports.labels
    before = labels.get("p00001/img2")
    new = _other(catalog, "neckline", before.facets["neckline"])
    response = _retag(staff, "p00001/img2", "neckline", new, before.version)
    assert response.status_code == 303
    assert response.headers["location"] == "/catalog/p00001/img2#history"
    after = labels.get("p00001/img2")
    assert after.facets["neckline"] == new
    assert after.sources["neckline"] == LabelSource.STAFF
    assert after.split == before.split and after.version == before.version + 1
    event = labels.events("p00001/img2")[-1]
    assert (event.old, event.new, event.source) == (before.facets["neckline"], new, "staff")
    assert event.evidence["who"] == "local-staff"
    html = staff.get("/catalog/p00001/img2").text
    history = html[html.index('id="history"') :]
    assert re.search(
        rf'<td class="label">{new}</td>\s*<td>staff</td>\s*<td>by local-staff', history
    )


def test_a_stale_retag_shows_the_conflict_and_overwrites_nothing(staff, catalog):
    labels = catalog.ports.labels
    stale = labels.get("p00001/img3")
    page = staff.get("/catalog/p00001/img3").text  # the form the person is looking at
    mine = _other(catalog, "sleeve", stale.facets["sleeve"])
    theirs = next(
        lb
        for lb in catalog.ports.taxonomy.labels("sleeve")
        if lb not in (mine, stale.facets["sleeve"])
    )
    labels.update_label(
        "p00001/img3", "sleeve", theirs, source=LabelSource.CROWD, expected_version=stale.version
    )
    data = {"facet": "sleeve", "label": mine, "version": stale.version, "csrf": csrf_of(page)}
    response = staff.post("/retag/p00001/img3", data=data)
    assert response.status_code == 409
    assert "Not saved" in response.text
    assert f'<strong class="current-label">{theirs}</strong>' in response.text
    assert labels.get("p00001/img3").facets["sleeve"] == theirs
    assert [e.new for e in labels.events("p00001/img3")][-1] == theirs


def test_retag_refuses_a_label_outside_the_taxonomy(staff, catalog):
    record = catalog.ports.labels.get("p00001/img2")
    response = _retag(staff, "p00001/img2", "neckline", "turtle", record.version)
    assert response.status_code == 400
    assert "turtle" in response.text
    assert catalog.ports.labels.get("p00001/img2") == record


def test_review_queue_answers_the_open_task_first_like_dressvision_answer(staff, catalog):
    page = staff.get("/review").text
    assert catalog.task_id in page
    assert 'data-key="1"' in page and 'id="skip"' in page
    assert '<script src="/static/review.js"' in page
    task = catalog.ports.tasks.get(catalog.task_id)
    response = staff.post(
        "/review/answer",
        data={"task_id": task.task_id, "label": task.suggested, "pos": 0, "csrf": csrf_of(page)},
    )
    assert response.status_code == 303
    assert "done=changed" in response.headers["location"]
    decided = catalog.ports.tasks.get(catalog.task_id)
    assert decided.status == "decided" and decided.outcome == task.suggested
    event = catalog.ports.labels.events(task.image_id)[-1]
    assert event.source == "staff" and event.evidence["task_id"] == task.task_id
    assert catalog.task_id not in staff.get("/review").text


def test_review_queue_lists_suspicious_labels_and_skips(staff, catalog):
    queue = staff.get("/review").text
    total = int(re.search(r"of (\d+)</small>", queue).group(1))
    assert total > 1  # the task, then suspicious labels from the model
    second = staff.get("/review", params={"pos": 1}).text
    assert "Suspicious: labelled" in second
    image_id = re.search(r'name="image_id" value="([^"]+)"', second).group(1)
    facet = re.search(r'name="facet" value="([^"]+)"', second).group(1)
    version = int(re.search(r'name="version" value="(\d+)"', second).group(1))
    label = re.search(r'name="label" value="([^"]+)" data-key="1"', second).group(1)
    response = staff.post(
        "/review/answer",
        data={
            "image_id": image_id,
            "facet": facet,
            "version": version,
            "label": label,
            "pos": 1,
            "csrf": csrf_of(second),
        },
    )
    assert "done=answered" in response.headers["location"]
    record = catalog.ports.labels.get(image_id)
    assert record.facets[facet] == label and record.sources[facet] == "staff"
    # A staff-set label is decided by people: it leaves the queue.
    assert int(re.search(r"of (\d+)</small>", staff.get("/review").text).group(1)) == total - 1


def test_with_the_default_caches_a_retag_shows_at_once(catalog, auth):
    from tests.web.fake_catalog import make_client
    from web.app import create_app

    client = make_client(create_app(catalog.ports, auth=auth), auth, "staff")
    by_staff = {"source": "staff"}
    assert client.get("/api/catalog", params=by_staff).json()["total"] == 0  # cached now
    record = catalog.ports.labels.get("p00001/img2")
    new = _other(catalog, "occasion", record.facets["occasion"])
    assert _retag(client, "p00001/img2", "occasion", new, record.version).status_code == 303
    images = client.get("/api/catalog", params=by_staff).json()["images"]
    assert [i["image_id"] for i in images] == ["p00001/img2"]


def test_a_staff_answer_on_a_suspicious_product_sets_its_other_photos_too(staff, catalog):
    labels = catalog.ports.labels
    records = [r for r in labels.scan() if r.status == "ok"]
    by_product: dict = {}
    for r in records:
        by_product.setdefault(r.product_id, []).append(r)
    # Two photos of one product with the same catalog label: what the review judges as one.
    shown, other, facet = next(
        (a, b, f)
        for photos in by_product.values()
        for a, b in [photos[:2]]
        if len(photos) > 1
        for f in catalog.ports.taxonomy.facet_names
        if a.facets[f] == b.facets[f] and f not in a.sources and f not in b.sources
    )
    page = staff.get("/review", params={"pos": 1}).text
    assert 'name="siblings"' in page  # the suspicious form carries the product's photos
    new = _other(catalog, facet, shown.facets[facet])
    response = staff.post(
        "/review/answer",
        data={
            "image_id": shown.image_id,
            "facet": facet,
            "version": shown.version,
            "label": new,
            "siblings": other.image_id,
            "pos": 1,
            "csrf": csrf_of(page),
        },
    )
    assert "1+more+photos" in response.headers["location"]
    after = labels.get(other.image_id)
    assert after.facets[facet] == new and after.sources[facet] == "staff"
    event = labels.events(other.image_id)[-1]
    assert event.evidence["product_photo"] == shown.image_id
    # An id that is not a clean image id is refused before anything is written.
    bad = staff.post(
        "/review/answer",
        data={
            "image_id": shown.image_id,
            "facet": facet,
            "version": labels.get(shown.image_id).version,
            "label": shown.facets[facet],
            "siblings": "../etc",
            "csrf": csrf_of(page),
        },
    )
    assert bad.status_code == 400
    assert labels.get(shown.image_id).facets[facet] == new
