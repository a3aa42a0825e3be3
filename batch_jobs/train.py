"""Train the facet model: `python -m batch_jobs.train [options]` (and `dressvision train`).

One run: export a labels snapshot (or, when resuming, read the run's own), optionally train a
locator on it, prepare the images (located crop when a locator is current), train a ResNet with
one head per facet (class-weighted, masked loss), evaluate on the fixed train/test splits, save
the version in the model registry with its preprocessing config, store per-image predictions,
and promote it if its test macro F1 is not worse than the current model's.

A checkpoint (model, optimizer, scheduler, epoch, args) goes to the artifacts store after every
epoch under the run id (on AWS Batch: the job id, stable across retries), so a job killed by a
Spot interruption resumes where it stopped when Batch retries it.
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
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from batch_jobs.crop import DEFAULT_MARGIN
from batch_jobs.crossval import out_of_fold_predictions
from batch_jobs.evaluate import evaluate_records, store_predictions, summary
from batch_jobs.facets.checkpoint import (
    checkpoint_key,
    delete_checkpoint,
    load_checkpoint,
    save_checkpoint,
    serialize,
)
from batch_jobs.facets.data import (
    PreparedImages,
    TensorImages,
    facet_targets,
    prepare_records,
    train_transform,
)
from batch_jobs.facets.engine import amp_dtype, pick_device, train_one_epoch
from batch_jobs.facets.loss import UNKNOWN, MaskedWeightedCrossEntropy, balanced_class_weights
from batch_jobs.facets.model import DEFAULT_ARCH, FacetNet, backbone_names, create_model
from batch_jobs.facets.predictor import KIND, METRIC, FacetTagger, load_locator
from batch_jobs.facets.preprocess import CropConfig, PreprocessConfig
from batch_jobs.similarity import train as similarity
from batch_jobs.snapshot import export_snapshot, read_snapshot
from shared.backends import build_ports
from shared.env import BATCH_JOB_ID, Settings
from shared.errors import ConfigurationError, DressvisionError, NotFoundError
from shared.ports import Ports
from shared.records import LabelRecord
from shared.registry import ModelRegistry, unique_stamp
from shared.taxonomy import Taxonomy

log = logging.getLogger(__name__)

DEFAULT_BODICE = 0.3  # the top 30% of the crop gets half the rows: the neckline 1.67x larger

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


def facet_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """Training options; the defaults meet the issue's budget on a 2-core CPU (bench/)."""
    parser = argparse.ArgumentParser(description="Train the facet model", add_help=add_help)
    parser.add_argument(
        "--facets",
        type=facet_list,
        default=None,
        help="comma-separated facets to train (default: every taxonomy facet)",
    )
    parser.add_argument(
        "--arch", default=DEFAULT_ARCH, help=f"torchvision ResNet backbone (default {DEFAULT_ARCH})"
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="torchvision state dict of --arch (ImageNet); random init without",
    )
    parser.add_argument(
        "--stn",
        action="store_true",
        help="spatial transformer in front of the backbone (identity at start)",
    )
    parser.add_argument("--image-size", type=int, default=128, help="pixels (default 128)")
    parser.add_argument("--epochs", type=int, default=45, help="default 45")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument(
        "--warmup-epochs",
        type=float,
        default=2.0,
        help="linear warm-up before the cosine decay (default 2)",
    )
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="default 0.1")
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="keep an exponential moving average of the weights with this "
        "decay per step (e.g. 0.998) and save it; 0 = off",
    )
    parser.add_argument(
        "--no-class-weights",
        dest="class_weights",
        action="store_false",
        help="plain cross-entropy instead of the balanced class weights",
    )
    parser.add_argument(
        "--locator",
        choices=("current", "train", "none"),
        default="current",
        help="crop to the current locator's box (default), train a locator on "
        "the same snapshot first, or use whole images",
    )
    parser.add_argument(
        "--crop-margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"widen the located box by this share per side ({DEFAULT_MARGIN})",
    )
    parser.add_argument(
        "--bodice",
        type=float,
        default=DEFAULT_BODICE,
        help="the top share of the dress crop magnified to the upper half of the input "
        f"(default {DEFAULT_BODICE}; 0.5 = uniform)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--oof-folds",
        type=int,
        default=0,
        metavar="K",
        help="also store out-of-fold predictions of the train split from K models, each "
        "trained without one fold of products (the relabel loop needs them; K extra trainings)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--no-amp", dest="amp", action="store_false", help="float32 only (no bf16/fp16 autocast)"
    )
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
        "--force",
        action="store_true",
        help="promote even if the test macro F1 is worse than the current one's",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars (default: when stderr is a terminal)",
    )
    parser.add_argument(
        "--what",
        choices=("facets", "similarity", "all"),
        default="facets",
        help="the facet model (default; the locator too with --locator train), the "
        "similarity embedder (batch_jobs/similarity), or both, facets first",
    )
    similarity.add_arguments(parser)
    return parser


