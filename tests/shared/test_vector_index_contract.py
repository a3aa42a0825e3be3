"""The VectorIndex contract, run against the local faiss index and Amazon S3 Vectors.

Upsert, get, list and delete run on moto's S3 Vectors. Moto has no QueryVectors, so queries on
S3 Vectors run against botocore's `Stubber`: it checks every request against the real API model
and we check what the adapter sent (the filter, the query mode, topK); its answer is what the
service answers (the exact top k of the vectors matching the filter, by cosine distance), and
both adapters must give the same results from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from shared.aws.s3vectors import PUT_BATCH, S3VectorsIndex
from shared.embedded.faiss_index import FaissVectorIndex, FileLock
from shared.embedded.files import LocalObjectStore
from shared.ports import VectorIndex
from shared.vectors import Condition, eq, matches, ne, to_s3vectors

BUCKET, INDEX, DIM = "dressvision-vectors", "similarity-supervised", 8


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def catalog(n: int = 60, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, str]]]:
    rng = np.random.default_rng(seed)
    ids = [f"p{i // 3}/{i % 3}" for i in range(n)]
    meta = [
        {
            "product_id": f"p{i // 3}",
            "split": "test" if i % 5 == 0 else "train",
            "neckline": ("v-neck", "round", "square")[i % 3],
        }
        for i in range(n)
    ]
    return ids, unit(rng, n), meta


@pytest.fixture(params=["faiss", "s3vectors"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "faiss":
        store = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
        yield FaissVectorIndex(store, "indexes/vectors/supervised.npz")
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        client = boto3.client("s3vectors")
        client.create_vector_bucket(vectorBucketName=BUCKET)
        client.create_index(
            vectorBucketName=BUCKET,
            indexName=INDEX,
            dataType="float32",
            dimension=DIM,
            distanceMetric="cosine",
        )
        yield S3VectorsIndex(BUCKET, INDEX, dimension=DIM, client=client)


# -- upsert, get, list, delete: both adapters, S3 Vectors on moto ---------------------------


def test_upsert_then_get_returns_unit_vectors_and_metadata(index: VectorIndex) -> None:
    ids, vectors, meta = catalog(6)
    index.upsert(ids, (vectors * 3.0).tolist(), meta)  # stored normalized whatever the scale

    got = index.get([ids[0], ids[4], "unknown/0"])

    assert set(got) == {ids[0], ids[4]}
    np.testing.assert_allclose(got[ids[4]].vector, vectors[4], atol=1e-6)
    assert got[ids[4]].metadata == meta[4]
    assert sorted(index.ids()) == sorted(ids)


def test_upsert_replaces_an_existing_id(index: VectorIndex) -> None:
    ids, vectors, meta = catalog(6)
    index.upsert(ids, vectors, meta)

    index.upsert([ids[1]], [vectors[5]], [{**meta[1], "neckline": "halter"}])

    got = index.get([ids[1]])[ids[1]]
    np.testing.assert_allclose(got.vector, vectors[5], atol=1e-6)
    assert got.metadata["neckline"] == "halter"
    assert sorted(index.ids()) == sorted(ids)


def test_delete_removes_only_those_ids(index: VectorIndex) -> None:
    ids, vectors, meta = catalog(6)
    index.upsert(ids, vectors, meta)

    index.delete([ids[0], ids[2], "never/stored"])

    assert sorted(index.ids()) == sorted(ids[1:2] + ids[3:])
    assert index.get([ids[0]]) == {}


def test_refuses_vectors_that_cannot_be_compared(index: VectorIndex) -> None:
    ids, vectors, meta = catalog(2)
    with pytest.raises(ValueError, match="zero vector"):
        index.upsert(ids, [vectors[0], np.zeros(DIM)], meta)
    with pytest.raises(ValueError, match="one each"):
        index.upsert(ids, vectors[:1], meta)
    index.upsert(ids, vectors, meta)
    with pytest.raises(ValueError, match="-d"):
        index.upsert(["x/0"], [np.ones(DIM + 1)], [{}])
    assert sorted(index.ids()) == sorted(ids)


# -- queries: the same answers from both adapters ---------------------------------------------


def reference(
    ids: list[str], vectors: np.ndarray, meta: list[dict], q: np.ndarray, k: int, filt
) -> list[tuple[str, float]]:
    """What either backend must answer: the exact top k of the matching vectors."""
    q = q / np.linalg.norm(q)
    scored = [
        (image_id, float(vectors[i] @ q))
        for i, image_id in enumerate(ids)
        if matches(filt, meta[i])
    ]
    return sorted(scored, key=lambda pair: -pair[1])[:k]


def run_query(
    backend: str, tmp_path: Path, data, q: np.ndarray, k: int, filt: tuple[Condition, ...]
):
    ids, vectors, meta = data
    if backend == "faiss":
        store = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
        index = FaissVectorIndex(store, "indexes/vectors/supervised.npz", hnsw_above=10**9)
        index.upsert(ids, vectors, meta)
        return index.query(q, k, filt)
    client = boto3.client(
        "s3vectors",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    expected = reference(ids, vectors, meta, q, k, filt)
    by_id = dict(zip(ids, meta, strict=True))
    sent = {
        "vectorBucketName": BUCKET,
        "indexName": INDEX,
        "topK": k,
        "queryVector": {"float32": [float(v) for v in q / np.linalg.norm(q)]},
        "returnMetadata": True,
        "returnDistance": True,
    }
    if filt:
        sent |= {"filter": to_s3vectors(filt), "queryMode": "ENHANCED"}
    answer = {
        "distanceMetric": "cosine",
        "vectors": [
            {"key": key, "distance": 1.0 - score, "metadata": by_id[key]} for key, score in expected
        ],
    }
    with Stubber(client) as stubber:
        stubber.add_response("query_vectors", answer, sent)
        hits = S3VectorsIndex(BUCKET, INDEX, dimension=DIM, client=client).query(q, k, filt)
        stubber.assert_no_pending_responses()
    return hits


@pytest.mark.parametrize("backend", ["faiss", "s3vectors"])
@pytest.mark.parametrize(
    "filt",
    [
        (),
        (eq("neckline", "v-neck"),),
        (ne("neckline", "v-neck"), eq("split", "test")),
        (ne("product_id", "p0"), eq("neckline", "square"), eq("split", "train")),
    ],
    ids=["none", "same", "differ+split", "other-products"],
)
def test_query_returns_the_exact_top_k_of_the_matching_vectors(
    backend: str, filt: tuple[Condition, ...], tmp_path: Path
) -> None:
    data = catalog(60)
    ids, vectors, meta = data
    q = vectors[7] + 0.1 * vectors[8]

    hits = run_query(backend, tmp_path, data, q, 5, filt)

    expected = reference(ids, vectors, meta, q, 5, filt)
    assert [h.id for h in hits] == [key for key, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    assert all(matches(filt, h.metadata) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize("backend", ["faiss", "s3vectors"])
def test_query_returns_fewer_only_when_fewer_match(backend: str, tmp_path: Path) -> None:
    data = catalog(12)
    filt = (eq("split", "test"),)  # 3 of 12

    hits = run_query(backend, tmp_path, data, data[1][0], 10, filt)

    assert sorted(h.id for h in hits) == sorted(
        i for i, m in zip(data[0], data[2], strict=True) if m["split"] == "test"
    )


# -- what only one adapter has to show ----------------------------------------------------------


def test_s3vectors_puts_within_the_service_batch_limit(aws_env) -> None:
    n = PUT_BATCH + 7
    with mock_aws():
        client = boto3.client("s3vectors")
        client.create_vector_bucket(vectorBucketName=BUCKET)
        client.create_index(
            vectorBucketName=BUCKET,
            indexName=INDEX,
            dataType="float32",
            dimension=DIM,
            distanceMetric="cosine",
        )
        sizes: list[int] = []
        client.meta.events.register(
            "provide-client-params.s3vectors.PutVectors",
            lambda params, **_: sizes.append(len(params["vectors"])),
        )
        rng = np.random.default_rng(1)
        ids = [f"p{i}/0" for i in range(n)]
        index = S3VectorsIndex(BUCKET, INDEX, dimension=DIM, client=client)
        index.upsert(ids, unit(rng, n), [{"product_id": f"p{i}"} for i in range(n)])

        assert sizes == [PUT_BATCH, 7]
        assert sum(1 for _ in index.ids()) == n


def test_faiss_switches_to_hnsw_above_the_size_and_still_finds_k_filtered(
    tmp_path: Path,
) -> None:
    store = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
    index = FaissVectorIndex(store, "v.npz", hnsw_above=100)
    rng = np.random.default_rng(2)
    n = 400
    ids = [f"p{i}/0" for i in range(n)]
    vectors = unit(rng, n)
    meta = [{"neckline": "rare" if i % 97 == 0 else "common"} for i in range(n)]
    index.upsert(ids[:50], vectors[:50], meta[:50])
    assert index.kind == "flat"
    index.upsert(ids[50:], vectors[50:], meta[50:])
    assert index.kind == "hnsw"

    rare = index.query(vectors[3], 5, (eq("neckline", "rare"),))  # 5 of 400 match
    assert sorted(h.id for h in rare) == sorted(ids[i] for i in range(0, n, 97))
    common = index.query(vectors[3], 10, (eq("neckline", "common"),))
    assert len(common) == 10 and common[0].id == ids[3]


def test_faiss_deletes_and_replacements_survive_a_reload_and_compaction(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "artifacts", name="artifacts")
    lock = FileLock(tmp_path / "v.lock")
    writer = FaissVectorIndex(store, "v.npz", hnsw_above=10**9, lock=lock)
    ids, vectors, meta = catalog(40)
    writer.upsert(ids, vectors, meta)
    writer.delete(ids[:20])  # half of the positions: compacted
    writer.upsert([ids[30]], [vectors[0]], [meta[0]])

    reader = FaissVectorIndex(store, "v.npz")  # another process
    assert sorted(reader.ids()) == sorted(ids[20:])
    top = reader.query(vectors[0], 1)
    assert top[0].id == ids[30] and top[0].score == pytest.approx(1.0, abs=1e-5)

    writer.delete([ids[30]])  # the reader sees the newer version on its next call
    assert ids[30] not in set(reader.ids())
