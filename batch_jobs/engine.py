"""The epoch loop both trainings share (the facet model and the locator), in the shape of
torchvision's classification references: `train_one_epoch` and `evaluate`, plus the device and
automatic mixed precision choice: bfloat16 autocast on CPUs with native bf16 (AVX512-BF16/AMX)
and on GPUs that support it, float16 with a gradient scaler on older GPUs, float32 otherwise.

What differs between the models is one function, `compute_loss(model, batch) -> (loss,
parts, n)`: it moves the batch to the device, runs the network (under `autocast`) and returns
the scalar loss, any named parts of it to report (floats) and the batch's number of samples.
The loops do the rest the same way for both: optimizer and scheduler steps per batch, the
gradient scaler, the weights' moving average, the divergence check, the progress bar (tqdm,
only when `progress`), and per-sample means of the loss and its parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

LossFn = Callable[[nn.Module, Any], tuple[Tensor, dict[str, float], int]]


def pick_device(name: str = "auto") -> torch.device:
    """ "auto": the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """The autocast dtype for `device`, or None for plain float32."""
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        # Without native bf16 the CPU emulates it and autocast is slower than float32.
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


class _Means:
    """Per-sample means of the loss and its parts over an epoch."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.seen = 0

    def add(self, loss: float, parts: dict[str, float], n: int) -> None:
        for name, value in {"loss": loss, **parts}.items():
            self.totals[name] = self.totals.get(name, 0.0) + value * n
        self.seen += n

    def result(self) -> dict[str, float]:
        return {name: value / max(self.seen, 1) for name, value in self.totals.items()}


def train_one_epoch(
    model: nn.Module,
    compute_loss: LossFn,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batches: Iterable,
    *,
    scaler: torch.amp.GradScaler | None = None,
    ema: AveragedModel | None = None,
    epoch: int = 0,
    progress: bool = False,
    total: int | None = None,
    desc: str = "epoch",
) -> dict[str, float]:
    """One pass over `batches`; the scheduler steps and `ema` (an exponential moving average
    of the weights) follows every batch. Returns `{"loss": mean, **parts}` (per-sample means).
    Raises FloatingPointError if the loss diverges."""
    model.train()
    means = _Means()
    bar = tqdm(
        batches,
        total=total,
        desc=f"{desc} {epoch + 1}",
        unit="batch",
        disable=not progress,
        leave=False,
    )
    for batch in bar:
        loss, parts, n = compute_loss(model, batch)
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"the loss became {value} in epoch {epoch + 1}; lower --lr and retry"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        means.add(value, parts, n)
        bar.set_postfix(
            loss=f"{means.result()['loss']:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}"
        )
    return means.result()


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    compute_loss: LossFn,
    batches: Iterable,
    *,
    progress: bool = False,
    total: int | None = None,
    desc: str = "validate",
) -> dict[str, float]:
    """The per-sample mean loss (and parts) of `model` in eval mode over `batches`; nothing is
    updated. `compute_loss` may also keep what it needs of the outputs (predictions)."""
    model.eval()
    means = _Means()
    for batch in tqdm(
        batches, total=total, desc=desc, unit="batch", disable=not progress, leave=False
    ):
        loss, parts, n = compute_loss(model, batch)
        means.add(loss.item(), parts, n)
    return means.result()
