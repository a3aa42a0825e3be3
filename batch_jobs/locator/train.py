"""Train the dress locator on the boxed images of a labels snapshot, evaluate it on the test
split, save it in the model registry (`models/locator/<version>/`) and promote it if its mean IoU
is not worse than the current one's.

`train_locator(...)` is what the training job calls when the catalog has boxes; run alone:
`python -m batch_jobs.locator.train [--arch patches|whole] ...` (exports a fresh snapshot).

A checkpoint goes to the artifacts store after every epoch (`batch_jobs.checkpoint`, key
`checkpoints/locator/<run id>/checkpoint.pt`), so a run on a Spot instance that is reclaimed
resumes where it stopped when it is run again with the same run id (a Batch job's id is).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict

import torch
from torch import Tensor, nn
from tqdm import tqdm

from batch_jobs.backbones import resolve_weights
from batch_jobs.checkpoint import (
    delete_checkpoint,
    load_checkpoint,
    plain_args,
    save_checkpoint,
)
from batch_jobs.engine import amp_dtype, autocast, pick_device
from batch_jobs.engine import train_one_epoch as run_one_epoch
from batch_jobs.locator.boxes import decode_boxes, label_patches, patch_centers
from batch_jobs.locator.data import BoxData, load_data
from batch_jobs.locator.evaluate import evaluate, summarize_ious
from batch_jobs.locator.inference import Locator
from batch_jobs.locator.losses import BoxRegressionLoss, PatchLocatorLoss
from batch_jobs.locator.model import ARCHS, BACKBONES, PatchLocator
from batch_jobs.locator.preprocess import LocatorConfig, normalize
from batch_jobs.models import create_model
from shared.env import BATCH_JOB_ID, Settings
from shared.errors import ConfigurationError, DressvisionError, NotFoundError
from shared.keys import checkpoint_key
from shared.ports import ObjectStore
from shared.records import LabelRecord
from shared.registry import ModelKind, ModelRegistry, unique_stamp

logger = logging.getLogger(__name__)

KIND = ModelKind.LOCATOR.value
METRIC = "mean_iou"


class LocatorDataError(DressvisionError):
    """Not enough boxed images to train or evaluate the locator."""


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """The locator's training options (defaults: the configuration benchmarked in
    bench/results/locator.json)."""
    parser = argparse.ArgumentParser(description="Train the dress locator", add_help=add_help)
    parser.add_argument(
        "--arch",
        default="patches",
        choices=ARCHS,
        help="patches: background + location networks (default); "
        "whole: one network regressing the box from the whole image",
    )
    parser.add_argument("--backbone", default="tiny", choices=BACKBONES)
    parser.add_argument(
        "--weights",
        default=None,
        metavar="NAME|FILE",
        help="start the resnet18 backbone from torchvision's named weights (IMAGENET1K_V1, "
        "fetched into the torch hub cache) or a resnet18 state dict FILE; random without",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=128,
        help="pixels, a multiple of the backbone stride (8 tiny, 16 resnet18)",
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="foreground probability a window needs to vote for the box",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default="auto", help="auto (the GPU when there is one), cpu, cuda"
    )
    parser.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bfloat16 autocast where the device computes it natively",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        help=f"checkpoint name in the artifacts store (default: ${BATCH_JOB_ID}, else a "
        "timestamp); a run with the id of an interrupted one resumes it",
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
        "--force-promote",
        action="store_true",
        help="make this version current even if its mean IoU is lower",
    )
    return parser


def default_args(**overrides) -> argparse.Namespace:
    """The parser's defaults, with `overrides` (for callers that do not parse a command line)."""
    args = get_args_parser(add_help=False).parse_args([])
    for name, value in overrides.items():
        if not hasattr(args, name):
            raise ValueError(f"unknown locator option {name!r}")
        setattr(args, name, value)
    return args


def config_from_args(args: argparse.Namespace) -> LocatorConfig:
    return LocatorConfig(
        arch=args.arch,
        backbone=args.backbone,
        input_size=args.input_size,
        threshold=args.threshold,
    )


