"""Typed stage settings, read once from CDK context (`cdk.json`, `cdk.context.json`, `-c k=v`).

Every key is `dressvision:<camelCase field>`; a missing key takes the default below. Values given
on the command line arrive as strings (`-c dressvision:spot=false`,
`-c dressvision:gpuInstanceTypes=g5.xlarge,g6.xlarge`), values in `cdk.json` as JSON: both are
accepted. A bad value fails the synth with a message naming the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, Literal

CONTEXT_PREFIX = "dressvision:"
Workforce = Literal["mturk", "a2i", "internal"]
WORKFORCES: tuple[str, ...] = ("mturk", "a2i", "internal")
MAX_ASSIGNMENTS_PER_HIT = 9  # shared/workforce/mturk.py: from 10 answers MTurk's fee doubles

_STAGE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")  # part of bucket names: short, lower case
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# What StartHumanLoop accepts (its FlowDefinitionArn pattern), with the parts named.
_FLOW_DEFINITION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sagemaker:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"flow-definition/(?P<name>[a-z0-9](-*[a-z0-9]){0,62})$"
)
_GPU_FAMILIES = ("g4dn", "g5", "g5g", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e")


@dataclass(frozen=True, kw_only=True)
class StageSettings:
    """One deployment stage. Fields become context keys `dressvision:<camelCase name>`."""

    stage: str = "dev"
    # GPU job fleet (AWS Batch). Every type must fit one job: job_vcpus and job_memory_gib.
    gpu_instance_types: tuple[str, ...] = ("g5.xlarge", "g6.xlarge")
    spot: bool = True  # a Spot compute environment first, on-demand as the fallback
    max_vcpus: int = 16  # per compute environment: 4 x xlarge instances at most
    job_vcpus: int = 4
    job_memory_gib: int = 14  # an xlarge has 16 GiB; the ECS agent and the OS keep the rest
    shared_memory_gib: int = 4  # /dev/shm for the PyTorch data loader workers
    infer_timeout_hours: int = 2
    train_timeout_hours: int = 12
    # Model settings, in the environment of the Lambdas that submit jobs and of the jobs:
    # DRESSVISION_INFER_BATCH_SIZE (the infer job's --batch-size), DRESSVISION_IMAGE_SIZE and
    # DRESSVISION_TRAIN_BATCH_SIZE (the training recipe's, as `dressvision train` reads them).
    infer_batch_size: int = 64  # images per forward pass
    image_size: int = 128  # training input size (the recipe's); inference uses the model's own
    train_batch_size: int = 32  # images per training step (the recipe's)
    # The training recipe's starting weights (DRESSVISION_TRAIN_WEIGHTS): torchvision's named
    # ImageNet weights, baked into the job image (the jobs' VPC has no internet route); "" for
    # random init, as on a laptop. Real catalogs need pretrained weights (README, "The models").
    train_weights: str = "IMAGENET1K_V1"
    infer_shard_size: int = 5_000  # images per array-job child (DRESSVISION_INFER_SHARD_SIZE)
    # Inference windows: every infer_window_minutes the pending uploads are submitted as array
    # jobs of at most infer_window_images images (DRESSVISION_INFER_WINDOW_*).
    infer_window_images: int = 50_000
    infer_window_minutes: int = 5
    # A fresh stack's first training (locator included) is submitted by ingest once this many
    # labeled images are registered and no facet model is current; 0: train by hand.
    first_train_min_images: int = 300
    # Ingest Lambda.
    ingest_batch_size: int = 50
    ingest_max_batching_seconds: int = 20
    ingest_max_concurrency: int = 10  # caps DynamoDB writes and Batch submissions per second
    # Humans in the loop and retraining: the review and collect Lambdas.
    workforce: Workforce = "internal"
    budget_cap_usd: float = 50.0  # MTurk rewards + fees of all published HITs
    retrain_threshold: int = 100  # changed labels before a retrain is submitted
    # Rounds: after each retrain the review runs again on the new model, until a round changed
    # fewer labels than this (DRESSVISION_LOOP_MIN_CHANGES): the loop has converged.
    loop_min_changes: int = 10
    # Each of the loop's retrainings leaves one of this many folds of train products out, a
    # different one each round, so that its model judges those labels out of sample
    # (DRESSVISION_LOOP_HOLDOUT_FOLDS); 0: train on all of them.
    loop_holdout_folds: int = 0
    # The review also asks about a label the model gives less than this share of what it
    # usually gives a label of that class (DRESSVISION_REVIEW_DOUBT); 0: only labels whose
    # most likely class is another.
    review_doubt: float = 0.85
    max_assignments: int = 2  # answers asked per relabel task when it is published
    ask_step: int = 1  # more answers asked at a time while a task is undecided
    mturk_production: bool = False  # False: the MTurk sandbox (no money); True: real workers
    # Workers estimated less accurate than this are kept out of new tasks (MTurk: a
    # qualification; A2I: reported by `dressvision workers`). 0: nobody is.
    min_worker_accuracy: float = 0.0
    # The A2I flow definition (created outside this stack, same account and region), for a2i.
    a2i_flow_definition_arn: str | None = None
    collect_every_minutes: int = 15  # the fallback schedule of the collect pass
    # Where alarms go. None: the topic exists without subscribers (subscribe later by hand).
    alarm_email: str | None = None

    def __post_init__(self) -> None:
        _check(_STAGE.match(self.stage or "") is not None, "stage", "lower-case letters, digits, -")
        _check(len(self.gpu_instance_types) > 0, "gpuInstanceTypes", "at least one type")
        for name in self.gpu_instance_types:
            family = name.split(".", 1)[0]
            _check(family in _GPU_FAMILIES, "gpuInstanceTypes", f"GPU types only, got {name}")
        _check(self.max_vcpus >= self.job_vcpus, "maxVcpus", "at least jobVcpus")
        _check(self.job_vcpus >= 1, "jobVcpus", "at least 1")
        _check(
            0 < self.shared_memory_gib < self.job_memory_gib,
            "sharedMemoryGib",
            "more than 0 and less than jobMemoryGib",
        )
        for name in (
            "infer_batch_size",
            "image_size",
            "train_batch_size",
            "infer_shard_size",
            "infer_window_images",
            "infer_window_minutes",
            "ingest_batch_size",
        ):
            _check(getattr(self, name) >= 1, _camel(name), "at least 1")
        _check(self.first_train_min_images >= 0, "firstTrainMinImages", "0 (off) or more")
        _check(
            1 <= self.ingest_max_batching_seconds <= 300,
            "ingestMaxBatchingSeconds",
            "between 1 and 300 (SQS batches over 10 messages need a window)",
        )
        _check(
            2 <= self.ingest_max_concurrency <= 1000,
            "ingestMaxConcurrency",
            "between 2 and 1000 (the SQS event source limit)",
        )
        self._check_workforce()
        _check(self.budget_cap_usd >= 0, "budgetCapUsd", "not negative")
        _check(self.retrain_threshold >= 1, "retrainThreshold", "at least 1")
        _check(self.loop_min_changes >= 1, "loopMinChanges", "at least 1")
        _check(
            self.loop_holdout_folds == 0 or 2 <= self.loop_holdout_folds <= 10,
            "loopHoldoutFolds",
            "0 (off) or between 2 and 10",
        )
        _check(0.0 <= self.review_doubt <= 1.0, "reviewDoubt", "between 0 (off) and 1")
        _check(
            0.0 <= self.min_worker_accuracy < 1.0,
            "minWorkerAccuracy",
            "in [0, 1), e.g. 0.5 (0 keeps everybody)",
        )
        _check(
            1 <= self.max_assignments <= MAX_ASSIGNMENTS_PER_HIT,
            "maxAssignments",
            f"between 1 and {MAX_ASSIGNMENTS_PER_HIT} (MTurk's fee doubles from 10 answers)",
        )
        _check(
            1 <= self.ask_step <= MAX_ASSIGNMENTS_PER_HIT - 1,
            "askStep",
            f"between 1 and {MAX_ASSIGNMENTS_PER_HIT - 1}",
        )
        _check(
            5 <= self.collect_every_minutes <= 360,
            "collectEveryMinutes",
            "between 5 and 360 (a scheduled pass expires after 6 hours at most)",
        )
        if self.alarm_email is not None:
            _check(_EMAIL.match(self.alarm_email) is not None, "alarmEmail", "an e-mail address")

    def _check_workforce(self) -> None:
        if self.workforce == "simulated":
            raise ValueError(
                f"context {CONTEXT_PREFIX}workforce=simulated is for local benchmarks only (its "
                "workers answer from a synthetic catalog's labels_true.csv); deploy with "
                "internal, a2i or mturk"
            )
        _check(self.workforce in WORKFORCES, "workforce", f"one of {', '.join(WORKFORCES)}")
        arn = self.a2i_flow_definition_arn
        if arn is not None:
            _check(
                _FLOW_DEFINITION_ARN.match(arn) is not None,
                "a2iFlowDefinitionArn",
                "arn:aws:sagemaker:<region>:<account>:flow-definition/<name>",
            )
        _check(
            self.workforce != "a2i" or arn is not None,
            "a2iFlowDefinitionArn",
            "set when workforce is a2i: the ARN of the flow definition whose human loops "
            "answer the relabel tasks",
        )

    @property
    def a2i_flow_definition(self) -> dict[str, str] | None:
        """The parts of `a2i_flow_definition_arn` (partition, region, account, name)."""
        if self.a2i_flow_definition_arn is None:
            return None
        match = _FLOW_DEFINITION_ARN.match(self.a2i_flow_definition_arn)
        if match is None:  # unreachable: __post_init__ checked it
            raise ValueError(f"not a flow definition ARN: {self.a2i_flow_definition_arn}")
        return {k: match.group(k) for k in ("partition", "region", "account", "name")}

    @property
    def stack_name(self) -> str:
        return f"Dressvision-{self.stage}"

    @property
    def name_prefix(self) -> str:
        """Prefix of the few physical names we set (buckets, job definitions)."""
        return f"dressvision-{self.stage}"

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> StageSettings:
        """Settings from CDK context (`app.node.get_all_context()`). An unknown
        `dressvision:` key is an error: a typo must not silently deploy the default."""
        known = cls.context_keys()
        unknown = sorted(k for k in context if k.startswith(CONTEXT_PREFIX) and k not in known)
        if unknown:
            raise ValueError(
                f"unknown context keys {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = context.get(CONTEXT_PREFIX + _camel(f.name))
            if raw is None:
                continue
            default = f.default if f.default is not MISSING else None
            values[f.name] = _PARSERS.get(type(default), _parse_str)(_camel(f.name), raw)
        return cls(**values)

    @classmethod
    def context_keys(cls) -> dict[str, Any]:
        """Every context key with its default (the README's table, and a test, use it)."""
        return {CONTEXT_PREFIX + _camel(f.name): f.default for f in fields(cls)}


def _check(ok: bool, key: str, expected: str) -> None:
    if not ok:
        raise ValueError(f"context {CONTEXT_PREFIX}{key} must be {expected}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _parse_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"context {CONTEXT_PREFIX}{key} must be true or false, got {raw!r}")


def _parse_int(key: str, raw: Any) -> int:
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {CONTEXT_PREFIX}{key} must be an integer, got {raw!r}") from None


def _parse_float(key: str, raw: Any) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        return float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"context {CONTEXT_PREFIX}{key} must be a number, got {raw!r}") from None


def _parse_tuple(key: str, raw: Any) -> tuple[str, ...]:
    """A JSON list, or a comma-separated string (what `-c key=a,b` gives)."""
    if isinstance(raw, str) and raw.strip().startswith("["):
        raw = json.loads(raw)
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"context {CONTEXT_PREFIX}{key} must be a list of strings, got {raw!r}")
    return tuple(i.strip() for i in items if i.strip())


def _parse_str(key: str, raw: Any) -> str | None:
    if not isinstance(raw, str):
        raise ValueError(f"context {CONTEXT_PREFIX}{key} must be a string, got {raw!r}")
    return raw.strip() or None  # an empty value means "not set" (alarmEmail="")


_PARSERS: dict[type, Callable[[str, Any], Any]] = {
    bool: _parse_bool,
    int: _parse_int,
    float: _parse_float,
    tuple: _parse_tuple,
}
