"""Train the facet model: `python -m batch_jobs.train [options]` (and `dressvision train`).

One run: export a labels snapshot (or, when resuming, read the run's own), optionally train a
locator on it, prepare the images (located crop when a locator is current), train a ResNet with
one head per facet (class-weighted, masked loss), evaluate on the fixed train/test splits, save
the version in the model registry with its preprocessing config, store per-image predictions,
and promote it if its test macro F1 is not worse than the current model's. What review judges
the train split's labels with is stored beside the model (`oof_version`): the training
dynamics of the images it trained on and, with `--holdout-folds N`, its own predictions for
the products of the one fold it left out (the relabel loop rotates that fold).

A checkpoint (model, optimizer, scheduler, epoch, args, history) goes to the artifacts store
after every epoch under the run id (on AWS Batch: the job id, stable across retries), so a job
killed by a Spot interruption resumes where it stopped when Batch retries it; the locator it
trains first checkpoints the same way (`batch_jobs.checkpoint`), and a retry that finds only
the locator's checkpoint goes on with it, on the same labels snapshot.

After every epoch the kept weights are validated on the test split (loss, macro F1 per facet);
the history is saved with the model as `history.json`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from batch_jobs.backbones import resolve_weights
from batch_jobs.checkpoint import (
    delete_checkpoint,
    load_checkpoint,
    plain_args,
    save_checkpoint,
    serialize,
)
from batch_jobs.crossval import fold_of, out_of_fold_predictions, subset
from batch_jobs.dynamics import TrainingDynamics
from batch_jobs.engine import amp_dtype, evaluate, pick_device, train_one_epoch
from batch_jobs.evaluate import evaluate_records, store_predictions, summary
from batch_jobs.facets.data import (
    PreparedImages,
    TensorImages,
    facet_targets,
    prepare_records,
    train_transform,
)
from batch_jobs.facets.engine import facet_loss
from batch_jobs.facets.loss import UNKNOWN, MaskedWeightedCrossEntropy, balanced_class_weights
from batch_jobs.facets.metrics import facet_report
from batch_jobs.facets.model import FacetNet, backbone_names
from batch_jobs.facets.predictor import KIND, METRIC, FacetTagger, load_locator
from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig
from batch_jobs.models import create_model
from batch_jobs.similarity import train as similarity
from batch_jobs.snapshot import export_snapshot, read_snapshot
from shared.backends import build_ports
from shared.env import BATCH_JOB_ID, Settings
from shared.errors import ConfigurationError, DressvisionError, NotFoundError
from shared.keys import checkpoint_key
from shared.ports import Ports
from shared.recipe import TrainingRecipe, recipe_parser, trains_locator
from shared.records import LabelRecord
from shared.registry import ModelKind, ModelRegistry, unique_stamp
from shared.relabel import oof_version
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)
LOCATOR = ModelKind.LOCATOR

# Options that describe the machine, not the run: a resumed run takes them from its new call.
RUNTIME_OPTIONS = ("progress", "device", "workers", "resume")


class FacetDataError(DressvisionError):
    """Not enough labelled images to train the facet model."""


@dataclass
class TrainResult:
    version: str
    promoted: bool
    metrics: dict
    skipped: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    locator: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


def add_runtime_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of the machine and the run, not of the recipe: a resumed run takes
    `RUNTIME_OPTIONS` from its new call, and a retry keeps its run id."""
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    parser.add_argument(
        "--run-id",
        default=None,
        help=f"checkpoint name (default: ${BATCH_JOB_ID}, else a timestamp)",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="KEY",
        help="checkpoint key to resume from (the run's own is found by itself)",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--quiet", dest="progress", action="store_false", default=None, help="no progress bars"
    )
    parser.add_argument(
        "--what",
        choices=("facets", "similarity", "all"),
        default="facets",
        help="the facet model (default; the locator too when none is current), the "
        "similarity embedder (batch_jobs/similarity), or both, facets first",
    )
    similarity.add_arguments(parser)
    return parser


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The job's command line: the training recipe (`shared.recipe`, the options
    `dressvision train` shares) and the run's own options. A recipe option that is not given
    is absent from the result: `job_args` fills it in from the deployment's settings."""
    parser = argparse.ArgumentParser(
        description="Train the facet model", add_help=add_help, parents=[recipe_parser()]
    )
    return add_runtime_arguments(parser)


