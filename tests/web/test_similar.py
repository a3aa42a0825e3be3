"""The similar-dresses panel, behind the similarity query the composition root may give."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from shared.errors import NotFoundError
from tests.web.fake_catalog import SECRET
from web.app import create_app
from web.auth import AuthConfig


def _client(catalog, similar):
    auth = AuthConfig(secret=SECRET, sign_in_tokens={"t": "viewer"})
    client = TestClient(create_app(catalog.ports, auth=auth, similar=similar))
    client.get("/signin", params={"token": "t"})
    return client


def test_the_image_page_shows_similar_dresses_and_others_per_facet(catalog):
    asked = []
    records = {r.image_id: r for r in catalog.ports.labels.scan()}

    def similar(image_id, *, k, differ=()):
        asked.append((image_id, k, tuple(differ)))
        mine = records[image_id].facets
        hits = [
            r for i, r in sorted(records.items())
            if i != image_id and all(r.facets[f] != mine[f] for f, _ in differ)
        ][:k]  # fmt: skip
        return {
            "results": [{"image_id": r.image_id, "score": 0.5, "facets": r.facets} for r in hits]
        }

    html = _client(catalog, similar).get("/catalog/p00000/img0").text
    assert "Similar dresses" in html
    facets = catalog.ports.taxonomy.facet_names
    assert ("p00000/img0", 8, ()) in asked
    assert {a[2] for a in asked if a[2]} == {((f, None),) for f in facets}
    for facet in facets:
        section = html.split(f"Similar, but with another {facet}")[1].split("<h3>")[0]
        shown = re.findall(r'<a href="/catalog/([^"]+)">', section)
        assert shown
        assert all(records[i].facets[facet] != records["p00000/img0"].facets[facet] for i in shown)


def test_an_image_outside_the_index_says_so(catalog):
    def similar(image_id, *, k, differ=()):
        raise NotFoundError(f"image {image_id!r} is not in the similarity index")

    html = _client(catalog, similar).get("/catalog/p00000/img0").text
    assert "is not in the similarity index" in html


def test_without_a_similarity_query_there_is_no_panel(staff):
    assert "Similar dresses" not in staff.get("/catalog/p00000/img0").text


def test_the_composition_roots_query_the_deployment_index(catalog):
    """`similar_query` (what `dressvision serve` and the web Lambda pass) asks the index of
    the default kind: the facet model's features until an embedder is promoted."""
    import numpy as np

    from shared.similarity import index_metadata, similar_query

    records = sorted(catalog.ports.labels.scan(), key=lambda r: r.image_id)[:4]
    index = catalog.ports.vectors("unsupervised")
    rng = np.random.default_rng(0)
    base = rng.normal(size=512)
    index.upsert(
        [r.image_id for r in records],
        [base + 0.01 * i * rng.normal(size=512) for i in range(len(records))],
        [index_metadata(r.product_id, r.split, "v1", r.facets) for r in records],
    )

    html = _client(catalog, similar_query(catalog.ports)).get(f"/catalog/{records[0].image_id}")
    section = html.text.split("Similar dresses")[1].split("<h3>")[0]
    shown = re.findall(r'<a href="/catalog/([^"]+)">', section)
    assert shown[0] == records[1].image_id  # the nearest other photo first
    assert records[0].image_id not in shown
