"""The facet taxonomy: facets and their classes in a custom, meaningful order.

The order is the model's output order and the order every view shows, so it is data (a YAML
file), not code. `DRESSVISION_TAXONOMY` names another file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from shared.env import TAXONOMY_PATH
from shared.errors import TaxonomyError, UnknownLabelError

DEFAULT_TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")


@dataclass(frozen=True)
class Taxonomy:
    """Facet name -> ordered class labels. Facets keep their file order too."""

    facets: Mapping[str, tuple[str, ...]]
    _index: dict[str, dict[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.facets:
            raise TaxonomyError("the taxonomy has no facets")
        index: dict[str, dict[str, int]] = {}
        for facet, labels in self.facets.items():
            if len(labels) < 2:
                raise TaxonomyError(f"facet {facet!r} needs at least two classes")
            if len(set(labels)) != len(labels):
                raise TaxonomyError(f"facet {facet!r} lists a class twice")
            index[facet] = {label: i for i, label in enumerate(labels)}
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Taxonomy:
        """Build from `{"facets": {name: [labels...]}}` (the YAML file's shape)."""
        facets = data.get("facets") if isinstance(data, Mapping) else None
        if not isinstance(facets, Mapping):
            raise TaxonomyError("the taxonomy needs a 'facets' mapping of facet -> [labels]")
        parsed: dict[str, tuple[str, ...]] = {}
        for name, labels in facets.items():
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise TaxonomyError(f"facet {name!r} must map to a list of label strings")
            parsed[str(name)] = tuple(labels)
        return cls(parsed)

    @classmethod
    def from_file(cls, path: str | Path) -> Taxonomy:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise TaxonomyError(f"cannot read taxonomy {path}: {exc}") from exc
        return cls.from_mapping(data)

    def to_mapping(self) -> dict[str, dict[str, list[str]]]:
        return {"facets": {f: list(labels) for f, labels in self.facets.items()}}

    @property
    def facet_names(self) -> tuple[str, ...]:
        return tuple(self.facets)

    def labels(self, facet: str) -> tuple[str, ...]:
        try:
            return self.facets[facet]
        except KeyError:
            raise UnknownLabelError("facet", facet, list(self.facets)) from None

    def index(self, facet: str, label: str) -> int:
        """The class index of `label` in `facet` (the model's output position)."""
        self.labels(facet)
        try:
            return self._index[facet][label]
        except KeyError:
            raise UnknownLabelError(facet, label, self.facets[facet]) from None

    def validate(self, facet: str, label: str | None) -> str | None:
        """Return the label if the taxonomy allows it (None means unknown); raise otherwise."""
        if label is None:
            self.labels(facet)
            return None
        self.index(facet, label)
        return label


@cache
def _load(path: str) -> Taxonomy:
    return Taxonomy.from_file(path)


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The taxonomy from `path`, else `$DRESSVISION_TAXONOMY`, else the packaged default."""
    chosen = path or os.environ.get(TAXONOMY_PATH) or DEFAULT_TAXONOMY_FILE
    return _load(str(Path(chosen).resolve()))
