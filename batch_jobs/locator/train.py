"""Train the dress locator on the boxed images of a labels snapshot, evaluate it on the test
split, save it in the model registry (`models/locator/<version>/`) and promote it if its mean IoU
is not worse than the current one's.

`train_locator(...)` is what the training job calls when the catalog has boxes; run alone:
`python -m batch_jobs.locator.train [--arch patches|whole] ...` (exports a fresh snapshot).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from batch_jobs.facets.engine import amp_dtype, autocast, pick_device
from batch_jobs.locator.boxes import decode_boxes, label_patches, patch_centers
from batch_jobs.locator.data import BoxData, load_data
from batch_jobs.locator.evaluate import evaluate, summarize_ious
from batch_jobs.locator.inference import Locator
from batch_jobs.locator.losses import BoxRegressionLoss, PatchLocatorLoss
from batch_jobs.locator.model import ARCHS, BACKBONES, PatchLocator, create_model
from batch_jobs.locator.preprocess import LocatorConfig, normalize
from shared.env import Settings
from shared.errors import DressvisionError
from shared.ports import ObjectStore
from shared.records import LabelRecord
from shared.registry import ModelRegistry

logger = logging.getLogger(__name__)

KIND = "locator"
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
        type=Path,
        default=None,
        help="resnet18 state dict to start the resnet18 backbone from",
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
        "--checkpoint", type=Path, default=None, help="write a checkpoint here after every epoch"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint if it exists (after a Spot interruption)",
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
) -> dict[str, float]:
    """One pass over `data` in shuffled batches; returns the mean of each loss part."""
    model.train()
    order = torch.randperm(len(data), generator=generator)
    totals: dict[str, float] = {}
    steps = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on a batch of one
            continue
        images, boxes = data.images[idx].to(device), data.boxes[idx].to(device)
        x, boxes = augment(normalize(images, config), boxes, generator)
        loss, parts = batch_loss(model, criterion, x, boxes, device, dtype)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        steps += 1
        for name, value in {"loss": float(loss.detach()), **parts}.items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: value / max(steps, 1) for name, value in totals.items()}


def _steps_per_epoch(n: int, batch_size: int) -> int:
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


def _save_checkpoint(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never a half-written checkpoint


def fit(
    train: BoxData, args: argparse.Namespace, config: LocatorConfig
) -> tuple[nn.Module, list[dict]]:
    """Train a new model on `train` for `args.epochs`; resumable from `args.checkpoint`."""
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    dtype = amp_dtype(device, args.amp)
    model = create_model(
        config.arch, backbone=config.backbone, input_size=config.input_size, weights=args.weights
    ).to(device, memory_format=torch.channels_last)
    criterion = create_criterion(config.arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = max(1, _steps_per_epoch(len(train), args.batch_size) * args.epochs)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.15
    )
    generator = torch.Generator().manual_seed(args.seed)
    start_epoch, history = 0, []
    if args.resume and args.checkpoint is not None and args.checkpoint.exists():
        # On the CPU: the generator state must stay there; load_state_dict moves the rest.
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        logger.info("locator: resumed from %s at epoch %d", args.checkpoint, start_epoch)
    for epoch in range(start_epoch, args.epochs):
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
        )
        history.append({"epoch": epoch, **losses, "seconds": time.perf_counter() - started})
        logger.info("locator epoch %d: %s", epoch, history[-1])
        if args.checkpoint is not None:
            _save_checkpoint(
                args.checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "epoch": epoch,
                    "history": history,
                    "args": vars(args),
                },
            )
    return model, history


def model_files(
    model: nn.Module, config: LocatorConfig, metrics: dict, args: argparse.Namespace
) -> dict[str, bytes]:
    """The files of one registry version."""
    buffer = io.BytesIO()
    torch.save({k: v.cpu().contiguous() for k, v in model.state_dict().items()}, buffer)
    args_doc = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return {
        "weights.pt": buffer.getvalue(),
        "preprocess.json": config.to_json(),
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "args.json": json.dumps(args_doc, indent=2).encode(),
    }


def train_locator(
    records: Sequence[LabelRecord],
    catalog: ObjectStore,
    registry: ModelRegistry,
    *,
    args: argparse.Namespace | None = None,
    settings: Settings | None = None,
    snapshot_key: str | None = None,
) -> tuple[str, dict, bool]:
    """Train, evaluate on the test split, save and maybe promote a locator.

    records: the labels snapshot (images without a box are left out of this model only).
    Returns (version, metrics, promoted). metrics holds mean_iou, iou_50, iou_75 on the test
    split (and counts, the fallback share, timings). Raises `LocatorDataError` when the train
    or test split has no readable boxed image.
    """
    args = args or default_args()
    settings = settings or Settings()
    config = config_from_args(args)
    limits = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}
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
    model, history = fit(train, args, config)
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
    logger.info("locator %s: mean IoU %.3f, promoted=%s", version, metrics[METRIC], promoted)
    return version, metrics, promoted


def main(args: argparse.Namespace) -> int:
    """The job alone: export a labels snapshot, train, print a JSON summary."""
    from batch_jobs.snapshot import export_snapshot
    from shared.backends import build_ports

    settings = Settings.from_env()
    ports = build_ports(settings)
    key, records = export_snapshot(ports.labels, ports.artifacts)
    try:
        version, metrics, promoted = train_locator(
            records,
            ports.catalog,
            ModelRegistry(ports.artifacts),
            args=args,
            settings=settings,
            snapshot_key=key,
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
