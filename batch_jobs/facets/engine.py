"""One epoch of training and batched prediction, on CPU or GPU, with automatic mixed precision:
bfloat16 autocast on CPUs with native bf16 (AVX512-BF16/AMX) and on GPUs that support it,
float16 with a gradient scaler on older GPUs, float32 otherwise."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader
from tqdm import tqdm

from batch_jobs.facets.preprocess import PreprocessConfig, to_model_input


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


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader: DataLoader,
    config: PreprocessConfig,
    device: torch.device,
    *,
    dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None = None,
    ema: AveragedModel | None = None,
    epoch: int = 0,
    progress: bool = False,
) -> float:
    """Train for one pass over `loader` (uint8 images, (N, F) targets); the scheduler steps
    and `ema` (an exponential moving average of the weights) follows every batch. Returns the
    mean loss. Raises FloatingPointError if the loss diverges."""
    model.train()
    total, seen = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", disable=not progress, leave=False)
    for images, targets in bar:
        inputs = to_model_input(images.to(device, non_blocking=True), config)
        targets = targets.to(device, non_blocking=True)
        with autocast(device, dtype):
            logits = model(inputs)
        loss = criterion({f: v.float() for f, v in logits.items()}, targets)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"the loss became {loss.item()} in epoch {epoch + 1}; lower --lr and retry"
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
        total += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total / seen:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
    return total / max(seen, 1)


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    images: Tensor,
    config: PreprocessConfig,
    device: torch.device,
    *,
    dtype: torch.dtype | None,
    batch_size: int = 128,
    progress: bool = False,
    desc: str = "predict",
) -> dict[str, np.ndarray]:
    """Class probabilities `{facet: float32 (M, C)}` for uint8 images `(M, 3, H, W)`."""
    model.eval()
    outputs: dict[str, list[np.ndarray]] = {}
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress, leave=False):
        batch = to_model_input(images[start : start + batch_size].to(device), config)
        for facet, probs in forward_probs(model, batch, device, dtype).items():
            outputs.setdefault(facet, []).append(probs.cpu().numpy())
    heads: Mapping[str, nn.Module] = model.heads  # type: ignore[assignment]
    return {
        facet: np.concatenate(outputs[facet])
        if facet in outputs
        else np.zeros((0, heads[facet].out_features), np.float32)
        for facet in heads
    }


def forward_probs(
    model: nn.Module, inputs: Tensor, device: torch.device, dtype: torch.dtype | None
) -> dict[str, Tensor]:
    """Softmax probabilities (float32) per facet for a normalised batch."""
    with autocast(device, dtype):
        logits = model(inputs)
    return {facet: torch.softmax(v.float(), dim=1) for facet, v in logits.items()}
