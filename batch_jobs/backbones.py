"""One way to build a torchvision backbone and start it from pretrained weights, for every model
that has one (the facet model, the locator's resnet18 trunk, the similarity embedder).

`weights` is either
- a torchvision weights name such as `IMAGENET1K_V1` (or `ResNet18_Weights.IMAGENET1K_V1`),
  resolved with `torchvision.models.get_weight` and read from the torch hub cache, downloaded
  there first if it is not cached yet; or
- a file: a torchvision state dict of the same architecture (optionally under "state_dict").

Every failure is a `ConfigurationError` that says what to do: an unknown name lists the names
the architecture has, a failed download names the exact cache file torchvision expects and the
`--weights FILE` alternative (machines without network: CI, this project's dev boxes). The
classifier (`fc.*`) of a state dict is dropped: the models put their own heads on the trunk.
Files are read with `weights_only=True` (no pickled code runs).
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

CLASSIFIER_PREFIX = "fc."
FILE_SUFFIXES = (".pt", ".pth", ".bin")


def named_weights(arch: str, name: str) -> WeightsEnum | None:
    """The torchvision weights `name` of `arch` (`IMAGENET1K_V1`, `DEFAULT`, or the full
    `ResNet18_Weights.IMAGENET1K_V1`), or None when `name` is not a weights name (a file path).
    Raises ConfigurationError for a weights name `arch` does not have."""
    if (
        Path(name).is_file()
        or os.sep in name
        or "/" in name
        or Path(name).suffix.lower() in (".pt", ".pth", ".bin")
    ):
        return None
    try:
        enum = torchvision.models.get_model_weights(arch)
    except ValueError as exc:
        raise ConfigurationError(f"unknown architecture {arch!r}: {exc}") from exc
    short = name.rsplit(".", 1)[-1]
    if "." in name and name.split(".", 1)[0] != enum.__name__:
        return None  # some other dotted name: treat it as a file
    if not short.isupper() and short != "DEFAULT":
        return None
    try:
        return torchvision.models.get_weight(f"{enum.__name__}.{short}")
    except (ValueError, KeyError) as exc:
        known = ", ".join(w.name for w in enum)
        raise ConfigurationError(
            f"{arch} has no torchvision weights {name!r}; use one of {known}, or --weights FILE"
        ) from exc


def hub_cache_file(weights: WeightsEnum) -> Path:
    """Where torchvision keeps (and looks for) the file of `weights`: the torch hub cache
    (`$TORCH_HOME/hub/checkpoints/`, by default `~/.cache/torch/hub/checkpoints/`)."""
    name = os.path.basename(urlparse(weights.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def fetch_weights(weights: WeightsEnum, *, progress: bool = False) -> Path:
    """The cached file of `weights`, downloaded (hash-checked) when it is not there yet."""
    path = hub_cache_file(weights)
    if path.is_file():
        return path
    try:
        weights.get_state_dict(progress=progress, check_hash=True, weights_only=True)
    except Exception as exc:  # urllib, SSL, socket, hash mismatch: all mean "not downloaded"
        raise ConfigurationError(
            f"cannot download the {weights} weights ({type(exc).__name__}: {exc}). On a "
            f"machine without network, put the file {path.name} from {weights.url} at {path} "
            "(the torch hub cache torchvision reads), or pass it with --weights FILE"
        ) from exc
    return path


def resolve_weights(
    arch: str, weights: str | Path | None, *, progress: bool = False
) -> Path | None:
    """The state dict file that `weights` names for `arch` (a weights name is fetched into the
    hub cache first), or None for random initialisation. Call it early: it fails fast."""
    if weights is None or str(weights) == "":
        return None
    named = named_weights(arch, str(weights))
    if named is not None:
        return fetch_weights(named, progress=progress)
    path = Path(weights)
    if not path.is_file():
        raise ConfigurationError(
            f"--weights {weights}: no such file, and not a torchvision weights name of {arch} "
            f"(e.g. {next(iter(torchvision.models.get_model_weights(arch))).name})"
        )
    return path


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict file, tensors only."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(
            f"cannot read backbone weights {path}: {str(exc).splitlines()[0]}"
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ConfigurationError(f"{path} is not a state dict; pass a torchvision state dict")
    return dict(state)


def load_backbone(arch: str, weights: str | Path | None = None) -> nn.Module:
    """The torchvision model `arch` (e.g. "resnet18"), from `weights` (see the module
    docstring) or random. Its classifier keeps its random initialisation: callers replace it."""
    if arch not in torchvision.models.list_models():
        raise ConfigurationError(f"unknown torchvision architecture {arch!r}")
    backbone = torchvision.models.get_model(arch, weights=None)
    path = resolve_weights(arch, weights)
    if path is None:
        return backbone
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(CLASSIFIER_PREFIX)}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise ConfigurationError(
            f"{path} does not match {arch}: {str(exc).splitlines()[-1].strip()}; pass the "
            "torchvision state dict of the same architecture"
        ) from exc
    missing = [k for k in missing if not k.startswith(CLASSIFIER_PREFIX)]
    if missing or unexpected:
        raise ConfigurationError(
            f"{path} does not match {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}; "
            "pass the torchvision state dict of the same architecture"
        )
    log.info("%s initialised from %s", arch, path)
    return backbone
