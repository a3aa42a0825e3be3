"""Embedders: prepared dress crops in, unit vectors out, one per kind.

- `unsupervised`: the current facet model's pooled backbone features (`forward_features`),
  L2-normalized; its version is the facet model's.
- `supervised`: the `similarity` registry model (a triplet-trained `EmbeddingNet`); its
  preprocessing config is the facet model's it was trained with (same crop, same size).

Both take the uint8 crops `FacetTagger.prepare` makes, so the infer job decodes and locates each
photo once. `forward_with_features` runs the facet model once for both its probabilities and
its features.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from batch_jobs.engine import amp_dtype, autocast, pick_device
from batch_jobs.facets.preprocess import PreprocessConfig, to_model_input
from batch_jobs.similarity.model import load_embedding_net, unsupervised_embedding
from shared.registry import ModelKind, ModelRegistry

KIND = ModelKind.SIMILARITY.value
SUPERVISED, UNSUPERVISED = "supervised", "unsupervised"
METRIC = "test.supervised.recall_at_5"  # promotion: not worse on the test split


@dataclass
class Embedder:
    """One kind of embedding. `embed(prepared uint8 (N, 3, H, W)) -> float32 (N, D)`."""

    kind: str
    version: str | None
    config: PreprocessConfig
    network: nn.Module
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype | None = None

    def __post_init__(self) -> None:
        memory = torch.channels_last if self.config.channels_last else torch.contiguous_format
        self.network = self.network.to(self.device, memory_format=memory).eval()

    @torch.inference_mode()
    def embed(self, prepared: Tensor, batch_size: int = 128) -> np.ndarray:
        out = []
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size].to(self.device)
            inputs = to_model_input(batch, self.config)
            with autocast(self.device, self.dtype):
                vectors = self._forward(inputs)
            out.append(vectors.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def _forward(self, inputs: Tensor) -> Tensor:
        if self.kind == UNSUPERVISED:
            return unsupervised_embedding(self.network.forward_features(inputs))
        return self.network(inputs)


def unsupervised_embedder(tagger) -> Embedder:
    """The unsupervised embedder of a `FacetTagger` (shares its network)."""
    return Embedder(
        UNSUPERVISED, tagger.version, tagger.config, tagger.model, tagger.device, tagger.dtype
    )


def supervised_from_files(
    files: Mapping[str, bytes], version: str | None, *, device: str = "auto", amp: bool = True
) -> Embedder:
    args = json.loads(files["args.json"])
    state = torch.load(io.BytesIO(files["weights.pt"]), map_location="cpu", weights_only=True)
    target = pick_device(device)
    return Embedder(
        SUPERVISED,
        version,
        PreprocessConfig.from_json(files["preprocess.json"]),
        load_embedding_net(state, args),
        target,
        amp_dtype(target, amp),
    )


def supervised_from_registry(
    registry: ModelRegistry, version: str | None = None, *, device: str = "auto", amp: bool = True
) -> Embedder | None:
    """The similarity model `version` (default: the current one); None when there is none."""
    version = version or registry.current(KIND)
    if version is None:
        return None
    names = ("weights.pt", "preprocess.json", "args.json")
    files = {name: registry.read(KIND, version, name) for name in names}
    return supervised_from_files(files, version, device=device, amp=amp)


def load_embedders(registry: ModelRegistry, tagger, *, device: str = "auto") -> dict[str, Embedder]:
    """Every embedder available next to `tagger`: unsupervised always, supervised once one was
    promoted."""
    embedders = {UNSUPERVISED: unsupervised_embedder(tagger)}
    supervised = supervised_from_registry(registry, device=device)
    if supervised is not None:
        embedders[SUPERVISED] = supervised
    return embedders


@torch.inference_mode()
def forward_with_features(tagger, prepared: Tensor) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The facet probabilities `{facet: (N, C)}` and the unsupervised embeddings (N, F) of
    prepared crops, from one forward pass of the facet model."""
    inputs = to_model_input(prepared.to(tagger.device), tagger.config)
    with autocast(tagger.device, tagger.dtype):
        features = tagger.model.forward_features(inputs)
        logits = tagger.model.forward_head(features)
    probs = {f: torch.softmax(v.float(), dim=1).cpu().numpy() for f, v in logits.items()}
    return probs, unsupervised_embedding(features).cpu().numpy()
