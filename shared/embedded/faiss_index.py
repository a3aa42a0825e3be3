"""A `VectorIndex` on faiss, persisted as one object in an ObjectStore (the artifacts folder).

Vectors live at positions 0..n-1 of a faiss index: an exact `IndexFlatIP` (inner product of
L2-normalized vectors = cosine similarity) while the index holds at most `hnsw_above` vectors,
an `IndexHNSWFlat` above (sub-millisecond queries at a million vectors; bench/similarity.py).
Updates are incremental: a new vector is added at the next position; replacing or deleting one
leaves a tombstone at its old position (HNSW cannot remove), skipped by every query; tombstones
are compacted away (the index rebuilt) once they are a quarter of the positions.

Filters (`shared.vectors`) run as a faiss `IDSelectorBitmap` over the positions that are
alive and match, with a wider HNSW beam (`filtered_ef_search`: a filter may exclude the query's
whole neighbourhood). When no more positions match than a flat index would hold
(`hnsw_above`), or an approximate search found fewer than `k` while `k` match, the query is an
exact search over the matching vectors: a filtered query always returns `k` results when `k`
match.

The whole index (ids, metadata, vectors, the serialized faiss index) is one `.npz` object, so a
reader sees a complete version. Writers read-modify-write it under `lock` (a file lock locally:
two infer jobs may run at once) and reload first when another process saved meanwhile.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import faiss
import numpy as np

from shared.errors import NotFoundError
from shared.ports import ObjectStore, StoredVector, VectorHit, VectorIndex
from shared.vectors import Condition, eq, matches, normalized_rows

log = logging.getLogger(__name__)

COMPACT_SHARE = 0.25  # rebuild once tombstones are this share of the positions


class FileLock:
    """An exclusive `flock` on `path` (created if missing), for processes on one machine."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class FaissVectorIndex(VectorIndex):
    """One embedding space stored at `key` in `store`."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        *,
        hnsw_above: int = 20_000,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 64,
        filtered_ef_search: int = 512,
        lock: Callable[[], AbstractContextManager] | None = None,
    ):
        self.store, self.key = store, key
        self.hnsw_above, self.hnsw_m = hnsw_above, hnsw_m
        self.ef_construction, self.ef_search = ef_construction, ef_search
        self.filtered_ef_search = filtered_ef_search
        self._lock = lock or contextlib.nullcontext
        self._etag: str | None = None
        self._loaded = False
        self._clear(None)

    # -- state ----------------------------------------------------------------------------
    def _clear(self, dim: int | None) -> None:
        self.dim = dim
        self._ids: list[str | None] = []  # position -> id; None = tombstone
        self._meta: list[dict[str, str] | None] = []
        self._pos: dict[str, int] = {}
        self._vectors = np.zeros((0, dim or 0), np.float32)
        self._index: faiss.Index | None = None
        self._masks: dict[tuple[str, str], np.ndarray] = {}  # (key, value) -> positions equal

    @property
    def kind(self) -> str:
        """ "flat" (exact) or "hnsw"."""
        return "hnsw" if isinstance(self._index, faiss.IndexHNSWFlat) else "flat"

    def __len__(self) -> int:
        self._refresh()
        return len(self._pos)

    def _new_index(self, vectors: np.ndarray, hnsw: bool) -> faiss.Index:
        if hnsw:
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        else:
            index = faiss.IndexFlatIP(self.dim)
        if len(vectors):
            index.add(vectors)
        return index

    def _rebuild(self) -> None:
        """Compact the tombstones away and pick the index kind for the live count."""
        live = [p for p, i in enumerate(self._ids) if i is not None]
        self._ids = [self._ids[p] for p in live]
        self._meta = [self._meta[p] for p in live]
        self._vectors = np.ascontiguousarray(self._vectors[live])
        self._pos = {i: p for p, i in enumerate(self._ids)}
        self._index = self._new_index(self._vectors, len(live) > self.hnsw_above)

    # -- persistence ------------------------------------------------------------------------
    def _refresh(self) -> None:
        """Load the stored index when it is not loaded or another process saved a newer one."""
        try:
            etag = self.store.head(self.key).etag
        except NotFoundError:
            if not self._loaded:
                self._loaded = True
            return
        if self._loaded and etag == self._etag:
            return
        body = self.store.get(self.key)
        self._load(body.body)
        self._etag, self._loaded = body.info.etag, True

    def _load(self, body: bytes) -> None:
        with np.load(io.BytesIO(body), allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode())
            self._clear(header["dim"])
            self._ids = header["ids"]
            self._meta = header["metadata"]
            self._vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
            self._index = faiss.deserialize_index(np.asarray(data["index"]))
        self._pos = {i: p for p, i in enumerate(self._ids) if i is not None}
        self._masks.clear()

    def _save(self) -> None:
        header = {"dim": self.dim, "ids": self._ids, "metadata": self._meta}
        buffer = io.BytesIO()
        np.savez(
            buffer,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            vectors=self._vectors,
            index=faiss.serialize_index(self._index),
        )
        self._etag = self.store.put(self.key, buffer.getvalue()).etag

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with self._lock():
            self._refresh()
            yield
            self._masks.clear()
            if self._index is not None:  # nothing was ever stored: nothing to save
                self._save()

    # -- the port ---------------------------------------------------------------------------
    def upsert(
        self,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]],
        metadata: Sequence[Mapping[str, str]],
    ) -> None:
        if not (len(ids) == len(vectors) == len(metadata)):
            raise ValueError(
                f"{len(ids)} ids, {len(vectors)} vectors and {len(metadata)} metadata: one each"
            )
        if not len(ids):
            return
        with self._writing():
            rows = normalized_rows(vectors, self.dim)
            if self.dim is None:
                self._clear(rows.shape[1])
                self._index = self._new_index(self._vectors, False)
            last = {image_id: row for row, image_id in enumerate(ids)}  # last one wins
            for image_id in last:
                old = self._pos.pop(image_id, None)
                if old is not None:
                    self._ids[old], self._meta[old] = None, None
            start = len(self._ids)
            order = list(last.values())
            for offset, row in enumerate(order):
                self._pos[ids[row]] = start + offset
                self._ids.append(ids[row])
                self._meta.append({k: str(v) for k, v in metadata[row].items()})
            fresh = rows[order]
            self._vectors = np.concatenate([self._vectors, fresh])
            self._index.add(fresh)
            self._maybe_rebuild()

    def delete(self, ids: Sequence[str]) -> None:
        with self._writing():
            for image_id in ids:
                old = self._pos.pop(image_id, None)
                if old is not None:
                    self._ids[old], self._meta[old] = None, None
            self._maybe_rebuild()

    def _maybe_rebuild(self) -> None:
        if self._index is None:
            return
        tombstones = len(self._ids) - len(self._pos)
        wants_hnsw = len(self._pos) > self.hnsw_above
        if tombstones > COMPACT_SHARE * max(1, len(self._ids)) or wants_hnsw != (
            self.kind == "hnsw"
        ):
            self._rebuild()

    def get(self, ids: Sequence[str]) -> dict[str, StoredVector]:
        self._refresh()
        found = {}
        for image_id in ids:
            pos = self._pos.get(image_id)
            if pos is not None:
                vector = tuple(float(v) for v in self._vectors[pos])
                found[image_id] = StoredVector(image_id, vector, dict(self._meta[pos]))
        return found

    def ids(self) -> Iterator[str]:
        self._refresh()
        return iter(list(self._pos))

    def query(
        self, vector: Sequence[float], k: int, filter: Sequence[Condition] = ()
    ) -> list[VectorHit]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self._refresh()
        if not self._pos:
            return []
        q = normalized_rows(vector, self.dim)
        if not filter and len(self._pos) == len(self._ids):  # everything, no tombstone
            k_eff = min(k, len(self._ids))
            hits = self._search(q, k_eff, None, everything=True)
            if len(hits) == k_eff:
                return hits
        allowed = self._allowed(filter)
        count = int(allowed.sum())
        if count == 0:
            return []
        k_eff = min(k, count)
        if self.kind == "hnsw" and count <= self.hnsw_above:  # as few as a flat index holds
            return self._exact(q, k_eff, allowed)
        hits = self._search(q, k_eff, allowed, everything=count == len(self._ids))
        if len(hits) < k_eff:  # the graph walk ran out of matching neighbours
            return self._exact(q, k_eff, allowed)
        return hits

    def _allowed(self, conditions: Sequence[Condition]) -> np.ndarray:
        """A boolean mask over positions: alive and matching the filter (`matches`' rules:
        a vector without the key never equals and always differs)."""
        mask = self._equal(None, None).copy()
        for condition in conditions:
            equal = self._equal(condition.key, condition.value)
            mask &= equal if condition.op == "eq" else ~equal
        return mask

    def _equal(self, key: str | None, value: str | None) -> np.ndarray:
        """Positions whose metadata has `key` == `value` (both None: the live positions),
        computed once per (key, value) until the next write."""
        cached = self._masks.get((key, value))
        if cached is None:
            probe = [eq(key, value)] if key is not None else []
            cached = np.fromiter(
                (m is not None and matches(probe, m) for m in self._meta),
                dtype=bool,
                count=len(self._meta),
            )
            self._masks[(key, value)] = cached
        return cached

    def _search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, *, everything: bool
    ) -> list[VectorHit]:
        if self.kind == "hnsw":
            # A filter can exclude the whole neighbourhood of the query (another neckline than
            # the query's excludes its own product and its look-alikes): the walk needs a
            # wider beam to get out of it.
            ef = max(self.ef_search if everything else self.filtered_ef_search, k)
            params = faiss.SearchParametersHNSW(efSearch=ef)
        else:
            params = faiss.SearchParameters()
        if not everything:
            bitmap = np.packbits(allowed, bitorder="little")
            selector = faiss.IDSelectorBitmap(bitmap)
            params.sel = selector
        scores, positions = self._index.search(q, k, params=params)
        pairs = zip(scores[0], positions[0], strict=True)
        return [self._hit(int(p), float(s)) for s, p in pairs if p >= 0]

    def _exact(self, q: np.ndarray, k: int, allowed: np.ndarray) -> list[VectorHit]:
        positions = np.flatnonzero(allowed)
        # einsum, not BLAS: a gemv on a fresh gathered block pays BLAS threads spinning up,
        # tens of times the arithmetic on a busy machine.
        scores = np.einsum("ij,j->i", np.take(self._vectors, positions, axis=0), q[0])
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self._hit(int(positions[t]), float(scores[t])) for t in top]

    def _hit(self, pos: int, score: float) -> VectorHit:
        return VectorHit(self._ids[pos], score, dict(self._meta[pos]))
