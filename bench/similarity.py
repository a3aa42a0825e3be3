"""Similarity index benchmark (issue 16, item 7): the local faiss `VectorIndex` at catalog scale.

Vectors shaped like a catalog's, not uniform random ones (on which no approximate index means
anything): the real embeddings of a generated, tagged catalog (a dressvision home whose
similarity index holds them, e.g. after `make demo` or the README's quality run) are the product
centres; each centre is repeated with Gaussian noise of the within-product spread measured on
those same embeddings (the RMS distance of a photo from its product's mean, per dimension), and
renormalized. Metadata are copied from the centre's (predicted facets), so filters select what
they would in the catalog.

For each size (100k and 1M by default): build time and memory of the index (the adapter's
`upsert`, HNSW above `hnsw_above`, saved to the artifacts folder), then `--queries` queries on
one thread (noisy copies of centres, not in the index): latency p50/p99 and recall@10 against
exact search (faiss `IndexFlatIP` on the same vectors), and the exact search's own latency on
the same thread (the ratio shows what the approximate index buys); then the same for two
filtered queries: "another neckline" (`--differ neckline`, most vectors match) and "this one
neckline" (`--differ neckline=LABEL`, a few percent match).

Targets: at 1M vectors <= 1 ms per query with recall@10 >= 0.95. Writes
bench/results/similarity.json.

    .venv/bin/python bench/similarity.py --home .dressvision/demo             # both sizes
    .venv/bin/python bench/similarity.py --home H --sizes 2000 --queries 50   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import faiss
import numpy as np

from local.runtime import LocalRuntime
from shared.embedded.faiss_index import FaissVectorIndex
from shared.embedded.files import LocalObjectStore
from shared.similarity import MODEL_VERSION, PRODUCT_ID
from shared.vectors import eq, ne

OUT = Path(__file__).parent / "results" / "similarity.json"
K = 10


def rss_mb() -> float:
    """Resident memory now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def catalog_embeddings(home: Path, kind: str) -> tuple[np.ndarray, list[dict], float]:
    """The stored embeddings of one kind (the current embedder version only), their metadata,
    and the within-product spread (RMS per dimension of a photo's offset from its product's
    mean)."""
    runtime = LocalRuntime.open(home)
    index = runtime.ports.vectors(kind)
    stored = index.get(list(index.ids()))
    if not stored:
        raise SystemExit(f"no {kind} embeddings in {home}: tag a catalog there first")
    versions = sorted({s.metadata.get(MODEL_VERSION, "") for s in stored.values()})
    latest = [s for s in stored.values() if s.metadata.get(MODEL_VERSION, "") == versions[-1]]
    vectors = np.array([s.vector for s in latest], dtype=np.float32)
    meta = [dict(s.metadata) for s in latest]
    by_product: dict[str, list[int]] = defaultdict(list)
    for row, m in enumerate(meta):
        by_product[m.get(PRODUCT_ID, str(row))].append(row)
    offsets = [
        vectors[rows] - vectors[rows].mean(axis=0) for rows in by_product.values() if len(rows) >= 2
    ]
    spread = float(np.sqrt(np.mean(np.concatenate(offsets) ** 2))) if offsets else 0.02
    return vectors, meta, spread


def synthesize(centres: np.ndarray, meta: list[dict], spread: float, n: int, seed: int):
    """`n` unit vectors: centre i repeated with N(0, spread^2) noise per dimension."""
    rng = np.random.default_rng(seed)
    which = np.arange(n) % len(centres)
    vectors = centres[which] + rng.normal(scale=spread, size=(n, centres.shape[1])).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metadata = [
        {**meta[c], PRODUCT_ID: f"{meta[c].get(PRODUCT_ID, c)}~{i // len(centres)}"}
        for i, c in enumerate(which)
    ]
    return vectors.astype(np.float32), metadata


def timed_queries(index: FaissVectorIndex, queries: np.ndarray, conditions) -> tuple[list, list]:
    latencies, results = [], []
    for q, condition in zip(queries, conditions, strict=True):
        started = time.perf_counter()
        hits = index.query(q, K, condition)
        latencies.append(time.perf_counter() - started)
        results.append([h.id for h in hits])
    return latencies, results


def exact_top(flat, vectors: np.ndarray, ids: list[str], mask: np.ndarray | None, q: np.ndarray):
    """Exact search on one thread: faiss IndexFlatIP over everything, or over the matching
    rows (gathered, then einsum: what the adapter's exact path does)."""
    if mask is None:
        _, top = flat.search(q[None, :], K)
        return [ids[t] for t in top[0]]
    rows = np.flatnonzero(mask)
    scores = np.einsum("ij,j->i", np.take(vectors, rows, axis=0), q)
    top = rows[np.argsort(-scores)[:K]]
    return [ids[t] for t in top]