def augment(images: Tensor, boxes: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random horizontal flips (the box flips with the image) and brightness/contrast jitter.

    images `(B, 3, S, S)` float (normalized), boxes `(B, 4)` normalized -> the same shapes.
    `generator` is a CPU generator (its state goes into checkpoints).
    """
    b, device = images.shape[0], images.device
    flip = (torch.rand(b, generator=generator) < 0.5).to(device)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    flipped = torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], dim=1)
    boxes = torch.where(flip[:, None], flipped, boxes)
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=generator).to(device) - 0.5) * 0.4
    brightness = (torch.rand(b, 1, 1, 1, generator=generator).to(device) - 0.5) * 0.4
    return images * contrast + brightness, boxes


def create_criterion(arch: str) -> nn.Module:
    return PatchLocatorLoss() if arch == "patches" else BoxRegressionLoss()


def batch_loss(
    model: nn.Module,
    criterion: nn.Module,
    x: Tensor,
    boxes: Tensor,
    device: torch.device,
    dtype: torch.dtype | None,
) -> tuple[Tensor, dict[str, float]]:
    """The loss of one batch: x `(B, 3, S, S)`, boxes `(B, 4)` normalized. The network runs
    under autocast (`dtype`); the loss is computed in float32."""
    with autocast(device, dtype):
        out = model(x.contiguous(memory_format=torch.channels_last))
    out = {name: value.float() for name, value in out.items()}
    if isinstance(model, PatchLocator):
        predicted = decode_boxes(out["offsets"], patch_centers(model.patches)[None])
        labels = label_patches(model.patches.cpu(), boxes.cpu()).to(boxes.device)
        return criterion(out["logits"], predicted, labels, boxes)
    loss = criterion(out["boxes"], boxes)
    return loss, {"location": float(loss.detach())}


def batches(
    data: BoxData,
    config: LocatorConfig,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of shuffled, augmented batches `(x (B, 3, S, S), boxes (B, 4))` on `device`.
    The order and the augmentation draw from `generator` (its state goes into checkpoints)."""
    order = torch.randperm(len(data), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on a batch of one
            continue
        images, boxes = data.images[idx].to(device), data.boxes[idx].to(device)
        yield augment(normalize(images, config), boxes, generator)


def locator_loss(criterion: nn.Module, device: torch.device, dtype: torch.dtype | None):
    """The locator's `compute_loss` for `batch_jobs.engine`."""

    def compute(model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict, int]:
        x, boxes = batch
        loss, parts = batch_loss(model, criterion, x, boxes, device, dtype)
        return loss, parts, len(x)

    return compute


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: BoxData,
    config: LocatorConfig,
    *,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device,
    dtype: torch.dtype | None = None,
    epoch: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """One pass over `data` in shuffled batches (the shared loop of `batch_jobs.engine`);
    returns the per-image mean of each loss part."""
    return run_one_epoch(
        model,
        locator_loss(criterion, device, dtype),
        optimizer,
        scheduler,
        batches(data, config, batch_size=batch_size, generator=generator, device=device),
        epoch=epoch,
        progress=progress,
        total=_steps_per_epoch(len(data), batch_size),
        desc="locator epoch",
    )


def _steps_per_epoch(n: int, batch_size: int) -> int:
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


def fit(
    train: BoxData,
    args: argparse.Namespace,
    config: LocatorConfig,
    *,
    store: ObjectStore | None = None,
    ckpt_key: str | None = None,
    progress: bool = False,
) -> tuple[nn.Module, list[dict]]:
    """Train a new model on `train` for `args.epochs`. With a `store` and `ckpt_key`, a
    checkpoint is written there after every epoch, and a run that finds one resumes from it."""
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    dtype = amp_dtype(device, args.amp)
    model = create_model(
        ModelKind.LOCATOR,
        config.arch,
        backbone=config.backbone,
        input_size=config.input_size,
        weights=args.weights,
    ).to(device, memory_format=torch.channels_last)
    criterion = create_criterion(config.arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = max(1, _steps_per_epoch(len(train), args.batch_size) * args.epochs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(args.seed)
    start_epoch, history = 0, []
    state = load_checkpoint(store, ckpt_key) if store is not None and ckpt_key else None
    if state is not None:
        # On the CPU: the generator state must stay there; load_state_dict moves the rest.
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch, history = state["epoch"] + 1, list(state["history"])
        logger.info("locator: resumed from %s at epoch %d", ckpt_key, start_epoch)
    epochs = tqdm(
        range(start_epoch, args.epochs),
        desc="train locator",
        unit="epoch",
        disable=not progress,
        initial=start_epoch,
        total=args.epochs,
    )
    for epoch in epochs:
        started = time.perf_counter()
        losses = train_one_epoch(
            model,
            criterion,
            optimizer,
            scheduler,
            train,
            config,
            batch_size=args.batch_size,
            generator=generator,
            device=device,
            dtype=dtype,
            epoch=epoch,
            progress=progress,
        )
        history.append({"epoch": epoch, **losses, "seconds": time.perf_counter() - started})
        epochs.set_postfix(loss=f"{losses.get('loss', float('nan')):.3f}")
        logger.info("locator epoch %d: %s", epoch, history[-1])
        if store is not None and ckpt_key:
            save_checkpoint(
                store,
                ckpt_key,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "history": history,
                    "args": plain_args(args),
                },
            )
    return model, history


def model_files(
    model: nn.Module, config: LocatorConfig, metrics: dict, args: argparse.Namespace
) -> dict[str, bytes]:
    """The files of one registry version (`history.json`: the training curve per epoch)."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    return {
        "weights.pt": buffer.getvalue(),
        "preprocess.json": config.to_json(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "history.json": json.dumps(metrics.get("history", []), indent=2).encode(),
        "args.json": json.dumps(plain_args(args), indent=2).encode(),
    }


def check_args(args: argparse.Namespace) -> None:
    """Refuse what cannot work before any image is read; fetch named weights (fails fast when
    they cannot be downloaded, naming the file to pass instead)."""
    if args.weights is None:
        return
    if args.backbone != "resnet18":
        raise ConfigurationError(
            "--weights starts a resnet18 trunk: use it with --backbone resnet18"
        )
    resolve_weights("resnet18", args.weights)


def train_locator(
    records: Sequence[LabelRecord],
    catalog: ObjectStore,
    registry: ModelRegistry,
    *,
    args: argparse.Namespace | None = None,
    settings: Settings | None = None,
    snapshot_key: str | None = None,
    ckpt_key: str | None = None,
    progress: bool = False,
) -> tuple[str, dict, bool]:
    """Train, evaluate on the test split, save and maybe promote a locator.

    records: the labels snapshot (images without a box are left out of this model only).
    ckpt_key: where the per-epoch checkpoint goes in the registry's store (resumed from when
    it is there; deleted once the version is saved); None: no checkpoint.
    Returns (version, metrics, promoted). metrics holds mean_iou, iou_50, iou_75 on the test
    split (and counts, the fallback share, timings). Raises `LocatorDataError` when the train
    or test split has no readable boxed image.
    """
    args = argparse.Namespace(**{**vars(args or default_args()), "snapshot_key": snapshot_key})
    check_args(args)
    settings = settings or Settings()
    config = config_from_args(args)
    limits = {
        "max_bytes": settings.max_image_bytes,
        "max_pixels": settings.max_image_pixels,
        "progress": progress,
    }
    started = time.perf_counter()
    train, skipped = load_data(
        records, catalog, split="train", input_size=config.input_size, **limits
    )
    test, skipped_test = load_data(
        records, catalog, split="test", input_size=config.input_size, **limits
    )
    for split, data in (("train", train), ("test", test)):
        if len(data) == 0:
            raise LocatorDataError(
                f"no readable {split} image has a dress box; add x0,y0,x1,y1 to the catalog's "
                "labels.csv (or train without the locator)"
            )
    loaded = time.perf_counter()
    model, history = fit(
        train, args, config, store=registry.store, ckpt_key=ckpt_key, progress=progress
    )
    trained = time.perf_counter()
    locator = Locator(model, config, device=args.device, amp=args.amp)
    ious, fallback = evaluate(locator, test)
    metrics = {
        **summarize_ious(ious),
        "fallback_share": float(fallback.float().mean()),
        "split": "test",
        "images": {"train": len(train), "test": len(test)},
        "skipped": [asdict(s) for s in (*skipped, *skipped_test)],
        "seconds": {
            "load": loaded - started,
            "train": trained - loaded,
            "evaluate": time.perf_counter() - trained,
        },
        "history": history,
        "snapshot": snapshot_key,
    }
    version = registry.new_version(KIND)
    registry.save(KIND, version, model_files(model, config, metrics, args))
    promoted = registry.promote(KIND, version, metric=METRIC, force=args.force_promote)
    if ckpt_key:
        delete_checkpoint(registry.store, ckpt_key)
    logger.info("locator %s: mean IoU %.3f, promoted=%s", version, metrics[METRIC], promoted)
    return version, metrics, promoted


def main(args: argparse.Namespace) -> int:
    """The job alone: export a labels snapshot (or, resuming, read the run's own), train,
    print a JSON summary."""
    from batch_jobs.snapshot import export_snapshot, read_snapshot
    from shared.backends import build_ports

    settings = Settings.from_env()
    ports = build_ports(settings)
    check_args(args)
    run_id = (
        args.run_id
        or os.environ.get(BATCH_JOB_ID)
        or unique_stamp(lambda stamp: ports.artifacts.exists(checkpoint_key(KIND, stamp)))
    )
    ckpt_key = args.resume or checkpoint_key(KIND, run_id)
    checkpoint = load_checkpoint(ports.artifacts, ckpt_key)
    if checkpoint is None and args.resume:
        raise NotFoundError(f"no checkpoint at {args.resume}; drop --resume to start afresh")
    if checkpoint is not None and checkpoint["args"].get("snapshot_key"):
        key = checkpoint["args"]["snapshot_key"]
        records = read_snapshot(ports.artifacts, key)
    else:
        key, records = export_snapshot(ports.labels, ports.artifacts)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        version, metrics, promoted = train_locator(
            records,
            ports.catalog,
            ModelRegistry(ports.artifacts),
            args=args,
            settings=settings,
            snapshot_key=key,
            ckpt_key=ckpt_key,
            progress=progress,
        )
    except LocatorDataError as exc:
        print(f"locator: {exc}", file=sys.stderr)
        return 2
    summary = {
        "version": version,
        "promoted": promoted,
        **{k: metrics[k] for k in ("mean_iou", "iou_50", "iou_75")},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sys.exit(main(get_args_parser().parse_args()))