def default_args(**overrides: Any) -> argparse.Namespace:
    """The parser's defaults with `overrides` (for callers that build no command line)."""
    args = get_args_parser(add_help=False).parse_args([])
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
    if args.weights is not None and not Path(args.weights).is_file():
        raise ConfigurationError(f"--weights {args.weights}: no such file")


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
        or unique_stamp(lambda stamp: ports.artifacts.exists(checkpoint_key(stamp)))
    )
    key = args.resume or checkpoint_key(run_id)
    checkpoint = load_checkpoint(ports.artifacts, key)
    if checkpoint is None and args.resume:
        raise NotFoundError(f"no checkpoint at {args.resume}; drop --resume to start afresh")
    if checkpoint is not None:
        saved = checkpoint["args"]
        args = argparse.Namespace(**{**saved, **{k: getattr(args, k) for k in RUNTIME_OPTIONS}})
        log.info("resuming run %s after epoch %d", saved["run_id"], checkpoint["epoch"])
        return args, read_snapshot(ports.artifacts, args.snapshot_key), checkpoint, key
    args.run_id = run_id
    args.snapshot_key, records = export_snapshot(ports.labels, ports.artifacts)
    return args, records, None, key


def _locator_for(
    args: argparse.Namespace, records: list[LabelRecord], ports: Ports, registry: ModelRegistry
) -> tuple[Any | None, dict | None]:
    """The locator this run crops with (fixed at its start) and, if trained here, its summary."""
    trained = None
    if args.locator == "train" and getattr(args, "locator_version", None) is None:
        from batch_jobs.locator import LocatorDataError, train_locator

        try:
            version, metrics, promoted = train_locator(
                records,
                ports.catalog,
                registry,
                settings=ports.settings,
                snapshot_key=args.snapshot_key,
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
        args.locator_version = registry.current("locator")
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
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def final_model(self) -> FacetNet:
        """The weights to keep: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model


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
    model = create_model(args.arch, heads, stn=args.stn, weights=args.weights)
    model = model.to(device, memory_format=torch.channels_last)
    weights = (
        {f: balanced_class_weights(targets[:, i], heads[f]) for i, f in enumerate(facets)}
        if args.class_weights
        else None
    )
    criterion = MaskedWeightedCrossEntropy(facets, weights, label_smoothing=args.label_smoothing)
    data = TensorImages(images, targets, train_transform(images.shape[2], images.shape[3]))
    steps = len(_train_loader(data, args, 0, device))
    optimizer = create_optimizer(model, args)
    scheduler = warmup_cosine(optimizer, steps * args.epochs, round(steps * args.warmup_epochs))
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    fit = Fit(model, criterion.to(device), optimizer, scheduler, scaler, data, device, dtype)
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
        fit.start_epoch = checkpoint["epoch"]
        fit.history = list(checkpoint.get("history", []))
    return fit


def run_epochs(
    fit: Fit,
    args: argparse.Namespace,
    config: PreprocessConfig,
    ports: Ports,
    ckpt_key: str,
    progress: bool,
) -> None:
    """Train from `fit.start_epoch` to `args.epochs`, checkpointing after every epoch. The
    checkpoint is serialised here and written in the background (the write is I/O-bound)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") as writer:
        written: Future | None = None
        for epoch in range(fit.start_epoch, args.epochs):
            torch.manual_seed(args.seed * 10_007 + epoch)  # augmentation, dropout: resumable
            loss = train_one_epoch(
                fit.model,
                fit.criterion,
                fit.optimizer,
                fit.scheduler,
                _train_loader(fit.data, args, epoch, fit.device),
                config,
                fit.device,
                dtype=fit.dtype,
                scaler=fit.scaler,
                ema=fit.ema,
                epoch=epoch,
                progress=progress,
            )
            fit.history.append({"epoch": epoch + 1, "loss": loss})
            log.info("epoch %d/%d: loss %.4f", epoch + 1, args.epochs, loss)
            body = serialize(
                {
                    "model": fit.model.state_dict(),
                    "optimizer": fit.optimizer.state_dict(),
                    "scheduler": fit.scheduler.state_dict(),
                    "scaler": fit.scaler.state_dict() if fit.scaler is not None else None,
                    "ema": fit.ema.state_dict() if fit.ema is not None else None,
                    "epoch": epoch + 1,
                    "args": vars(args),
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
    locator, locator_summary = _locator_for(args, records, ports, registry)
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
    if int(labelled.sum()) == 0:
        raise FacetDataError(
            f"no readable training image has a label for {', '.join(args.facets)}; import a "
            "catalog with labels.csv first (dressvision import DIR)"
        )
    timer["prepare"] = time.perf_counter()

    fit = build_fit(args, taxonomy, prepared.images[labelled], targets[labelled], checkpoint)
    run_epochs(fit, args, config, ports, ckpt_key, progress)
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
        "images": {"train": int(labelled.sum()), "evaluated": len(prepared.records)},
        "skipped": skipped,
        "history": fit.history,
    }
    registry.save(KIND, version, model_files(fit.final_model, config, taxonomy, metrics, args))
    promoted = _promotable(registry, args.facets, args.force) and registry.promote(
        KIND, version, metric=METRIC, force=args.force
    )
    store_predictions(ports.predictions, version, prepared, evaluation.probs, taxonomy)
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
    """The registry files of a trained model."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, buffer)
    return {
        "weights.pt": buffer.getvalue(),
        "taxonomy.json": json.dumps(taxonomy.to_mapping(), indent=2).encode(),
        "preprocess.json": config.to_json(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "args.json": json.dumps(vars(args), indent=2, default=str).encode(),
    }


def main(args: argparse.Namespace, ports: Ports | None = None) -> int:
    """The Batch job: train with the deployment's ports, print a JSON summary."""
    ports = ports or build_ports(Settings.from_env())
    if args.what == "similarity":
        return similarity.main(args, ports)
    try:
        result = train(args, ports)
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
