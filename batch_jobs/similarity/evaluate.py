"""Same-product retrieval on the test split: every test photo is a query, the gallery is every
other test photo, a hit is another photo of the same product. recall@k: the share of queries
with a hit among their k nearest; mAP: the mean over queries of the average precision of the
whole ranking. Queries whose product has no other test photo cannot hit and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from batch_jobs.facets.data import PreparedImages
from batch_jobs.similarity.embedder import SUPERVISED, UNSUPERVISED, Embedder

RECALL_AT = (1, 5)


def retrieval_metrics(embeddings: np.ndarray, products: Sequence[str]) -> dict[str, float | int]:
    """`{"recall_at_1", "recall_at_5", "map", "queries"}` of unit `embeddings` (N, D)."""
    labels = np.asarray(products)
    n = len(labels)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    queries = np.flatnonzero(same.any(axis=1))
    if n < 2 or not len(queries):
        return {**{f"recall_at_{k}": 0.0 for k in RECALL_AT}, "map": 0.0, "queries": 0}
    scores = embeddings @ embeddings.T
    np.fill_diagonal(scores, -np.inf)  # never the query itself
    order = np.argsort(-scores[queries], axis=1, kind="stable")[:, : n - 1]
    hits = np.take_along_axis(same[queries], order, axis=1)  # (Q, N-1) ranked relevance
    recalls = {f"recall_at_{k}": float(hits[:, :k].any(axis=1).mean()) for k in RECALL_AT}
    ranks = np.arange(1, n)
    precision_at_hit = np.cumsum(hits, axis=1) / ranks
    ap = (precision_at_hit * hits).sum(axis=1) / hits.sum(axis=1)
    return {**recalls, "map": float(ap.mean()), "queries": len(queries)}


def similarity_metrics(
    embedders: Mapping[str, Embedder], prepared: PreparedImages, split: str = "test"
) -> dict[str, dict]:
    """`{kind: retrieval_metrics}` on the photos of `split` in `prepared` (crops made with
    the facet model's config, which both embedders share)."""
    rows = [i for i, r in enumerate(prepared.records) if r.split == split]
    products = [prepared.records[i].product_id for i in rows]
    images = prepared.images[rows]
    return {
        kind: retrieval_metrics(embedders[kind].embed(images), products)
        for kind in (SUPERVISED, UNSUPERVISED)
        if kind in embedders
    }


def evaluate_current(ports, prepared: PreparedImages, facet_version: str | None = None) -> dict:
    """Test-split retrieval of the current embedders: `{kind: retrieval_metrics}`, with
    `"version"` for the supervised one. `prepared`: the crops the facet evaluation made."""
    from batch_jobs.facets.data import prepare_records
    from batch_jobs.facets.predictor import FacetTagger, load_locator
    from batch_jobs.similarity.embedder import load_embedders
    from shared.registry import ModelRegistry

    registry = ModelRegistry(ports.artifacts)
    tagger = FacetTagger.from_registry(registry, facet_version)
    if tagger is None:
        return {}
    embedders = load_embedders(registry, tagger)
    figures = similarity_metrics({UNSUPERVISED: embedders[UNSUPERVISED]}, prepared)
    supervised = embedders.get(SUPERVISED)
    if supervised is not None:
        own = prepared
        if supervised.config != tagger.config:  # trained on another crop: make its own
            crop = supervised.config.crop
            locator = load_locator(registry, crop.locator_version) if crop else None
            own = prepare_records(
                prepared.records, ports.catalog, ports.settings, supervised.config, locator=locator
            )
        figures[SUPERVISED] = {
            **similarity_metrics({SUPERVISED: supervised}, own)[SUPERVISED],
            "version": supervised.version,
        }
    return figures
