"""Vectors for the `VectorIndex` port: unit-length rows, and the small metadata filter language
every adapter understands.

A filter is a conjunction of conditions on string metadata values: `key == value` or
`key != value`. That is what similarity queries need (`--same silhouette`, `--differ neckline`,
`--differ neckline=v-neck`, `--other-products`, and "same embedder version"), and it maps one to
one onto Amazon S3 Vectors' filter (`$eq`, `$ne`, `$and`) and onto a Python predicate for the
local faiss index, so both deployments answer the same query the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy is imported where vectors are handled: not by every Lambda at start
    import numpy as np

Op = Literal["eq", "ne"]


@dataclass(frozen=True)
class Condition:
    """`metadata[key] == value` (op "eq") or `!=` (op "ne"); a vector without `key` never
    equals and always differs."""

    key: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if self.op not in ("eq", "ne"):
            raise ValueError(f"filter op must be 'eq' or 'ne', got {self.op!r}")
        if not self.key:
            raise ValueError("a filter condition needs a metadata key")

    def holds(self, metadata: Mapping[str, object]) -> bool:
        equal = metadata.get(self.key) == self.value
        return equal if self.op == "eq" else not equal


Filter = tuple[Condition, ...]


def eq(key: str, value: str) -> Condition:
    return Condition(key, "eq", value)


def ne(key: str, value: str) -> Condition:
    return Condition(key, "ne", value)


def matches(conditions: Iterable[Condition], metadata: Mapping[str, object]) -> bool:
    """Whether `metadata` satisfies every condition (an empty filter matches everything)."""
    return all(c.holds(metadata) for c in conditions)


def to_s3vectors(conditions: Iterable[Condition]) -> dict | None:
    """The S3 Vectors QueryVectors `filter` document, or None for no filter."""
    terms = [{c.key: {"$" + c.op: c.value}} for c in conditions]
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else {"$and": terms}


def normalized_rows(vectors: Sequence[Sequence[float]] | np.ndarray, dim: int | None) -> np.ndarray:
    """float32 (n, d) rows scaled to unit length (a single vector becomes one row).
    ValueError for a wrong width, a zero row or a non-finite value (S3 Vectors refuses those
    too: a cosine index has no direction for a zero vector)."""
    import numpy as np

    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"vectors must be a (n, d) array, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"this index holds {dim}-d vectors, got {array.shape[1]}-d ones")
    if not np.isfinite(array).all():
        raise ValueError("vectors must be finite (no NaN or infinity)")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a zero vector has no direction: it cannot be compared by cosine")
    return np.ascontiguousarray(array / norms)
