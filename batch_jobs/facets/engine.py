"""The facet model's part of the epoch loop (`facet_loss`, for `batch_jobs.engine`) and batched
prediction, on CPU or GPU, with automatic mixed precision (`batch_jobs.engine.amp_dtype`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from batch_jobs.engine import LossFn, autocast
from batch_jobs.facets.preprocess import PreprocessConfig, to_model_input


def facet_loss(
    criterion: nn.Module,
    config: PreprocessConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    keep: Callable[[dict[str, Tensor]], None] | None = None,
    record: Callable[[Tensor, dict[str, Tensor]], None] | None = None,
) -> LossFn:
    """The facet model's `compute_loss` for `batch_jobs.engine`: a batch of uint8 images and
    (N, F) targets (and, from an indexed `TensorImages`, the rows) -> the masked,
    class-weighted loss (computed in float32). `keep` receives the float32 logits (validation
    keeps the predictions); `record` the rows and the logits, detached (the training
    dynamics)."""

    def compute(model: nn.Module, batch: tuple[Tensor, ...]) -> tuple[Tensor, dict, int]:
        images, targets, *rows = batch
        inputs = to_model_input(images.to(device, non_blocking=True), config)
        with autocast(device, dtype):
            logits = model(inputs)
        logits = {f: v.float() for f, v in logits.items()}
        if keep is not None:
            keep(logits)
        if record is not None and rows:
            record(rows[0], {f: v.detach() for f, v in logits.items()})
        return criterion(logits, targets.to(device, non_blocking=True)), {}, len(images)

    return compute


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
