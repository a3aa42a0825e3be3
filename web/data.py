"""What the views show, computed from the ports: plain dicts and lists, so every HTML page has
a JSON twin with the same content.

Everything is in taxonomy order. Figures come from the registry's metrics.json (as evaluated);
image lists (confusion cells, errors) from the stored predictions of that version and today's
labels. Scans are cached per process: a page of a 10,000-image catalog must not parse every
record again. Labels, tasks and the current version for `CACHE_TTL_S`; a version's predictions
(written once by its evaluation) and the suspicious-label ranking (seconds of work) for
`SLOW_CACHE_TTL_S`. A label or task changed through this app drops every cache at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from shared.errors import NotFoundError
from shared.ports import Ports
from shared.records import LabelRecord, LabelSource, PredictionRecord
from shared.registry import ModelKind, ModelRegistry
from shared.tasks import RelabelTask

if TYPE_CHECKING:  # the ranking (numpy) is imported by the review queue only, on first use
    from shared.relabel import SuspiciousLabel

SPLITS = ("train", "test")
GRID_PAGE = 48
TABLE_PAGE = 50
CACHE_TTL_S = 10.0
SLOW_CACHE_TTL_S = 60.0
ERROR_KINDS = {"fn": "false negatives", "fp": "false positives"}
# The figure each kind's versions are compared on (as `dressvision models list`).
KIND_METRIC = {"facets": "test_macro_f1", "locator": "mean_iou"}

SIMILAR_K = 8
SIMILAR_OTHER_K = 4

T = TypeVar("T")


class SimilarQuery(Protocol):
    """Dresses like `image_id`, best first: `{"results": [{"image_id", "score", "facets"}]}`.
    `differ=[(facet, None)]`: only those whose `facet` differs from the image's. Raises
    `NotFoundError` when the image is not in the similarity index. The composition root binds
    it to the similarity index (`shared.similarity.similar`); without one, the image page has
    no similar-dresses section."""

    def __call__(
        self, image_id: str, *, k: int, differ: Sequence[tuple[str, str | None]] = ()
    ) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Page:
    items: list
    page: int
    pages: int
    total: int

    def to_json(self) -> dict:
        return {"page": self.page, "pages": self.pages, "total": self.total}


def paginate(items: Sequence[T], page: int, size: int) -> Page:
    pages = max(1, math.ceil(len(items) / size))
    page = min(max(1, page), pages)
    return Page(list(items[(page - 1) * size : page * size]), page, pages, len(items))


class _TtlCache:
    """name -> (value, time); values older than the TTL are recomputed."""

    def __init__(self, ttl_s: float, slow_ttl_s: float):
        self.ttl_s = ttl_s
        self.slow_ttl_s = slow_ttl_s
        self._values: dict[Any, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T], *, slow: bool = False) -> T:
        """The cached value of `key`, computed again once older than the TTL (`slow`: the
        longer TTL, for expensive values that rarely change)."""
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
        ttl = self.slow_ttl_s if slow else self.ttl_s
        if hit is not None and now - hit[1] < ttl:
            return hit[0]
        value = compute()
        with self._lock:
            self._values[key] = (value, now)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


@dataclass(frozen=True)
class Scored:
    """An image in a grid: its record and the model's prediction of one facet."""

    record: LabelRecord
    predicted: str
    confidence: float  # p(predicted)
    prob_of: float  # p(the class the grid is about)

    def to_json(self, facet: str) -> dict:
        return {
            "image_id": self.record.image_id,
            "label": self.record.facets.get(facet),
            "predicted": self.predicted,
            "confidence": round(self.confidence, 4),
        }


