"""The model registry: versioned model files in the artifacts ObjectStore (S3 or local).

Layout (`shared.keys`): `models/<kind>/<version>/<file>` holds a version's files (weights.pt,
taxonomy.json, preprocess.json, metrics.json, args.json) and `models/<kind>/current.json` points
at the promoted one: `{"version": V, "promoted_at": iso, "metric": name, "value": x}`.

Torch-free and bytes in/out, so it works on any ObjectStore and in any process. A version becomes
visible in `versions()` only once all its files are written (a `saved.json` marker written last),
so a job killed mid-save (a Spot interruption) never leaves a half model that could be promoted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.errors import NotFoundError
from shared.keys import MODELS_PREFIX, current_model_key, model_prefix
from shared.ports import ObjectStore

log = logging.getLogger(__name__)


class ModelKind(StrEnum):
    """What a registry model is for; its value names its folder under `models/`."""

    FACETS = "facets"
    LOCATOR = "locator"
    SIMILARITY = "similarity"


KINDS = tuple(kind.value for kind in ModelKind)
SAVED_MARKER = "saved.json"
METRICS_FILE = "metrics.json"
_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_stamp(now: datetime | None = None) -> str:
    """A sortable UTC timestamp like `20261128T031500Z` (versions, snapshot and run ids)."""
    return (now or datetime.now(UTC)).strftime(_STAMP_FORMAT)


def parse_stamp(stamp: str) -> datetime | None:
    """The time of a `utc_stamp` or `unique_stamp` id (`20261128T031500Z`, `...Z-01`), or None
    when `stamp` is not one."""
    try:
        return datetime.strptime(stamp[:16], _STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def unique_stamp(taken: Callable[[str], bool], now: datetime | None = None) -> str:
    """`utc_stamp()`, with a zero-padded suffix (`-01`, `-02`, ...) when that one is taken.

    The padding keeps lexical order equal to creation order for up to 99 ids a second.
    """
    base = utc_stamp(now)
    if not taken(base):
        return base
    for n in range(1, 100):
        candidate = f"{base}-{n:02d}"
        if not taken(candidate):
            return candidate
    raise RuntimeError(f"more than 99 ids created in the second {base}; wait a second and retry")


def lookup_metric(metrics: Mapping[str, Any], metric: str) -> float:
    """The number at a dotted path of a metrics document (`"test_macro_f1"`,
    `"splits.test.silhouette.macro_f1"`). Raises KeyError when it is absent or not a number."""
    node: Any = metrics
    for part in metric.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"metric {metric!r} not found (missing {part!r})")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise KeyError(f"metric {metric!r} is not a number: {node!r}")
    return float(node)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(KINDS)}")


def _check_name(name: str) -> None:
    if not name or "/" in name or name.startswith(".") or name == SAVED_MARKER:
        raise ValueError(f"bad model file name {name!r}: a plain file name like 'weights.pt'")


class ModelRegistry:
    """Save, list, read and promote model versions of each `ModelKind`."""

    def __init__(self, artifacts: ObjectStore):
        self.store = artifacts

    # -- versions -------------------------------------------------------------------------
    def new_version(self, kind: str) -> str:
        """A fresh, sortable version id for `kind` that no saved version uses."""
        _check_kind(kind)
        return unique_stamp(lambda v: self.store.exists(model_prefix(kind, v) + SAVED_MARKER))

    def save(self, kind: str, version: str, files: Mapping[str, bytes]) -> None:
        """Write a version's files, then its completion marker (so readers never see half)."""
        _check_kind(kind)
        if not files:
            raise ValueError("a model version needs at least one file")
        prefix = model_prefix(kind, version)
        for name, body in files.items():
            _check_name(name)
            self.store.put(prefix + name, bytes(body))
        marker = {"files": sorted(files), "saved_at": datetime.now(UTC).isoformat()}
        self.store.put(
            prefix + SAVED_MARKER, json.dumps(marker).encode(), content_type="application/json"
        )

    def versions(self, kind: str) -> list[str]:
        """Completely saved versions of `kind`, oldest first."""
        _check_kind(kind)
        root = f"{MODELS_PREFIX}{kind}/"
        found = {
            key[len(root) :].split("/", 1)[0]
            for key in self.store.list(root)
            if key.endswith("/" + SAVED_MARKER)
        }
        return sorted(found)

    def read(self, kind: str, version: str, name: str) -> bytes:
        """The bytes of one file of a version. `NotFoundError` names what exists instead."""
        _check_kind(kind)
        key = model_prefix(kind, version) + name
        try:
            return self.store.get(key).body
        except NotFoundError as exc:
            raise NotFoundError(
                f"no {name} in {kind} model {version} ({key}); "
                f"saved versions: {', '.join(self.versions(kind)) or 'none'}"
            ) from exc

    def read_json(self, kind: str, version: str, name: str) -> Any:
        return json.loads(self.read(kind, version, name))

    def metrics(self, kind: str, version: str) -> dict:
        """The metrics.json document of a version."""
        return self.read_json(kind, version, METRICS_FILE)

    # -- the current version ----------------------------------------------------------------
    def current_info(self, kind: str) -> dict | None:
        """The current.json document, or None when nothing was promoted yet."""
        _check_kind(kind)
        try:
            return json.loads(self.store.get(current_model_key(kind)).body)
        except NotFoundError:
            return None

    def current(self, kind: str) -> str | None:
        """The promoted version of `kind`, or None."""
        info = self.current_info(kind)
        return info["version"] if info else None

    def promote(
        self,
        kind: str,
        version: str,
        *,
        metric: str,
        higher_is_better: bool = True,
        force: bool = False,
    ) -> bool:
        """Make `version` current if its `metric` is not worse than the current version's.

        `metric` is a dotted path into metrics.json. Returns True when `version` is current
        afterwards. `force` promotes regardless (a rollback, or a deliberate change). When the
        current version has no such metric there is nothing to compare with: it is replaced.
        Two promotions racing are last-writer-wins (the ObjectStore has no conditional put).
        """
        _check_kind(kind)
        if version not in self.versions(kind):
            raise NotFoundError(f"cannot promote {kind} model {version}: it is not saved")
        value = lookup_metric(self.metrics(kind, version), metric)
        current = self.current(kind)
        if current == version:
            return True
        if current is not None and not force:
            try:
                best = lookup_metric(self.metrics(kind, current), metric)
            except (KeyError, NotFoundError):
                log.warning("current %s model %s has no %s: replacing it", kind, current, metric)
            else:
                worse = value < best if higher_is_better else value > best
                if worse:
                    log.info(
                        "not promoting %s %s: %s %.4f vs current %s %.4f",
                        kind,
                        version,
                        metric,
                        value,
                        current,
                        best,
                    )
                    return False
        pointer = {
            "version": version,
            "promoted_at": datetime.now(UTC).isoformat(),
            "metric": metric,
            "value": value,
        }
        self.store.put(
            current_model_key(kind), json.dumps(pointer).encode(), content_type="application/json"
        )
        return True