def job_args(args: argparse.Namespace, settings: Settings) -> argparse.Namespace:
    """The complete options of a run: `args` (parsed with `get_args_parser`) over the
    recipe of `settings` (`TrainingRecipe.from_settings`)."""
    recipe = TrainingRecipe.from_args(args, TrainingRecipe.from_settings(settings))
    return argparse.Namespace(**{**vars(args), **asdict(recipe)})


def default_args(**overrides: Any) -> argparse.Namespace:
    """The recipe's defaults (`TrainingRecipe()`, no settings) and the run options' defaults,
    with `overrides` (for callers that build no command line)."""
    args = argparse.Namespace(
        **vars(get_args_parser(add_help=False).parse_args([])), **asdict(TrainingRecipe())
    )
    for name, value in overrides.items():
        if not hasattr(args, name):
            raise ValueError(f"unknown training option {name!r}")
        setattr(args, name, value)
    return args


def check_args(args: argparse.Namespace, taxonomy: Taxonomy) -> None:
    """Refuse options that cannot work, before anything is exported or trained."""
    if args.arch not in backbone_names():
        names = ", ".join(backbone_names())
        raise ConfigurationError(f"unknown --arch {args.arch!r}; use one of {names}")
    for facet in args.facets or []:
        taxonomy.labels(facet)  # raises UnknownLabelError naming the allowed facets
    if args.epochs < 1 or args.batch_size < 1:
        raise ConfigurationError("--epochs and --batch-size must be at least 1")
    if args.oof_folds == 1 or args.oof_folds < 0:
        raise ConfigurationError("--oof-folds must be 0 (off) or at least 2")
    if args.holdout_folds == 1 or args.holdout_folds < 0:
        raise ConfigurationError("--holdout-folds must be 0 (off) or at least 2")
    if args.holdout_folds and not 0 <= args.holdout_fold < args.holdout_folds:
        raise ConfigurationError(
            f"--holdout-fold must be between 0 and {args.holdout_folds - 1}, "
            f"got {args.holdout_fold}"
        )
    if args.holdout_folds and args.oof_folds:
        raise ConfigurationError(
            "--holdout-folds and --oof-folds both judge the train split; choose one"
        )
    resolve_weights(args.arch, args.weights)  # a named download fails here, naming the file


def held_out(records: Sequence[LabelRecord], args: argparse.Namespace) -> torch.Tensor:
    """The train images whose products are in the fold `--holdout-fold` of `--holdout-folds`
    (all photos of a product together; the same products on every machine)."""
    folds, fold = getattr(args, "holdout_folds", 0), getattr(args, "holdout_fold", 0)
    if not folds:
        return torch.zeros(len(records), dtype=torch.bool)
    return torch.tensor(
        [r.split == "train" and fold_of(r.product_id, folds) == fold for r in records],
        dtype=torch.bool,
    )


def load_data(
    records: Sequence[LabelRecord],
    ports: Ports,
    config: PreprocessConfig,
    *,
    locator: Any | None,
    workers: int,
    progress: bool,
) -> PreparedImages:
    """Every snapshot image prepared once (decoded, located, cropped, resized)."""
    return prepare_records(
        records,
        ports.catalog,
        ports.settings,
        config,
        locator=locator,
        workers=workers,
        progress=progress,
    )


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak learning rate, then cosine decay to zero (per step)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def create_optimizer(model: FacetNet, args: argparse.Namespace) -> torch.optim.Optimizer:
    # No weight decay on norms and biases (the usual recipe for ResNets).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=args.lr)


