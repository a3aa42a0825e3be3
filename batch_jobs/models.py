"""`create_model(kind, name, **kwargs)`: every network of the project built by its registry kind
and name, in the style of timm's `create_model` (one entry point, names listed by
`list_models(kind)`).

- `ModelKind.FACETS`: the torchvision ResNet-family backbones ("resnet18", "resnet50", ...);
  kwargs `heads={facet: n_classes}`, `stn`, `weights` (see `batch_jobs.facets.model`).
- `ModelKind.LOCATOR`: "patches" or "whole"; kwargs `backbone`, `input_size`, `weights` (see
  `batch_jobs.locator.model`).

Another kind (the similarity embedder) joins with `register_model`. Pretrained weights, for all
of them, go through `batch_jobs.backbones.load_backbone`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from shared.errors import ConfigurationError
from shared.registry import ModelKind


@dataclass(frozen=True)
class _Entry:
    names: Callable[[], Sequence[str]]
    build: Callable[..., nn.Module]


_ENTRIES: dict[ModelKind, _Entry] = {}


def register_model(
    kind: ModelKind, names: Callable[[], Sequence[str]], build: Callable[..., nn.Module]
) -> None:
    """Make `create_model(kind, name, **kwargs)` call `build(name, **kwargs)` for each name in
    `names()`. One builder per kind: registering a kind again replaces it."""
    _ENTRIES[ModelKind(kind)] = _Entry(names, build)


def list_models(kind: ModelKind | str) -> list[str]:
    """The names `create_model` accepts for `kind`."""
    return list(_entry(kind).names())


def create_model(kind: ModelKind | str, name: str, **kwargs) -> nn.Module:
    """A new network of `kind` called `name`. Raises ConfigurationError naming the accepted
    names when `name` is unknown."""
    entry = _entry(kind)
    names = list(entry.names())
    if name not in names:
        raise ConfigurationError(
            f"unknown {ModelKind(kind).value} model {name!r}; use one of {', '.join(names)}"
        )
    return entry.build(name, **kwargs)


def _entry(kind: ModelKind | str) -> _Entry:
    try:
        return _ENTRIES[ModelKind(kind)]
    except (KeyError, ValueError) as exc:
        known = ", ".join(k.value for k in _ENTRIES)
        raise ConfigurationError(f"no models of kind {kind!r}; kinds: {known}") from exc


# Registered after the functions above exist: the modules below (the locator package) import
# `create_model` from here themselves.
from batch_jobs.facets.model import backbone_names, create_facet_net  # noqa: E402
from batch_jobs.locator.model import ARCHS, create_locator  # noqa: E402

register_model(ModelKind.FACETS, backbone_names, create_facet_net)
register_model(ModelKind.LOCATOR, lambda: ARCHS, create_locator)
