"""The storage layout, in one place: object keys (buckets: catalog for uploads, artifacts for
the rest) and the key attribute names of the DynamoDB tables.

Names and pure functions only (no boto3, no torch): the code that reads and writes objects,
the adapters and `infra/` (which grants each role its prefixes and creates the tables) all
build keys here, so they cannot disagree.
"""

from __future__ import annotations

from pathlib import PurePosixPath

# -- catalog bucket -------------------------------------------------------------------------
CATALOG_PREFIX = "catalog/"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")

# -- artifacts bucket -----------------------------------------------------------------------
MANIFEST_PREFIX = "manifests/infer/"
# Uploads waiting for the next inference window: one piece per ingest batch (ingest writes,
# the flush reads and deletes).
PENDING_INFERENCE_PREFIX = "manifests/pending/"
MODELS_PREFIX = "models/"
SNAPSHOT_PREFIX = "snapshots/labels/"
EMBEDDINGS_PREFIX = "embeddings/"
CHECKPOINTS_PREFIX = "checkpoints/"  # training checkpoints: checkpoints/<kind>/<run id>/
CHECKPOINT_FILE = "checkpoint.pt"
FAILED_JOBS_PREFIX = "jobs/failed/"  # batch_events: one record per failed job
LOOP_PREFIX = "loop/"  # the training loop's own bookkeeping
# collect: when the last retrain was requested (read and rewritten, never deleted).
TRAIN_REQUEST_KEY = f"{LOOP_PREFIX}train-requested.json"
# ingest: the first training of a fresh deployment was submitted (created once, never rewritten
# by another submitter: its creation is the claim).
FIRST_TRAINING_KEY = f"{LOOP_PREFIX}first-training.json"
REINFER_MARKER = "reinfer.json"  # models/facets/<version>/reinfer.json: re-inferred once
# Where the A2I flow definition writes its loops' output (its S3OutputPath must be
# s3://<ArtifactsBucket>/a2i/): collect reads the answers there.
A2I_OUTPUT_PREFIX = "a2i/"


def catalog_key(product_id: str, filename: str) -> str:
    """`catalog/<product_id>/<filename>`: where an uploaded photo lives."""
    return f"{CATALOG_PREFIX}{product_id}/{PurePosixPath(filename).name}"


def is_catalog_image_key(key: str) -> bool:
    return key.startswith(CATALOG_PREFIX) and key.lower().endswith(IMAGE_SUFFIXES)


def manifest_key(manifest_id: str) -> str:
    return f"{MANIFEST_PREFIX}{manifest_id}.jsonl"


def pending_inference_key(piece_id: str) -> str:
    return f"{PENDING_INFERENCE_PREFIX}{piece_id}.jsonl"


def manifest_job_key(manifest_id: str) -> str:
    """Which job a manifest was submitted as (so a redelivered batch submits it once)."""
    return f"{MANIFEST_PREFIX}{manifest_id}.job.json"


def models_prefix(kind: str) -> str:
    """`models/<kind>/`: every version of one model kind, and its current.json."""
    return f"{MODELS_PREFIX}{kind}/"


def model_prefix(kind: str, version: str) -> str:
    return f"{models_prefix(kind)}{version}/"


def current_model_key(kind: str) -> str:
    """`models/<kind>/current.json` points at the promoted version."""
    return f"{models_prefix(kind)}current.json"


REVIEW_THRESHOLDS = "review-thresholds.json"


def review_thresholds_key(version: str) -> str:
    """`models/facets/<version>/review-thresholds.json`: the per-class thresholds of the
    suspicious-label ranking on this model's out-of-sample predictions (the round's full
    review writes them; the reviews after an ingest's inference rank their few images with
    them)."""
    return model_prefix("facets", version) + REVIEW_THRESHOLDS


def review_thresholds_pattern() -> str:
    """Every model's review thresholds, as an IAM resource pattern (`*` for the version)."""
    return f"{MODELS_PREFIX}facets/*/{REVIEW_THRESHOLDS}"


def reinfer_marker_key(kind: str, version: str, embedder: str | None = None) -> str:
    """`models/<kind>/<version>/reinfer.json`: the catalog was re-inferred with this version;
    `.../reinfer-similarity-<embedder>.json` when a similarity embedder is current too, so a
    newly promoted embedder re-embeds the catalog under the same facet model."""
    if embedder is None:
        return model_prefix(kind, version) + REINFER_MARKER
    return model_prefix(kind, version) + f"reinfer-similarity-{embedder}.json"


def reinfer_markers_pattern() -> str:
    """Every re-inference marker, as an IAM resource pattern (`*` for kind and versions)."""
    return f"{MODELS_PREFIX}*/reinfer*.json"


def snapshot_key(snapshot_id: str) -> str:
    return f"{SNAPSHOT_PREFIX}{snapshot_id}.jsonl"


def snapshot_id_of(key: str) -> str:
    """The id of a snapshot key (`snapshots/labels/<id>.jsonl` -> `<id>`)."""
    return key[len(SNAPSHOT_PREFIX) :].removesuffix(".jsonl")


def embedding_key(model_version: str, image_id: str) -> str:
    return f"{EMBEDDINGS_PREFIX}{model_version}/{image_id}.npy"


def checkpoints_prefix(kind: str) -> str:
    return f"{CHECKPOINTS_PREFIX}{kind}/"


def checkpoint_key(kind: str, run_id: str) -> str:
    """`checkpoints/<kind>/<run id>/checkpoint.pt`: a training run's latest checkpoint."""
    return f"{checkpoints_prefix(kind)}{run_id}/{CHECKPOINT_FILE}"


def failed_job_key(job_id: str) -> str:
    return f"{FAILED_JOBS_PREFIX}{job_id}.json"


# -- DynamoDB tables: key attributes and index names (the adapters' schema, infra's tables) ----
# Labels: partition image_id, sort sk ("LABEL" for the record, "EVENT#..." for its events).
LABELS_PARTITION_KEY = "image_id"
LABELS_SORT_KEY = "sk"
# Predictions: partition image_id, sort model_version; GSI by_model the other way round.
PREDICTIONS_PARTITION_KEY = "image_id"
PREDICTIONS_SORT_KEY = "model_version"
PREDICTIONS_BY_MODEL_INDEX = "by_model"
# Tasks: partition task_id; GSIs by_status (partition status) and by_external_id (sparse).
TASKS_PARTITION_KEY = "task_id"
TASKS_STATUS = "status"
TASKS_EXTERNAL_ID = "external_id"
TASKS_BY_STATUS_INDEX = "by_status"
TASKS_BY_EXTERNAL_ID_INDEX = "by_external_id"
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
