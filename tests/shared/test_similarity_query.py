"""Similarity queries (shared/similarity.py) and the `similar` Lambda, on a faiss index of
hand-made vectors: the filters the options build, k results, never the query image, only
vectors of the query's embedder version; and nothing of it imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lambdas import similar as similar_lambda
from shared.backends import build_ports
from shared.env import Settings
from shared.errors import NotFoundError
from shared.similarity import (
    SimilarityQueryError,
    build_filter,
    index_metadata,
    parse_differ,
    similar,
)
from shared.vectors import eq, ne

NECKLINES = ("v-neck", "crew", "boat", "sweetheart")


@pytest.fixture
def ports(tmp_path: Path):
    return build_ports(Settings(home=tmp_path))


@pytest.fixture
def index(ports):
    """40 products x 3 photos; product i's photos lie near direction i; necklines cycle by
    product, silhouettes by photo. One stale vector of an older embedder version sits right
    on top of p0's photos."""
    rng = np.random.default_rng(0)
    taxonomy = ports.taxonomy
    silhouettes = taxonomy.labels("silhouette")
    centres = rng.normal(size=(40, 16))
    ids, vectors, meta = [], [], []
    for p in range(40):
        for photo in range(3):
            ids.append(f"p{p}/{photo}")
            vectors.append(centres[p] + 0.05 * rng.normal(size=16))
            facets = {
                "silhouette": silhouettes[photo % len(silhouettes)],
                "neckline": NECKLINES[p % len(NECKLINES)],
            }
            meta.append(index_metadata(f"p{p}", "test", "v2", facets))
    ids.append("stale/0")
    vectors.append(centres[0])
    meta.append(index_metadata("stale", "test", "v1", {"neckline": "v-neck"}))
    built = ports.vectors("supervised")
    built.upsert(ids, np.array(vectors), meta)
    return built


def test_more_like_this_one_finds_its_product_first_and_never_itself(ports, index) -> None:
    answer = similar(index, "p5/0", ports.taxonomy, k=4)

    ids = [r["image_id"] for r in answer["results"]]
    assert len(ids) == 4 and "p5/0" not in ids
    assert set(ids[:2]) == {"p5/1", "p5/2"}
    assert "stale/0" not in ids
    assert answer["query"] == {
        "image_id": "p5/0",
        "facets": {"silhouette": ports.taxonomy.labels("silhouette")[0], "neckline": "crew"},
    }
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["results"][0]["product_id"] == "p5"


def test_differ_keeps_k_results_with_another_neckline(ports, index) -> None:
    answer = similar(index, "p5/0", ports.taxonomy, k=10, differ=[("neckline", None)])

    assert len(answer["results"]) == 10
    assert all(r["facets"]["neckline"] != "crew" for r in answer["results"])

    exact = similar(index, "p5/0", ports.taxonomy, k=10, differ=[parse_differ("neckline=boat")])
    assert len(exact["results"]) == 10
    assert {r["facets"]["neckline"] for r in exact["results"]} == {"boat"}


def test_same_and_other_products(ports, index) -> None:
    answer = similar(index, "p5/0", ports.taxonomy, k=5, same=["silhouette"], other_products=True)

    silhouette = answer["query"]["facets"]["silhouette"]
    assert len(answer["results"]) == 5
    assert all(r["product_id"] != "p5" for r in answer["results"])
    assert all(r["facets"]["silhouette"] == silhouette for r in answer["results"])


def test_filters_say_what_they_mean_and_refuse_unknown_names(ports) -> None:
    query = index_metadata("p1", "test", "v2", {"neckline": "crew", "silhouette": "a-line"})

    built = build_filter(
        query,
        ports.taxonomy,
        same=["silhouette"],
        differ=[("neckline", None)],
        other_products=True,
    )

    assert built == (
        eq("model_version", "v2"),
        eq("silhouette", "a-line"),
        ne("neckline", "crew"),
        ne("product_id", "p1"),
    )
    with pytest.raises(SimilarityQueryError, match="unknown facet"):
        build_filter(query, ports.taxonomy, same=["colour"])
    with pytest.raises(SimilarityQueryError, match="unknown neckline label"):
        build_filter(query, ports.taxonomy, differ=[("neckline", "turtle")])


def test_an_image_not_in_the_index_says_so(ports, index) -> None:
    with pytest.raises(NotFoundError, match="not in the similarity index"):
        similar(index, "p99/0", ports.taxonomy)


def test_lambda_answers_direct_and_api_gateway_events(ports, index, monkeypatch) -> None:
    monkeypatch.setattr(similar_lambda.wiring, "ports", lambda: ports)

    direct = similar_lambda.handler(
        {
            "image_id": "p5/0",
            "k": 3,
            "differ": ["neckline"],
            "other_products": True,
            "kind": "supervised",
        },
        None,
    )
    api = similar_lambda.handler(
        {
            "pathParameters": {"image_id": "p5/0"},
            "queryStringParameters": {
                "k": "3",
                "differ": "neckline",
                "other_products": "true",
                "kind": "supervised",
            },
        },
        None,
    )

    assert direct["statusCode"] == api["statusCode"] == 200
    body = json.loads(direct["body"])
    assert body == json.loads(api["body"])
    assert len(body["results"]) == 3
    assert all(r["facets"]["neckline"] != "crew" for r in body["results"])
    missing = similar_lambda.handler({"image_id": "nope/0", "kind": "supervised"}, None)
    assert missing["statusCode"] == 404
    bad = similar_lambda.handler({"image_id": "p5/0", "same": "colour", "kind": "supervised"}, None)
    assert bad["statusCode"] == 400 and "unknown facet" in json.loads(bad["body"])["error"]


def test_lambda_without_an_index_is_unavailable(ports, monkeypatch) -> None:
    monkeypatch.setattr(similar_lambda.wiring, "ports", lambda: replace(ports, vectors=None))
    assert similar_lambda.handler({"image_id": "p5/0"}, None)["statusCode"] == 503


def test_the_query_path_never_imports_torch() -> None:
    code = (
        "import sys, lambdas.similar, shared.similarity, shared.aws.s3vectors; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
