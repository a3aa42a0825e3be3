"""Training dynamics: each training image's predicted probabilities, averaged over the epochs.

A network learns the patterns most of the labels share before it memorises the rest, and a wrong
label is one it can only memorise: averaged over the run, the probability it gives an image's
given label is high for a right label and low for a wrong one, on the full data set and at no
extra training (the forward pass computes these logits anyway). This is the signal of Dataset
Cartography (Swayamdipta et al., EMNLP 2020: "confidence", the mean probability of the given
label over the epochs) and of the Area Under the Margin (Pleiss et al., NeurIPS 2020), both
made to find mislabelled examples. The relabel loop judges the train split's labels with these
means (shared/relabel.py) where the cross-validated fold models it used before judged with
models trained on half the data, which fall off a cliff on the fine facets
(bench/results/judge_options.json has both, measured).

The probabilities are of augmented views (the training transform), as each epoch saw them.
An image that a `drop_last` batch left out of an epoch is averaged over the epochs it was in.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor


class TrainingDynamics:
    """Running sums of softmax probabilities per training row and facet over the epochs
    `start` <= epoch < `end` (0-based; end None: to the last); `record` is the `facet_loss`
    hook, `end_epoch` closes an epoch."""

    def __init__(
        self, heads: Mapping[str, int], rows: int, *, start: int = 0, end: int | None = None
    ):
        if rows < 0 or start < 0:
            raise ValueError(f"rows and start must be >= 0, got {rows} and {start}")
        if end is not None and end <= start:
            raise ValueError(f"the window must hold an epoch: start {start}, end {end}")
        self.start, self.end = start, end
        self.sums = {f: torch.zeros(rows, k, dtype=torch.float64) for f, k in heads.items()}
        self.counts = torch.zeros(rows, dtype=torch.float64)
        self._epoch = {f: torch.zeros(rows, k, dtype=torch.float64) for f, k in heads.items()}
        self._seen = torch.zeros(rows, dtype=torch.bool)

    def record(self, rows: Tensor, logits: Mapping[str, Tensor]) -> None:
        rows = rows.cpu()
        for facet, values in logits.items():
            if facet in self._epoch:
                self._epoch[facet][rows] = torch.softmax(values.float(), dim=1).cpu().double()
        self._seen[rows] = True

    def end_epoch(self, epoch: int) -> None:
        """Add the epoch that just ended (0-based `epoch`) when it is in the window."""
        if self.start <= epoch and (self.end is None or epoch < self.end):
            for facet, probs in self._epoch.items():
                self.sums[facet][self._seen] += probs[self._seen]
            self.counts[self._seen] += 1
        for probs in self._epoch.values():
            probs.zero_()
        self._seen.zero_()

    def mean(self) -> dict[str, np.ndarray]:
        """`{facet: float32 (rows, K)}`: each row's mean probabilities (uniform where no epoch
        of the window saw the row)."""
        out = {}
        seen = self.counts > 0
        for facet, sums in self.sums.items():
            probs = torch.full_like(sums, 1.0 / sums.shape[1])
            probs[seen] = sums[seen] / self.counts[seen, None]
            out[facet] = probs.float().numpy()
        return out

    def state_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "sums": self.sums, "counts": self.counts}

    def load_state_dict(self, state: Mapping) -> None:
        if set(state["sums"]) != set(self.sums) or state["counts"].shape != self.counts.shape:
            raise ValueError("these training dynamics belong to another data set or model")
        self.start, self.end = int(state["start"]), state["end"]
        self.sums = {f: v.clone() for f, v in state["sums"].items()}
        self.counts = state["counts"].clone()
