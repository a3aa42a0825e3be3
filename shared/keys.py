"""The object key layout, in one place. Buckets: catalog (uploads) and artifacts (the rest)."""

from __future__ import annotations

from pathlib import PurePosixPath

CATALOG_PREFIX = "catalog/"
MANIFEST_PREFIX = "manifests/infer/"
MODELS_PREFIX = "models/"
SNAPSHOT_PREFIX = "snapshots/labels/"
EMBEDDINGS_PREFIX = "embeddings/"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def catalog_key(product_id: str, filename: str) -> str:
    """`catalog/<product_id>/<filename>`: where an uploaded photo lives."""
    return f"{CATALOG_PREFIX}{product_id}/{PurePosixPath(filename).name}"


def is_catalog_image_key(key: str) -> bool:
    return key.startswith(CATALOG_PREFIX) and key.lower().endswith(IMAGE_SUFFIXES)


def manifest_key(manifest_id: str) -> str:
    return f"{MANIFEST_PREFIX}{manifest_id}.jsonl"


def model_prefix(kind: str, version: str) -> str:
    return f"{MODELS_PREFIX}{kind}/{version}/"


def current_model_key(kind: str) -> str:
    """`models/<kind>/current.json` points at the promoted version."""
    return f"{MODELS_PREFIX}{kind}/current.json"


def snapshot_key(snapshot_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}{snapshot_id}.jsonl"


def embedding_key(model_version: str, image_id: str) -> str:
    return f"{EMBEDDINGS_PREFIX}{model_version}/{image_id}.npy"


# Similarity: one embedding space (vector index) per embedder kind. The dimensions are fixed
# per kind because an S3 Vectors index is created with its dimension (infra reads these):
# the supervised embedder's projection, and the pooled features of the default facet backbone
# (resnet18). A facet model on another backbone needs an unsupervised index of its width.
EMBEDDING_KINDS = ("supervised", "unsupervised")
EMBEDDING_DIMENSIONS = {"supervised": 128, "unsupervised": 512}
VECTOR_INDEX_PREFIX = "indexes/vectors/"


def vector_index_key(kind: str) -> str:
    """`indexes/vectors/<kind>.npz`: the local faiss index of one embedder kind (artifacts)."""
    return f"{VECTOR_INDEX_PREFIX}{kind}.npz"


def vector_index_name(kind: str) -> str:
    """The S3 Vectors index of one embedder kind, in the deployment's vector bucket."""
    return f"similarity-{kind}"