def _train_loader(
    data: TensorImages, args: argparse.Namespace, epoch: int, device: torch.device
) -> DataLoader:
    # A generator seeded per epoch: a resumed run sees the same order as an uninterrupted one.
    generator = torch.Generator().manual_seed(args.seed * 10_007 + epoch)
    workers = args.workers if device.type == "cuda" else 0  # the CPU cores are busy computing
    return DataLoader(
        data,
        batch_size=args.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(data) > args.batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def _start(
    args: argparse.Namespace, ports: Ports, registry: ModelRegistry
) -> tuple[argparse.Namespace, list[LabelRecord], dict | None, str]:
    """The run's args, snapshot records and checkpoint (None for a fresh run), and its key."""
    run_id = (
        args.run_id
        or os.environ.get(BATCH_JOB_ID)
        or unique_stamp(lambda stamp: ports.artifacts.exists(checkpoint_key(KIND, stamp)))
    )
    key = args.resume or checkpoint_key(KIND, run_id)
    checkpoint = load_checkpoint(ports.artifacts, key)
    if checkpoint is None and args.resume:
        raise NotFoundError(f"no checkpoint at {args.resume}; drop --resume to start afresh")
    if checkpoint is not None:
        saved = checkpoint["args"]
        args = argparse.Namespace(**{**saved, **{k: getattr(args, k) for k in RUNTIME_OPTIONS}})
        log.info("resuming run %s after epoch %d", saved["run_id"], checkpoint["epoch"])
        return args, read_snapshot(ports.artifacts, args.snapshot_key), checkpoint, key
    args.run_id = run_id
    located = load_checkpoint(ports.artifacts, checkpoint_key(ModelKind.LOCATOR, run_id))
    if located is not None and located["args"].get("snapshot_key"):
        # Interrupted while training its locator: go on with the same snapshot.
        args.snapshot_key = located["args"]["snapshot_key"]
        log.info("resuming run %s in its locator training", run_id)
        return args, read_snapshot(ports.artifacts, args.snapshot_key), None, key
    args.snapshot_key, records = export_snapshot(ports.labels, ports.artifacts)
    return args, records, None, key


def _locator_for(
    args: argparse.Namespace,
    records: list[LabelRecord],
    ports: Ports,
    registry: ModelRegistry,
    progress: bool = False,
) -> tuple[Any | None, dict | None]:
    """The locator this run crops with (fixed at its start) and, if trained here, its summary."""
    trained = None
    fixed = getattr(args, "locator_version", None) is not None  # a resumed run's
    if not fixed and trains_locator(args.locator, registry.current(LOCATOR)):
        from batch_jobs.locator import LocatorDataError, train_locator

        try:
            version, metrics, promoted = train_locator(
                records,
                ports.catalog,
                registry,
                settings=ports.settings,
                snapshot_key=args.snapshot_key,
                ckpt_key=checkpoint_key(ModelKind.LOCATOR, args.run_id),
                progress=progress,
            )
            trained = {
                "version": version,
                "promoted": promoted,
                "mean_iou": metrics.get("mean_iou"),
            }
        except LocatorDataError as exc:
            log.warning("no locator trained: %s", exc)
    if args.locator == "none":
        args.locator_version = None
        return None, trained
    if getattr(args, "locator_version", None) is None:
        args.locator_version = registry.current(LOCATOR)
    if args.locator_version is None:
        return None, trained
    return load_locator(registry, args.locator_version), trained


def _promotable(registry: ModelRegistry, facets: Sequence[str], force: bool) -> bool:
    """A model that would drop facets the current one predicts is never promoted silently."""
    current = registry.current(KIND)
    if current is None or force:
        return True
    previous = json.loads(registry.read(KIND, current, "taxonomy.json"))["facets"]
    dropped = sorted(set(previous) - set(facets))
    if dropped:
        log.warning("not promoting: the current model also predicts %s (use --force)", dropped)
    return not dropped


@dataclass
class Fit:
    """Everything the epoch loop works on."""

    model: FacetNet
    criterion: MaskedWeightedCrossEntropy
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    data: TensorImages
    device: torch.device
    dtype: torch.dtype | None
    ema: AveragedModel | None = None
    dynamics: TrainingDynamics | None = None  # the train split's mean probabilities, for review
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def final_model(self) -> FacetNet:
        """The weights to keep: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model


def dynamics_window(args: argparse.Namespace) -> tuple[int, int]:
    """The epochs (0-based, end excluded) the training dynamics average: from the end of the
    warm-up to the middle of the run, while the cosine learning rate is above half its peak.
    Later the network memorises the wrong labels too (a wrong label's mean probability
    catches up with a right one's by epoch 30 of 45 on the 8%-noise catalog), so the late
    epochs would only blur the signal; AUM (Pleiss et al.) likewise stops at the first
    learning-rate decay (bench/results/judge_options.json compares the windows)."""
    end = max(math.ceil(args.epochs / 2), 1)
    return min(math.ceil(args.warmup_epochs), end - 1), end


def build_fit(
    args: argparse.Namespace,
    taxonomy: Taxonomy,
    images: torch.Tensor,
    targets: torch.Tensor,
    checkpoint: dict | None,
) -> Fit:
    """Model, loss, optimizer and schedule for training on uint8 `images` and `targets`
    (N, F), restored from `checkpoint` when resuming."""
    facets = list(taxonomy.facet_names)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    dtype = amp_dtype(device, args.amp)
    heads = {facet: len(taxonomy.labels(facet)) for facet in facets}
    model = create_model(
        ModelKind.FACETS, args.arch, heads=heads, stn=args.stn, weights=args.weights
    )
    model = model.to(device, memory_format=torch.channels_last)
    weights = (
        {f: balanced_class_weights(targets[:, i], heads[f]) for i, f in enumerate(facets)}
        if args.class_weights
        else None
    )
    criterion = MaskedWeightedCrossEntropy(facets, weights, label_smoothing=args.label_smoothing)
    dynamics = None
    if args.dynamics:
        start, end = dynamics_window(args)
        dynamics = TrainingDynamics(heads, len(images), start=start, end=end)
    data = TensorImages(
        images,
        targets,
        train_transform(images.shape[2], images.shape[3], hue=args.hue),
        indexed=dynamics is not None,
    )
    steps = len(_train_loader(data, args, 0, device))
    optimizer = create_optimizer(model, args)
    scheduler = warmup_cosine(optimizer, steps * args.epochs, round(steps * args.warmup_epochs))
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    fit = Fit(
        model,
        criterion.to(device),
        optimizer,
        scheduler,
        scaler,
        data,
        device,
        dtype,
        dynamics=dynamics,
    )
    if args.ema > 0:
        # BatchNorm statistics are averaged too (use_buffers), so the average is usable as is.
        fit.ema = AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True
        )
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None and checkpoint.get("scaler"):
            scaler.load_state_dict(checkpoint["scaler"])
        if fit.ema is not None:
            fit.ema.load_state_dict(checkpoint["ema"])
        if fit.dynamics is not None:
            fit.dynamics.load_state_dict(checkpoint["dynamics"])
        fit.start_epoch = checkpoint["epoch"]
        fit.history = list(checkpoint.get("history", []))
    return fit


def validate(
    fit: Fit,
    data: TensorImages,
    config: PreprocessConfig,
    facets: Sequence[str],
    labels: dict[str, Sequence[str]],
    *,
    batch_size: int = 128,
    progress: bool = False,
) -> dict:
    """`{"test_loss", "test_macro_f1": {facet: F1}}` of the kept weights on `data` (the test
    split): the same loss as training and the same macro F1 as the final evaluation."""
    predicted: dict[str, list[torch.Tensor]] = {facet: [] for facet in facets}

    def keep(logits: dict[str, torch.Tensor]) -> None:
        for facet in facets:
            predicted[facet].append(logits[facet].argmax(dim=1).cpu())

    batches = [
        (data.images[i : i + batch_size], data.targets[i : i + batch_size])
        for i in range(0, len(data), batch_size)
    ]
    compute = facet_loss(fit.criterion, config, fit.device, fit.dtype, keep)
    losses = evaluate(fit.final_model, compute, batches, progress=progress, desc="validate")
    f1 = {}
    for column, facet in enumerate(facets):
        truth = data.targets[:, column]
        known = truth != UNKNOWN
        guess = torch.cat(predicted[facet]) if predicted[facet] else truth
        f1[facet] = facet_report(truth[known].numpy(), guess[known].numpy(), labels[facet])[
            "macro_f1"
        ]
    return {"test_loss": losses.get("loss", 0.0), "test_macro_f1": f1}


def run_epochs(
    fit: Fit,
    args: argparse.Namespace,
    config: PreprocessConfig,
    ports: Ports,
    ckpt_key: str,
    progress: bool,
    *,
    validation: TensorImages | None = None,
) -> None:
    """Train from `fit.start_epoch` to `args.epochs`, checkpointing after every epoch. The
    checkpoint is serialised here and written in the background (the write is I/O-bound).
    With `validation` (the test split), each epoch's history entry also has its figures."""
    facets = list(args.facets or [])
    labels = {facet: ports.taxonomy.labels(facet) for facet in facets}
    record = fit.dynamics.record if fit.dynamics is not None else None
    compute = facet_loss(fit.criterion, config, fit.device, fit.dtype, record=record)
    bar = tqdm(
        range(fit.start_epoch, args.epochs),
        desc="train facets",
        unit="epoch",
        disable=not progress,
        initial=fit.start_epoch,
        total=args.epochs,
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as writer:
        written: Future | None = None
        for epoch in bar:
            started = time.perf_counter()
            torch.manual_seed(args.seed * 10_007 + epoch)  # augmentation, dropout: resumable
            losses = train_one_epoch(
                fit.model,
                compute,
                fit.optimizer,
                fit.scheduler,
                _train_loader(fit.data, args, epoch, fit.device),
                scaler=fit.scaler,
                ema=fit.ema,
                epoch=epoch,
                progress=progress,
            )
            if fit.dynamics is not None:
                fit.dynamics.end_epoch(epoch)
            entry = {"epoch": epoch + 1, "loss": losses["loss"]}
            if validation is not None and len(validation) > 0 and facets:
                entry.update(validate(fit, validation, config, facets, labels, progress=progress))
            entry["seconds"] = round(time.perf_counter() - started, 3)
            fit.history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}")
            log.info("epoch %d/%d: %s", epoch + 1, args.epochs, entry)
            body = serialize(
                {
                    "model": fit.model.state_dict(),
                    "optimizer": fit.optimizer.state_dict(),
                    "scheduler": fit.scheduler.state_dict(),
                    "scaler": fit.scaler.state_dict() if fit.scaler is not None else None,
                    "ema": fit.ema.state_dict() if fit.ema is not None else None,
                    "dynamics": fit.dynamics.state_dict() if fit.dynamics is not None else None,
                    "epoch": epoch + 1,
                    "args": plain_args(args),
                    "history": fit.history,
                }
            )
            if written is not None:
                written.result()  # never two writes of the same key at once
            written = writer.submit(save_checkpoint, ports.artifacts, ckpt_key, body)
        if written is not None:
            written.result()


def train(args: argparse.Namespace, ports: Ports) -> TrainResult:
    """One training run, as described in the module docstring."""
    timer = {"start": time.perf_counter()}
    registry = ModelRegistry(ports.artifacts)
    check_args(args, ports.taxonomy)
    args, records, checkpoint, ckpt_key = _start(args, ports, registry)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    args.facets = list(args.facets or ports.taxonomy.facet_names)
    taxonomy = Taxonomy({f: ports.taxonomy.labels(f) for f in args.facets})
    locator, locator_summary = _locator_for(args, records, ports, registry, progress)
    timer["snapshot"] = time.perf_counter()

    crop = (
        CropConfig(args.locator_version, args.crop_margin, args.bodice)
        if locator is not None
        else None
    )
    config = PreprocessConfig(image_size=args.image_size, crop=crop)
    prepared = load_data(
        records, ports, config, locator=locator, workers=args.workers, progress=progress
    )
    targets = facet_targets(prepared.records, taxonomy, args.facets)
    is_train = torch.tensor([r.split == "train" for r in prepared.records], dtype=torch.bool)
    labelled = is_train & (targets != UNKNOWN).any(dim=1)
    held = held_out(prepared.records, args) & labelled
    labelled &= ~held
    if int(labelled.sum()) == 0:
        raise FacetDataError(
            f"no readable training image has a label for {', '.join(args.facets)}; import a "
            "catalog with labels.csv first (dressvision import DIR)"
        )
    timer["prepare"] = time.perf_counter()

    fit = build_fit(args, taxonomy, prepared.images[labelled], targets[labelled], checkpoint)
    is_test = torch.tensor([r.split == "test" for r in prepared.records], dtype=torch.bool)
    validation = TensorImages(prepared.images[is_test], targets[is_test])
    run_epochs(fit, args, config, ports, ckpt_key, progress, validation=validation)
    timer["train"] = time.perf_counter()

    version = registry.new_version(KIND)
    tagger = FacetTagger(
        fit.final_model,
        config,
        taxonomy,
        version=version,
        locator=locator,
        device=fit.device,
        amp=args.amp,
    )
    evaluation = evaluate_records(
        tagger,
        prepared.records,
        ports,
        prepared=prepared,
        workers=args.workers,
        progress=progress,
    )
    timer["evaluate"] = time.perf_counter()
    skipped = [asdict(s) for s in prepared.skipped]
    metrics = {
        **evaluation.document,
        **summary(evaluation.document),
        "without_crop": evaluation.without_crop,
        "images": {
            "train": int(labelled.sum()),
            "held_out": int(held.sum()),
            "evaluated": len(prepared.records),
        },
        "skipped": skipped,
        "history": fit.history,
    }
    registry.save(KIND, version, model_files(fit.final_model, config, taxonomy, metrics, args))
    promoted = _promotable(registry, args.facets, args.force) and registry.promote(
        KIND, version, metric=METRIC, force=args.force
    )
    store_predictions(ports.predictions, version, prepared, evaluation.probs, taxonomy)
    if fit.dynamics is not None:
        store_predictions(
            ports.predictions,
            oof_version(version),
            subset(prepared, labelled),
            fit.dynamics.mean(),
            taxonomy,
        )
    if int(held.sum()):
        # Out of sample: the model never saw these products.
        rows = held.nonzero().flatten().numpy()
        store_predictions(
            ports.predictions,
            oof_version(version),
            subset(prepared, held),
            {facet: probs[rows] for facet, probs in evaluation.probs.items()},
            taxonomy,
        )
    delete_checkpoint(ports.artifacts, ckpt_key)
    timer["save"] = time.perf_counter()
    if args.oof_folds:
        out_of_fold_predictions(
            args,
            taxonomy,
            prepared,
            targets,
            labelled,
            config,
            ports,
            version,
            folds=args.oof_folds,
            checkpoint_key=ckpt_key,
            progress=progress,
        )
        timer["out_of_fold"] = time.perf_counter()
    log.info("facet model %s: test macro F1 %.3f, promoted=%s", version, metrics[METRIC], promoted)
    return TrainResult(version, promoted, metrics, skipped, _durations(timer), locator_summary)


def _durations(timer: dict[str, float]) -> dict[str, float]:
    """Seconds spent in each phase (named by its end) and in total."""
    names = list(timer)
    seconds = {b: round(timer[b] - timer[a], 2) for a, b in itertools.pairwise(names)}
    seconds["total"] = round(timer[names[-1]] - timer[names[0]], 2)
    return seconds


def model_files(
    model: FacetNet,
    config: PreprocessConfig,
    taxonomy: Taxonomy,
    metrics: dict,
    args: argparse.Namespace,
) -> dict[str, bytes]:
    """The registry files of a trained model (`history.json`: the per-epoch training loss and
    test-split figures, what `dressvision evaluate --plot` draws)."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
    return {
        "weights.pt": buffer.getvalue(),
        "taxonomy.json": json.dumps(taxonomy.to_mapping(), indent=2).encode(),
        "preprocess.json": config.to_json(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "history.json": json.dumps(metrics.get("history", []), indent=2).encode(),
        "args.json": json.dumps(vars(args), indent=2, default=str).encode(),
    }


def main(args: argparse.Namespace, ports: Ports | None = None) -> int:
    """The Batch job: train with the deployment's ports, print a JSON summary."""
    ports = ports or build_ports(Settings.from_env())
    if args.what == "similarity":
        return similarity.main(args, ports)
    try:
        result = train(job_args(args, ports.settings), ports)
    except FacetDataError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "version": result.version,
                "promoted": result.promoted,
                METRIC: result.metrics[METRIC],
                "skipped": len(result.skipped),
                "seconds": result.seconds,
            }
        )
    )
    return similarity.main(args, ports) if args.what == "all" else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main(get_args_parser().parse_args()))
