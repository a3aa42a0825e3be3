"""Similarity queries, torch-free: "more like this one", "like this one but with another neckline".

The index (`VectorIndex`, one per embedder kind) stores each tagged image's embedding with
metadata `product_id`, `split`, `model_version` (the embedder's) and the predicted label of
every facet. A query by image id looks up that image's stored vector and predicted facets,
builds the filter from the options, asks for one more result than wanted and drops the query
image. Every query also filters on the query vector's `model_version`: while a new embedder
re-embeds the catalog, the index mixes two embedding spaces, and only one is comparable.

`dressvision similar`, the `similar` Lambda and the web app's image page all call `similar`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shared.errors import NotFoundError, UsageError
from shared.keys import EMBEDDING_KINDS
from shared.ports import ObjectStore, Ports, VectorIndex
from shared.taxonomy import Taxonomy
from shared.vectors import Condition, eq, ne

PRODUCT_ID, SPLIT, MODEL_VERSION = "product_id", "split", "model_version"
RESERVED_KEYS = (PRODUCT_ID, SPLIT, MODEL_VERSION)
DEFAULT_K = 10
MAX_K = 100


class SimilarityQueryError(UsageError, ValueError):
    """A similarity query that cannot be asked as it is (unknown facet, label or kind): a usage
    error, not a runtime failure."""


def index_metadata(
    product_id: str, split: str, model_version: str, facets: Mapping[str, str]
) -> dict[str, str]:
    """What the index stores beside an embedding (every value filterable)."""
    clash = set(facets) & set(RESERVED_KEYS)
    if clash:
        raise ValueError(f"a facet may not be named {sorted(clash)}: those keys are reserved")
    return {
        PRODUCT_ID: product_id,
        SPLIT: split,
        MODEL_VERSION: model_version,
        **{facet: str(label) for facet, label in facets.items()},
    }


def facets_of(metadata: Mapping[str, str], taxonomy: Taxonomy) -> dict[str, str]:
    """The predicted facets in a stored metadata document, in taxonomy order."""
    return {f: metadata[f] for f in taxonomy.facet_names if f in metadata}


def parse_differ(text: str) -> tuple[str, str | None]:
    """`"neckline"` -> ("neckline", None): any other label; `"neckline=v-neck"` -> that one."""
    facet, _, label = text.partition("=")
    return facet.strip(), (label.strip() or None)


def check_kind(kind: str) -> str:
    if kind not in EMBEDDING_KINDS:
        raise SimilarityQueryError(
            f"unknown embedding kind {kind!r}; use one of {', '.join(EMBEDDING_KINDS)}"
        )
    return kind


def build_filter(
    query: Mapping[str, str],
    taxonomy: Taxonomy,
    *,
    same: Iterable[str] = (),
    differ: Iterable[tuple[str, str | None]] = (),
    other_products: bool = False,
) -> tuple[Condition, ...]:
    """The conditions of a query whose own metadata is `query`."""
    conditions: list[Condition] = []
    if MODEL_VERSION in query:
        conditions.append(eq(MODEL_VERSION, query[MODEL_VERSION]))
    for facet in same:
        _check_facet(facet, taxonomy)
        if facet not in query:
            raise SimilarityQueryError(f"the query image has no predicted {facet} to keep")
        conditions.append(eq(facet, query[facet]))
    for facet, label in differ:
        _check_facet(facet, taxonomy)
        if label is not None:
            if label not in taxonomy.labels(facet):
                allowed = ", ".join(taxonomy.labels(facet))
                raise SimilarityQueryError(f"unknown {facet} label {label!r}; allowed: {allowed}")
            conditions.append(eq(facet, label))
        elif facet in query:
            conditions.append(ne(facet, query[facet]))
        else:
            raise SimilarityQueryError(f"the query image has no predicted {facet} to differ from")
    if other_products and query.get(PRODUCT_ID):
        conditions.append(ne(PRODUCT_ID, query[PRODUCT_ID]))
    return tuple(conditions)


def _check_facet(facet: str, taxonomy: Taxonomy) -> None:
    if facet not in taxonomy.facet_names:
        raise SimilarityQueryError(
            f"unknown facet {facet!r}; use one of {', '.join(taxonomy.facet_names)}"
        )


def search(
    index: VectorIndex,
    vector: Sequence[float],
    query: Mapping[str, str],
    taxonomy: Taxonomy,
    *,
    image_id: str | None = None,
    k: int = DEFAULT_K,
    same: Iterable[str] = (),
    differ: Iterable[tuple[str, str | None]] = (),
    other_products: bool = False,
) -> dict[str, Any]:
    """`{"query": {"image_id", "facets"}, "results": [{"image_id", "product_id", "score",
    "facets"}]}`, best first, never `image_id` itself."""
    if not 1 <= k <= MAX_K:
        raise SimilarityQueryError(f"k must be between 1 and {MAX_K}, got {k}")
    conditions = build_filter(
        query, taxonomy, same=same, differ=list(differ), other_products=other_products
    )
    hits = index.query(vector, k + 1 if image_id else k, conditions)
    results = [
        {
            "image_id": hit.id,
            "product_id": hit.metadata.get(PRODUCT_ID),
            "score": round(hit.score, 4),
            "facets": facets_of(hit.metadata, taxonomy),
        }
        for hit in hits
        if hit.id != image_id
    ][:k]
    asked = {"image_id": image_id, "facets": facets_of(query, taxonomy)}
    return {"query": asked, "results": results}


def similar(
    index: VectorIndex,
    image_id: str,
    taxonomy: Taxonomy,
    *,
    k: int = DEFAULT_K,
    same: Iterable[str] = (),
    differ: Iterable[tuple[str, str | None]] = (),
    other_products: bool = False,
) -> dict[str, Any]:
    """`search` from the stored embedding of `image_id`."""
    stored = index.get([image_id]).get(image_id)
    if stored is None:
        raise NotFoundError(
            f"image {image_id!r} is not in the similarity index: only tagged images are (the "
            "infer job embeds every image it tags; `dressvision train --what similarity` "
            "trains the embedder and embeds the catalog)"
        )
    return search(
        index,
        stored.vector,
        stored.metadata,
        taxonomy,
        image_id=image_id,
        k=k,
        same=same,
        differ=differ,
        other_products=other_products,
    )


def default_kind(artifacts: ObjectStore) -> str:
    """The embedding a query uses unless told: the supervised embedder's once one was
    promoted, else the current facet model's pooled features."""
    from shared.registry import ModelKind, ModelRegistry

    current = ModelRegistry(artifacts).current(ModelKind.SIMILARITY)
    return "supervised" if current else "unsupervised"


def similar_query(ports: Ports) -> Callable[..., dict[str, Any]] | None:
    """`similar` bound to the deployment's indexes and the default kind (the web app's image
    page asks it), or None where the deployment has no similarity index."""
    if ports.vectors is None:
        return None
    vectors = ports.vectors

    def query(
        image_id: str, *, k: int = DEFAULT_K, differ: Iterable[tuple[str, str | None]] = ()
    ) -> dict[str, Any]:
        index = vectors(default_kind(ports.artifacts))
        return similar(index, image_id, ports.taxonomy, k=k, differ=differ)

    return query