class WebData:
    def __init__(
        self,
        ports: Ports,
        *,
        cache_ttl_s: float = CACHE_TTL_S,
        slow_cache_ttl_s: float | None = None,
    ):
        self.ports = ports
        self.taxonomy = ports.taxonomy
        self.registry = ModelRegistry(ports.artifacts)
        slow = SLOW_CACHE_TTL_S if slow_cache_ttl_s is None else slow_cache_ttl_s
        self._cache = _TtlCache(cache_ttl_s, max(slow, cache_ttl_s))
        self._metrics: dict[tuple[str, str], dict] = {}  # a saved version's metrics never change

    # -- caches -----------------------------------------------------------------------------
    def changed(self) -> None:
        """A label or task changed through the app: drop cached scans."""
        self._cache.clear()

    def labels(self) -> list[LabelRecord]:
        return self._cache.get("labels", lambda: sorted(self.ports.labels.scan(), key=_by_id))

    def predictions(self, version: str) -> dict[str, PredictionRecord]:
        def load() -> dict[str, PredictionRecord]:
            return {p.image_id: p for p in self.ports.predictions.for_model(version)}

        return self._cache.get(("predictions", version), load, slow=True)

    def metrics(self, kind: str, version: str) -> dict:
        key = (kind, version)
        if key not in self._metrics:
            self._metrics[key] = self.registry.metrics(kind, version)
        return self._metrics[key]

    def current(self, kind: str = ModelKind.FACETS) -> str | None:
        return self._cache.get(("current", kind), lambda: self.registry.current(kind))

    def versions(self, kind: str) -> list[str]:
        return self._cache.get(("versions", kind), lambda: self.registry.versions(kind))

    # -- models -----------------------------------------------------------------------------
    def models(self) -> list[dict]:
        """Per kind: every version, oldest first, with its figures and which one is current."""
        kinds = []
        for kind in ModelKind:
            current = self.current(kind)
            rows = []
            for version in self.versions(kind):
                try:
                    metrics = self.metrics(kind, version)
                except NotFoundError:
                    metrics = {}
                rows.append(
                    {
                        "version": version,
                        "current": version == current,
                        "metric": KIND_METRIC.get(kind),
                        "value": _number(metrics.get(KIND_METRIC.get(kind, ""))),
                        "facets": self._facet_f1(metrics) if kind == ModelKind.FACETS else {},
                    }
                )
            kinds.append({"kind": kind.value, "current": current, "versions": rows})
        return kinds

    def _facet_f1(self, metrics: dict) -> dict[str, dict[str, float | None]]:
        splits = metrics.get("splits") or {}
        return {
            facet: {
                split: _number((splits.get(split) or {}).get(facet, {}).get("macro_f1"))
                for split in SPLITS
            }
            for facet in self.taxonomy.facet_names
        }

    # -- figures ----------------------------------------------------------------------------
    def facet_report(self, version: str, facet: str, split: str) -> dict:
        self.taxonomy.labels(facet)
        report = (self.metrics(ModelKind.FACETS, version).get("splits") or {}).get(split, {})
        if facet not in report:
            raise NotFoundError(f"model {version} has no {split} figures for {facet!r}")
        return report[facet]

    def f1(self, version: str, facet: str) -> dict:
        labels = self.taxonomy.labels(facet)
        splits = {}
        for split in SPLITS:
            report = self.facet_report(version, facet, split)
            splits[split] = {
                "macro_f1": report["macro_f1"],
                "accuracy": report.get("accuracy"),
                "per_class": [{"label": lb, **report["per_class"][lb]} for lb in labels],
            }
        return {"version": version, "facet": facet, "labels": list(labels), "splits": splits}

    def confusion(self, version: str, facet: str, split: str) -> dict:
        report = self.facet_report(version, facet, split)
        labels = list(self.taxonomy.labels(facet))
        return {
            "version": version,
            "facet": facet,
            "split": split,
            "labels": labels,
            "matrix": report["confusion"],
        }

    # -- image lists ------------------------------------------------------------------------
    def _scored(self, version: str, facet: str, split: str, about: str) -> Iterable[Scored]:
        """Today's labelled images of `split` with the model's prediction of `facet`."""
        labels = self.taxonomy.labels(facet)
        about_index = self.taxonomy.index(facet, about)
        predictions = self.predictions(version)
        for record in self.labels():
            prediction = predictions.get(record.image_id)
            if record.split != split or prediction is None or facet not in prediction.facets:
                continue
            facet_prediction = prediction.facets[facet]
            if len(facet_prediction.probs) != len(labels):
                continue
            yield Scored(
                record,
                facet_prediction.label,
                facet_prediction.prob,
                facet_prediction.probs[about_index],
            )

    def cell(
        self, version: str, facet: str, split: str, true: str, predicted: str, page: int
    ) -> Page:
        """Images labelled `true` that the model predicts as `predicted`, surest first."""
        self.taxonomy.index(facet, predicted)
        items = [
            s
            for s in self._scored(version, facet, split, predicted)
            if s.record.facets.get(facet) == true and s.predicted == predicted
        ]
        items.sort(key=lambda s: (-s.confidence, s.record.image_id))
        return paginate(items, page, GRID_PAGE)

    def errors(
        self, version: str, facet: str, label: str, kind: str, split: str, page: int
    ) -> Page:
        """False negatives (labelled `label`, predicted otherwise; the model's surest mistakes
        first) or false positives (predicted `label`, labelled otherwise; surest first)."""
        if kind not in ERROR_KINDS:
            raise NotFoundError(f"unknown error kind {kind!r}; use fn or fp")
        scored = self._scored(version, facet, split, label)
        if kind == "fn":
            items = [
                s for s in scored if s.record.facets.get(facet) == label and s.predicted != label
            ]
        else:
            items = [
                s
                for s in scored
                if s.predicted == label and s.record.facets.get(facet) not in (None, label)
            ]
        items.sort(key=lambda s: (-s.confidence, s.record.image_id))
        return paginate(items, page, GRID_PAGE)

    # -- catalog ----------------------------------------------------------------------------
    def catalog(
        self,
        *,
        split: str = "",
        facet: str = "",
        label: str = "",
        source: str = "",
        status: str = "",
        page: int = 1,
    ) -> Page:
        if facet:
            self.taxonomy.labels(facet)
            if label:
                self.taxonomy.index(facet, label)
        items = []
        for record in self.labels():
            if split and record.split != split:
                continue
            if status and record.status != status:
                continue
            if facet and label and record.facets.get(facet) != label:
                continue
            if source:
                names = [facet] if facet else list(record.facets)
                if not any(
                    record.facets.get(n) is not None
                    and record.sources.get(n, LabelSource.CATALOG) == source
                    for n in names
                ):
                    continue
            items.append(record)
        return paginate(items, page, TABLE_PAGE)

    # -- one image --------------------------------------------------------------------------
    def image(self, image_id: str) -> dict:
        record = self.ports.labels.get(image_id)
        if record is None:
            raise NotFoundError(f"no image {image_id!r} in the catalog")
        version = self.current()
        prediction = self.ports.predictions.get(image_id, version) if version else None
        tasks = sorted(
            (t for t in self.tasks() if t.image_id == image_id),
            key=lambda t: (t.created_at, t.task_id),
        )
        return {
            "record": record,
            "events": self.ports.labels.events(image_id),
            "model_version": version,
            "prediction": prediction,
            "tasks": tasks,
        }

    def similar(self, query: SimilarQuery, image_id: str) -> dict:
        """`{"same": [...], "other": {facet: [...]}}`, or `{"missing": reason}` when the image
        is not in the similarity index."""
        try:
            same = list(query(image_id, k=SIMILAR_K)["results"])
            other = {
                facet: list(query(image_id, k=SIMILAR_OTHER_K, differ=[(facet, None)])["results"])
                for facet in self.taxonomy.facet_names
            }
        except NotFoundError as exc:
            return {"missing": str(exc.args[0]) if exc.args else str(exc)}
        return {"same": same, "other": other}

    def tasks(self) -> list[RelabelTask]:
        return self._cache.get("tasks", lambda: list(self.ports.tasks.list()))

    # -- review queue -----------------------------------------------------------------------
    def review_queue(self) -> list[dict]:
        """Open tasks for the internal workforce and tasks escalated to staff, then suspicious
        labels not yet asked about, surest first."""
        tasks = [
            t
            for t in self.tasks()
            if (t.status == "open" and t.provider == "internal") or t.status == "escalated"
        ]
        tasks.sort(key=lambda t: (t.status != "escalated", -t.confidence, t.task_id))
        queue: list[dict] = [
            {"kind": "task", "image_id": t.image_id, "facet": t.facet, "task": t} for t in tasks
        ]
        asked = {(t.image_id, t.facet) for t in tasks}
        queue += [
            {"kind": "suspicious", "image_id": s.image_id, "facet": s.facet, "suspect": s}
            for s in self.suspicious()
            if (s.image_id, s.facet) not in asked
        ]
        return queue

    def suspicious(self) -> list[SuspiciousLabel]:
        from shared.relabel import find_suspicious

        version = self.current()
        if version is None:
            return []
        return self._cache.get(
            ("suspicious", version), lambda: find_suspicious(self.ports, version), slow=True
        )


def _by_id(record: LabelRecord) -> str:
    return record.image_id


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
