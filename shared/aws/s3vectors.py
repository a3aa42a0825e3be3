"""A `VectorIndex` on one Amazon S3 Vectors index (cosine distance, float32).

The client is injectable and created on first use. Requests stay within the API's limits (the
botocore model says so, and `Stubber` checks it in the tests): PutVectors and DeleteVectors take
at most 500 keys a call, GetVectors 100. Metadata values are strings and every key is
filterable (product id, split, the predicted label of each facet, the embedder version).

A filtered query asks for the ENHANCED query mode, which applies the filter *before* the vector
search: a filter that matches few vectors still gets its `k` nearest, not the few of a
post-filtered top `k`. Results come back in pages (`nextToken`) when `k` exceeds a page.
Scores are cosine similarities: 1 - the cosine distance S3 Vectors reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from shared.errors import ConfigurationError, ObjectStoreError
from shared.ports import StoredVector, VectorHit, VectorIndex
from shared.vectors import Condition, normalized_rows, to_s3vectors

PUT_BATCH = 500  # PutVectorsInputList max
DELETE_BATCH = 500  # DeleteVectorsInputList max
GET_BATCH = 100  # GetVectorsInputList max
LIST_PAGE = 1000  # ListVectorsMaxResults max


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class S3VectorsIndex(VectorIndex):
    """The index `index_name` of the vector bucket `bucket`."""

    def __init__(
        self, bucket: str, index_name: str, *, dimension: int | None = None, client: Any = None
    ):
        self.bucket, self.index_name, self.dimension = bucket, index_name, dimension
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("s3vectors", config=Config(retries={"mode": "standard"}))
        return self._client

    def _call(self, operation: str, **params: Any) -> dict:
        from botocore.exceptions import ClientError

        try:
            return getattr(self.client, operation)(
                vectorBucketName=self.bucket, indexName=self.index_name, **params
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            where = f"S3 Vectors index {self.index_name} in bucket {self.bucket}"
            if code in ("NotFoundException", "NoSuchVectorBucket", "NoSuchIndex"):
                raise ConfigurationError(
                    f"{where} does not exist: deploy the stack (cdk deploy) or set "
                    "DRESSVISION_VECTOR_BUCKET to the bucket it created"
                ) from exc
            if code == "ValidationException":
                raise ValueError(f"{where} refused {operation}: {exc}") from exc
            raise ObjectStoreError(f"{where}: {operation} failed: {exc}") from exc

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
        rows = normalized_rows(vectors, self.dimension)
        last = {image_id: row for row, image_id in enumerate(ids)}  # last one wins
        items = [
            {
                "key": image_id,
                "data": {"float32": [float(v) for v in rows[row]]},
                "metadata": {k: str(v) for k, v in metadata[row].items()},
            }
            for image_id, row in last.items()
        ]
        for batch in _batches(items, PUT_BATCH):
            self._call("put_vectors", vectors=list(batch))

    def delete(self, ids: Sequence[str]) -> None:
        unique = list(dict.fromkeys(ids))
        for batch in _batches(unique, DELETE_BATCH):
            self._call("delete_vectors", keys=list(batch))

    def get(self, ids: Sequence[str]) -> dict[str, StoredVector]:
        found: dict[str, StoredVector] = {}
        for batch in _batches(list(dict.fromkeys(ids)), GET_BATCH):
            response = self._call(
                "get_vectors", keys=list(batch), returnData=True, returnMetadata=True
            )
            for item in response.get("vectors", []):
                vector = tuple(float(v) for v in item.get("data", {}).get("float32", []))
                found[item["key"]] = StoredVector(
                    item["key"], vector, {k: str(v) for k, v in item.get("metadata", {}).items()}
                )
        return found

    def ids(self) -> Iterator[str]:
        token: str | None = None
        while True:
            extra = {"nextToken": token} if token else {}
            response = self._call("list_vectors", maxResults=LIST_PAGE, **extra)
            for item in response.get("vectors", []):
                yield item["key"]
            token = response.get("nextToken")
            if not token:
                return

    def query(
        self, vector: Sequence[float], k: int, filter: Sequence[Condition] = ()
    ) -> list[VectorHit]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        query = normalized_rows(vector, self.dimension)[0]
        params: dict[str, Any] = {
            "topK": k,
            "queryVector": {"float32": [float(v) for v in query]},
            "returnMetadata": True,
            "returnDistance": True,
        }
        document = to_s3vectors(filter)
        if document is not None:
            params["filter"] = document
            params["queryMode"] = "ENHANCED"  # filter first, then search: k results when k match
        hits: list[VectorHit] = []
        while True:
            response = self._call("query_vectors", **params)
            if response.get("distanceMetric", "cosine") != "cosine":
                raise ConfigurationError(
                    f"S3 Vectors index {self.index_name} uses {response['distanceMetric']} "
                    "distance; similarity needs a cosine index"
                )
            for item in response.get("vectors", []):
                metadata = {key: str(v) for key, v in item.get("metadata", {}).items()}
                hits.append(VectorHit(item["key"], 1.0 - float(item["distance"]), metadata))
            token = response.get("nextToken")
            if not token or len(hits) >= k:
                return hits[:k]
            params["nextToken"] = token