def mask_share(neckline: np.ndarray, conditions) -> list[float]:
    shares = []
    for condition in conditions:
        if not condition:
            shares.append(1.0)
            continue
        c = condition[0]
        equal = neckline == c.value
        shares.append(float(equal.mean() if c.op == "eq" else 1 - equal.mean()))
    return shares


def summary(latencies: list[float], found: list[list[str]], truth: list[list[str]]) -> dict:
    ms = sorted(1000 * t for t in latencies)
    recall = statistics.mean(
        len(set(f) & set(t)) / max(1, len(t)) for f, t in zip(found, truth, strict=True)
    )
    return {
        "p50_ms": round(ms[len(ms) // 2], 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 4),
        "recall_at_10": round(recall, 4),
    }


def run_size(n: int, centres, meta, spread: float, args: argparse.Namespace, workdir: Path) -> dict:
    vectors, metadata = synthesize(centres, meta, spread, n, seed=n)
    ids = [f"v{i}" for i in range(n)]
    store = LocalObjectStore(workdir / f"artifacts-{n}", name="artifacts")
    before = rss_mb()
    index = FaissVectorIndex(store, "bench.npz", hnsw_above=args.hnsw_above)
    started = time.perf_counter()
    faiss.omp_set_num_threads(args.build_threads)
    index.upsert(ids, vectors, metadata)
    build_s = time.perf_counter() - started
    memory_mb = rss_mb() - before
    faiss.omp_set_num_threads(1)  # queries: one thread

    rng = np.random.default_rng(12345)
    picks = rng.integers(0, len(centres), args.queries)
    queries = centres[picks] + rng.normal(scale=spread, size=(args.queries, centres.shape[1]))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    result = {
        "vectors": n,
        "dim": int(vectors.shape[1]),
        "index": index.kind,
        "build_s": round(build_s, 2),
        "memory_mb": round(memory_mb, 1),
        "stored_mb": round(store.head("bench.npz").size / 2**20, 1),
    }
    necklines = [metadata[p].get("neckline") for p in picks]
    filters = {
        "none": [() for _ in picks],
        "differ_neckline": [(ne("neckline", v),) if v else () for v in necklines],
        "one_neckline": [(eq("neckline", args.rare_label),) for _ in picks],
    }
    neckline = np.array([m.get("neckline") for m in metadata])
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    for name, conditions in filters.items():
        index.query(queries[0], K, conditions[0])  # masks built once, as in a live process
        latencies, found = timed_queries(index, queries, conditions)
        truth, exact_latencies = [], []
        for q, condition in zip(queries, conditions, strict=True):
            mask = None
            if condition:
                c = condition[0]
                mask = (neckline == c.value) if c.op == "eq" else (neckline != c.value)
            started = time.perf_counter()
            truth.append(exact_top(flat, vectors, ids, mask, q))
            exact_latencies.append(time.perf_counter() - started)
        figures = summary(latencies, found, truth)
        exact_ms = 1000 * statistics.median(exact_latencies)
        matching = float(np.mean([len(f) for f in found]))
        share = float(np.mean(mask_share(neckline, conditions)))
        result[name] = {
            "matching_share": round(share, 3),
            **figures,
            "exact_p50_ms": round(exact_ms, 3),
            "speedup_vs_exact": round(exact_ms / max(figures["p50_ms"], 1e-9), 1),
            "mean_results": round(matching, 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a home with a tagged catalog")
    parser.add_argument("--kind", default="supervised", choices=("supervised", "unsupervised"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--hnsw-above", type=int, default=20_000)
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rare-label", default="halter", help="neckline for the rare filter")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    centres, meta, spread = catalog_embeddings(args.home, args.kind)
    report = {
        "command": "python bench/similarity.py " + " ".join(os.sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "faiss": faiss.__version__,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "catalog": {
            "kind": args.kind,
            "embeddings": len(centres),
            "dim": int(centres.shape[1]),
            "within_product_spread": round(spread, 5),
        },
        "targets": {"p50_ms_at_1M": 1.0, "recall_at_10": 0.95},
        "sizes": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            report["sizes"].append(run_size(n, centres, meta, spread, args, Path(tmp)))
            print(json.dumps(report["sizes"][-1]))
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
