"""The model registry: versions appear whole, promotion only when not worse, `force` overrides."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.embedded.files import LocalObjectStore
from shared.errors import NotFoundError
from shared.keys import current_model_key, model_prefix
from shared.registry import ModelRegistry, lookup_metric, unique_stamp


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(LocalObjectStore(tmp_path / "artifacts", name="artifacts"))


def _save(registry: ModelRegistry, version: str, f1: float, kind: str = "facets") -> None:
    metrics = {"test_macro_f1": f1, "splits": {"test": {"sleeve": {"macro_f1": f1}}}}
    registry.save(
        kind,
        version,
        {"weights.pt": b"w" + version.encode(), "metrics.json": json.dumps(metrics).encode()},
    )


def test_first_model_is_promoted_and_pointer_has_the_documented_shape(registry):
    _save(registry, "20260101T000000Z", 0.5)
    assert registry.current("facets") is None
    assert registry.promote("facets", "20260101T000000Z", metric="test_macro_f1")
    pointer = json.loads(registry.store.get(current_model_key("facets")).body)
    assert set(pointer) == {"version", "promoted_at", "metric", "value"}
    assert pointer["version"] == "20260101T000000Z" and pointer["value"] == 0.5
    assert registry.current("facets") == "20260101T000000Z"


def test_worse_model_is_refused_equal_or_better_promoted_force_overrides(registry):
    _save(registry, "v1", 0.80)
    _save(registry, "v2", 0.79)
    _save(registry, "v3", 0.80)
    _save(registry, "v4", 0.50)
    assert registry.promote("facets", "v1", metric="test_macro_f1")
    assert not registry.promote("facets", "v2", metric="test_macro_f1")
    assert registry.current("facets") == "v1"
    assert registry.promote("facets", "v3", metric="test_macro_f1")  # not worse: equal
    assert registry.current("facets") == "v3"
    assert registry.promote("facets", "v4", metric="test_macro_f1", force=True)
    assert registry.current("facets") == "v4"


def test_lower_is_better_metrics_and_dotted_paths(registry):
    _save(registry, "v1", 0.3, kind="locator")
    _save(registry, "v2", 0.4, kind="locator")
    path = "splits.test.sleeve.macro_f1"
    assert registry.promote("locator", "v1", metric=path, higher_is_better=False)
    assert not registry.promote("locator", "v2", metric=path, higher_is_better=False)
    assert registry.current("facets") is None  # kinds are independent


def test_versions_lists_only_completely_saved_versions_in_order(registry):
    _save(registry, "20260102T000000Z", 0.1)
    _save(registry, "20260101T000000Z", 0.1)
    # A job killed mid-save leaves files without the completion marker.
    registry.store.put(model_prefix("facets", "20260103T000000Z") + "weights.pt", b"half")
    assert registry.versions("facets") == ["20260101T000000Z", "20260102T000000Z"]
    with pytest.raises(NotFoundError):
        registry.promote("facets", "20260103T000000Z", metric="test_macro_f1")


def test_read_returns_bytes_and_explains_a_missing_file(registry):
    _save(registry, "v1", 0.5)
    assert registry.read("facets", "v1", "weights.pt") == b"wv1"
    assert registry.metrics("facets", "v1")["test_macro_f1"] == 0.5
    with pytest.raises(NotFoundError, match="saved versions: v1"):
        registry.read("facets", "v1", "taxonomy.json")


def test_bad_kind_and_file_names_are_refused(registry):
    with pytest.raises(ValueError, match="unknown model kind"):
        registry.current("similarity-typo")
    with pytest.raises(ValueError, match="plain file name"):
        registry.save("facets", "v1", {"../escape.pt": b"x"})


def test_new_versions_are_unique_and_sortable(registry):
    now = datetime(2026, 11, 28, 3, 15, tzinfo=UTC)
    taken = {"20261128T031500Z", "20261128T031500Z-01"}
    assert unique_stamp(taken.__contains__, now) == "20261128T031500Z-02"
    assert sorted(["20261128T031500Z-10", "20261128T031500Z-02"])[0].endswith("-02")
    first = registry.new_version("facets")
    _save(registry, first, 0.1)
    assert registry.new_version("facets") > first


def test_lookup_metric_rejects_missing_and_non_numbers():
    assert lookup_metric({"a": {"b": 1}}, "a.b") == 1.0
    with pytest.raises(KeyError):
        lookup_metric({"a": {"b": "x"}}, "a.b")
    with pytest.raises(KeyError):
        lookup_metric({"a": {}}, "a.b")
