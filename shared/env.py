"""Environment variable names (the contract between infra, local and the code) and the typed
settings read from them once per process.

Both composition roots set these: `infra/` on Lambdas and Batch job definitions, `local/` on the
one-machine runtime and its job subprocesses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

# Which adapters a process composes: "aws" (DynamoDB, S3, Batch) or "local" (SQLite, files,
# subprocesses). Read only by the composition function in shared/backends.py.
BACKEND = "DRESSVISION_BACKEND"
HOME = "DRESSVISION_HOME"  # local state folder
TAXONOMY_PATH = "DRESSVISION_TAXONOMY"

CATALOG_BUCKET = "DRESSVISION_CATALOG_BUCKET"  # uploaded photos (catalog/ prefix)
ARTIFACTS_BUCKET = "DRESSVISION_ARTIFACTS_BUCKET"  # manifests, models, snapshots, embeddings
LABELS_TABLE = "DRESSVISION_LABELS_TABLE"
PREDICTIONS_TABLE = "DRESSVISION_PREDICTIONS_TABLE"
TASKS_TABLE = "DRESSVISION_TASKS_TABLE"
VECTOR_BUCKET = "DRESSVISION_VECTOR_BUCKET"  # S3 Vectors bucket (similarity indexes)
# Local faiss index: exact search up to this many vectors, HNSW above.
VECTOR_HNSW_ABOVE = "DRESSVISION_VECTOR_HNSW_ABOVE"
JOB_QUEUE = "DRESSVISION_JOB_QUEUE"
REVIEW_QUEUE_URL = "DRESSVISION_REVIEW_QUEUE_URL"  # batch_events -> review
RETRAIN_THRESHOLD = "DRESSVISION_RETRAIN_THRESHOLD"  # changed labels that trigger training
# The relabel loop stops when a round (review -> answers -> retrain) changed fewer labels.
LOOP_MIN_CHANGES = "DRESSVISION_LOOP_MIN_CHANGES"
# The loop's retrainings leave one of this many folds of train products out, a different one
# each round, so that the new model judges those labels out of sample (0: off).
LOOP_HOLDOUT_FOLDS = "DRESSVISION_LOOP_HOLDOUT_FOLDS"
# The review also asks about a label the model gives less than this share of what it usually
# gives a label of its class, though its most likely class is the label (0: only those whose
# most likely class is another).
REVIEW_DOUBT = "DRESSVISION_REVIEW_DOUBT"
# Job definition per job name: DRESSVISION_JOB_DEFINITION_INFER, ..._TRAIN.
JOB_DEFINITION_PREFIX = "DRESSVISION_JOB_DEFINITION_"

TEST_FRACTION = "DRESSVISION_TEST_FRACTION"  # share of products in the test split
SPLIT_SALT = "DRESSVISION_SPLIT_SALT"  # changes every split: set once per catalog, never after
MAX_IMAGE_BYTES = "DRESSVISION_MAX_IMAGE_BYTES"
MAX_IMAGE_PIXELS = "DRESSVISION_MAX_IMAGE_PIXELS"
INFER_SHARD_SIZE = "DRESSVISION_INFER_SHARD_SIZE"  # images per array-job child
INFER_BATCH_SIZE = "DRESSVISION_INFER_BATCH_SIZE"  # images per forward pass (infer job)
# Inference windows: uploads wait in a pending list; every WINDOW_SECONDS the flush submits
# them as array jobs of at most WINDOW_IMAGES images each (see shared/inference.py).
INFER_WINDOW_IMAGES = "DRESSVISION_INFER_WINDOW_IMAGES"
INFER_WINDOW_SECONDS = "DRESSVISION_INFER_WINDOW_SECONDS"
# The training recipe's settings (shared/recipe.py): `dressvision train` and every training a
# handler submits use them, unless an option says otherwise.
IMAGE_SIZE = "DRESSVISION_IMAGE_SIZE"  # training input pixels; inference uses the model's own
TRAIN_BATCH_SIZE = "DRESSVISION_TRAIN_BATCH_SIZE"  # images per training step
# The training recipe's starting weights: a torchvision weights name (IMAGENET1K_V1) or a file.
TRAIN_WEIGHTS = "DRESSVISION_TRAIN_WEIGHTS"
# Labeled images a fresh deployment waits for before ingest submits its first training by itself
# (locator included); 0 turns that off.
FIRST_TRAIN_MIN_IMAGES = "DRESSVISION_FIRST_TRAIN_MIN_IMAGES"

# Relabel tasks: which Workforce answers them ("internal", "simulated", "mturk", "a2i") and how.
WORKFORCE = "DRESSVISION_WORKFORCE"
MAX_ASSIGNMENTS = "DRESSVISION_MAX_ASSIGNMENTS"  # answers asked per task at publish time
ASK_STEP = "DRESSVISION_ASK_STEP"  # answers asked at a time while a task is undecided
MTURK_PRODUCTION = "DRESSVISION_MTURK_PRODUCTION"  # "true" for real money; sandbox otherwise
MTURK_REWARD_USD = "DRESSVISION_MTURK_REWARD_USD"  # per assignment, before MTurk's fee
MTURK_BUDGET_USD = "DRESSVISION_MTURK_BUDGET_USD"  # cap on rewards + fees of all published HITs
MTURK_NOTIFICATION_QUEUE_URL = "DRESSVISION_MTURK_NOTIFICATION_QUEUE_URL"  # SQS for answers
A2I_FLOW_DEFINITION_ARN = "DRESSVISION_A2I_FLOW_DEFINITION_ARN"
# Workers whose estimated accuracy (Dawid-Skene, once they answered enough) is below this are
# kept out of new tasks (MTurk: a qualification; A2I and staff: reported). 0 = nobody is.
MIN_WORKER_ACCURACY = "DRESSVISION_MIN_WORKER_ACCURACY"
SIMULATED_SEED = "DRESSVISION_SIMULATED_SEED"  # simulated workers: same seed, same answers
SIMULATED_TRUTH = "DRESSVISION_SIMULATED_TRUTH"  # labels_true.csv the simulated workers see
# Bad input and faults (issue 11): an open relabel task unanswered this long goes to staff.
TASK_DEADLINE_HOURS = "DRESSVISION_TASK_DEADLINE_HOURS"

# CloudWatch metrics of the Lambdas (embedded metric format, in their logs): the namespace, the
# one dimension, and the metric names (infra's alarms refer to them).
METRICS_NAMESPACE = "dressvision"
METRICS_SERVICE = "dressvision"  # the "service" dimension of every metric
METRIC_IMAGES_INGESTED = "ImagesIngested"  # registered or updated, valid
METRIC_IMAGES_INVALID = "ImagesInvalid"
METRIC_JOBS_SUBMITTED = "JobsSubmitted"
METRIC_TASKS_PUBLISHED = "TasksPublished"
METRIC_ANSWERS_RECEIVED = "AnswersReceived"
METRIC_LABELS_CHANGED = "LabelsChanged"
METRIC_BUDGET_SPENT_USD = "BudgetSpentUSD"  # by this invocation (MTurk rewards and fees)
METRIC_BUDGET_LEFT_USD = "BudgetLeftUSD"  # of the cap, after this invocation

# The web app (web/): where it is reached (workers' image links point there when set), the
# Secrets Manager secret that signs its sessions and image links (AWS; locally a key file under
# the home folder), and the Cognito hosted UI staff sign in through (AWS).
WEB_BASE_URL = "DRESSVISION_WEB_BASE_URL"
WEB_SECRET_ARN = "DRESSVISION_WEB_SECRET_ARN"
# https://<prefix>.auth.<region>.amazoncognito.com
WEB_COGNITO_DOMAIN = "DRESSVISION_WEB_COGNITO_DOMAIN"
WEB_COGNITO_CLIENT_ID = "DRESSVISION_WEB_COGNITO_CLIENT_ID"

# Set by AWS Batch on array-job children; set the same way by the local job runner.
BATCH_ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
BATCH_JOB_ID = "AWS_BATCH_JOB_ID"

Backend = Literal["aws", "local"]
WORKFORCES = ("internal", "simulated", "mturk", "a2i")


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _optional_int(environ: Mapping[str, str], name: str) -> int | None:
    """An integer, or None when the variable is unset or empty (meaning: the default)."""
    return None if environ.get(name) in (None, "") else _int(environ, name, 0)


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _decimal(environ: Mapping[str, str], name: str, default: Decimal) -> Decimal:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{name} must be an amount like 0.05, got {raw!r}") from None


def _bool(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Everything a handler or job needs to know about its deployment, read once."""

    backend: Backend = "local"
    home: Path = Path(".dressvision")
    catalog_bucket: str = "catalog"
    artifacts_bucket: str = "artifacts"
    labels_table: str = "Labels"
    predictions_table: str = "Predictions"
    tasks_table: str = "Tasks"
    job_queue: str = "dressvision-gpu"
    job_definitions: Mapping[str, str] = field(default_factory=dict)
    test_fraction: float = 0.2
    split_salt: str = ""
    max_image_bytes: int = 30 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    infer_shard_size: int = 5_000
    infer_batch_size: int = 64
    infer_window_images: int = 50_000  # images per array job (100 children of 500)
    infer_window_seconds: int = 300  # how often the pending uploads are flushed
    # The training recipe's sizes for this deployment; None: the recipe's own (shared/recipe.py).
    image_size: int | None = None
    train_batch_size: int | None = None
    train_weights: str | None = None  # None: random init (the recipe's own default)
    first_train_min_images: int = 0  # off unless set (infra sets it on AWS)
    workforce: str = "internal"
    max_assignments: int = 2  # bench/results/crowd_replay.json: 2, then one at a time
    ask_step: int = 1
    mturk_production: bool = False
    mturk_reward_usd: Decimal = Decimal("0.05")
    mturk_budget_usd: Decimal = Decimal("10.00")
    mturk_notification_queue_url: str = ""
    a2i_flow_definition_arn: str = ""
    simulated_seed: int = 0
    simulated_truth: str = ""
    review_queue_url: str = ""
    retrain_threshold: int = 50
    loop_min_changes: int = 10
    loop_holdout_folds: int = 0
    review_doubt: float = 0.85  # bench/results/review_options.json: 93% of flips asked
    task_deadline_hours: float = 7 * 24.0  # an MTurk HIT's default lifetime
    min_worker_accuracy: float = 0.0
    web_base_url: str = ""
    web_secret_arn: str = ""
    web_cognito_domain: str = ""
    web_cognito_client_id: str = ""
    vector_bucket: str = ""
    vector_hnsw_above: int = 20_000

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"{TEST_FRACTION} must be between 0 and 1, got {self.test_fraction}")
        if self.backend not in ("aws", "local"):
            raise ValueError(f"{BACKEND} must be 'aws' or 'local', got {self.backend!r}")
        if self.workforce not in WORKFORCES:
            raise ValueError(
                f"{WORKFORCE} must be one of {', '.join(WORKFORCES)}, got {self.workforce!r}"
            )
        for name, value in (
            (INFER_SHARD_SIZE, self.infer_shard_size),
            (INFER_BATCH_SIZE, self.infer_batch_size),
            (INFER_WINDOW_IMAGES, self.infer_window_images),
            (INFER_WINDOW_SECONDS, self.infer_window_seconds),
            (IMAGE_SIZE, self.image_size),
            (TRAIN_BATCH_SIZE, self.train_batch_size),
        ):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.first_train_min_images < 0:
            raise ValueError(f"{FIRST_TRAIN_MIN_IMAGES} must be 0 (off) or more")
        if self.max_assignments < 1:
            raise ValueError(f"{MAX_ASSIGNMENTS} must be at least 1, got {self.max_assignments}")
        if self.ask_step < 1:
            raise ValueError(f"{ASK_STEP} must be at least 1, got {self.ask_step}")
        if not 0.0 <= self.min_worker_accuracy < 1.0:
            raise ValueError(
                f"{MIN_WORKER_ACCURACY} must be in [0, 1) (e.g. 0.5; 0 keeps everybody), got "
                f"{self.min_worker_accuracy}"
            )
        if self.mturk_reward_usd <= 0 or self.mturk_budget_usd < 0:
            raise ValueError(f"{MTURK_REWARD_USD} must be > 0 and {MTURK_BUDGET_USD} >= 0")
        if not 0.0 <= self.review_doubt <= 1.0:
            raise ValueError(
                f"{REVIEW_DOUBT} must be a share between 0 (off) and 1, got {self.review_doubt}"
            )
        if not self.task_deadline_hours > 0:
            raise ValueError(
                f"{TASK_DEADLINE_HOURS} must be a positive number of hours, "
                f"got {self.task_deadline_hours}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings. On AWS the resource names are required: a missing one fails here,
        at start-up, rather than as a `None` deep inside a call."""
        env = os.environ if environ is None else environ
        backend = env.get(BACKEND, "local")
        common = dict(
            backend=backend,
            test_fraction=_float(env, TEST_FRACTION, 0.2),
            split_salt=env.get(SPLIT_SALT, ""),
            max_image_bytes=_int(env, MAX_IMAGE_BYTES, cls.max_image_bytes),
            max_image_pixels=_int(env, MAX_IMAGE_PIXELS, cls.max_image_pixels),
            infer_shard_size=_int(env, INFER_SHARD_SIZE, cls.infer_shard_size),
            infer_batch_size=_int(env, INFER_BATCH_SIZE, cls.infer_batch_size),
            infer_window_images=_int(env, INFER_WINDOW_IMAGES, cls.infer_window_images),
            infer_window_seconds=_int(env, INFER_WINDOW_SECONDS, cls.infer_window_seconds),
            image_size=_optional_int(env, IMAGE_SIZE),
            train_batch_size=_optional_int(env, TRAIN_BATCH_SIZE),
            train_weights=env.get(TRAIN_WEIGHTS) or None,
            first_train_min_images=_int(env, FIRST_TRAIN_MIN_IMAGES, cls.first_train_min_images),
            workforce=env.get(WORKFORCE, cls.workforce),
            max_assignments=_int(env, MAX_ASSIGNMENTS, cls.max_assignments),
            ask_step=_int(env, ASK_STEP, cls.ask_step),
            mturk_production=_bool(env, MTURK_PRODUCTION),
            mturk_reward_usd=_decimal(env, MTURK_REWARD_USD, cls.mturk_reward_usd),
            mturk_budget_usd=_decimal(env, MTURK_BUDGET_USD, cls.mturk_budget_usd),
            mturk_notification_queue_url=env.get(MTURK_NOTIFICATION_QUEUE_URL, ""),
            a2i_flow_definition_arn=env.get(A2I_FLOW_DEFINITION_ARN, ""),
            simulated_seed=_int(env, SIMULATED_SEED, cls.simulated_seed),
            simulated_truth=env.get(SIMULATED_TRUTH, ""),
            review_queue_url=env.get(REVIEW_QUEUE_URL, ""),
            retrain_threshold=_int(env, RETRAIN_THRESHOLD, cls.retrain_threshold),
            loop_min_changes=_int(env, LOOP_MIN_CHANGES, cls.loop_min_changes),
            loop_holdout_folds=_int(env, LOOP_HOLDOUT_FOLDS, cls.loop_holdout_folds),
            review_doubt=_float(env, REVIEW_DOUBT, cls.review_doubt),
            task_deadline_hours=_float(env, TASK_DEADLINE_HOURS, cls.task_deadline_hours),
            min_worker_accuracy=_float(env, MIN_WORKER_ACCURACY, cls.min_worker_accuracy),
            web_base_url=env.get(WEB_BASE_URL, "").rstrip("/"),
            web_secret_arn=env.get(WEB_SECRET_ARN, ""),
            web_cognito_domain=env.get(WEB_COGNITO_DOMAIN, "").rstrip("/"),
            web_cognito_client_id=env.get(WEB_COGNITO_CLIENT_ID, ""),
            vector_bucket=env.get(VECTOR_BUCKET, ""),
            vector_hnsw_above=_int(env, VECTOR_HNSW_ABOVE, cls.vector_hnsw_above),
            job_definitions={
                k[len(JOB_DEFINITION_PREFIX) :].lower(): v
                for k, v in env.items()
                if k.startswith(JOB_DEFINITION_PREFIX)
            },
        )
        if backend == "aws":
            try:
                return cls(
                    catalog_bucket=env[CATALOG_BUCKET],
                    artifacts_bucket=env[ARTIFACTS_BUCKET],
                    labels_table=env[LABELS_TABLE],
                    predictions_table=env[PREDICTIONS_TABLE],
                    tasks_table=env.get(TASKS_TABLE, cls.tasks_table),
                    job_queue=env[JOB_QUEUE],
                    **common,
                )
            except KeyError as exc:
                raise ValueError(f"missing setting {exc.args[0]} (required on AWS)") from None
        return cls(home=Path(env.get(HOME, ".dressvision")), **common)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process (jobs)."""
        env = {
            BACKEND: self.backend,
            HOME: str(self.home),
            CATALOG_BUCKET: self.catalog_bucket,
            ARTIFACTS_BUCKET: self.artifacts_bucket,
            LABELS_TABLE: self.labels_table,
            PREDICTIONS_TABLE: self.predictions_table,
            TASKS_TABLE: self.tasks_table,
            JOB_QUEUE: self.job_queue,
            TEST_FRACTION: repr(self.test_fraction),
            SPLIT_SALT: self.split_salt,
            MAX_IMAGE_BYTES: str(self.max_image_bytes),
            MAX_IMAGE_PIXELS: str(self.max_image_pixels),
            INFER_SHARD_SIZE: str(self.infer_shard_size),
            INFER_BATCH_SIZE: str(self.infer_batch_size),
            INFER_WINDOW_IMAGES: str(self.infer_window_images),
            INFER_WINDOW_SECONDS: str(self.infer_window_seconds),
            IMAGE_SIZE: "" if self.image_size is None else str(self.image_size),
            TRAIN_BATCH_SIZE: "" if self.train_batch_size is None else str(self.train_batch_size),
            TRAIN_WEIGHTS: self.train_weights or "",
            FIRST_TRAIN_MIN_IMAGES: str(self.first_train_min_images),
            WORKFORCE: self.workforce,
            MAX_ASSIGNMENTS: str(self.max_assignments),
            ASK_STEP: str(self.ask_step),
            MTURK_PRODUCTION: "true" if self.mturk_production else "false",
            MTURK_REWARD_USD: str(self.mturk_reward_usd),
            MTURK_BUDGET_USD: str(self.mturk_budget_usd),
            MTURK_NOTIFICATION_QUEUE_URL: self.mturk_notification_queue_url,
            A2I_FLOW_DEFINITION_ARN: self.a2i_flow_definition_arn,
            SIMULATED_SEED: str(self.simulated_seed),
            SIMULATED_TRUTH: self.simulated_truth,
            REVIEW_QUEUE_URL: self.review_queue_url,
            RETRAIN_THRESHOLD: str(self.retrain_threshold),
            LOOP_MIN_CHANGES: str(self.loop_min_changes),
            LOOP_HOLDOUT_FOLDS: str(self.loop_holdout_folds),
            REVIEW_DOUBT: repr(self.review_doubt),
            TASK_DEADLINE_HOURS: repr(self.task_deadline_hours),
            MIN_WORKER_ACCURACY: repr(self.min_worker_accuracy),
            WEB_BASE_URL: self.web_base_url,
            WEB_SECRET_ARN: self.web_secret_arn,
            WEB_COGNITO_DOMAIN: self.web_cognito_domain,
            WEB_COGNITO_CLIENT_ID: self.web_cognito_client_id,
            VECTOR_BUCKET: self.vector_bucket,
            VECTOR_HNSW_ABOVE: str(self.vector_hnsw_above),
        }
        for name, definition in self.job_definitions.items():
            env[JOB_DEFINITION_PREFIX + name.upper()] = definition
        return env
