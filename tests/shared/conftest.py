"""Fixtures of the store contract suites: a serialized DynamoDB client and an upload record."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from shared.records import LabelRecord


class AtomicCalls:
    """A boto3 client whose calls run one at a time.

    moto applies a conditional write in several Python steps without a lock; DynamoDB applies it
    atomically. Serializing calls gives moto the service's atomicity, so the concurrency tests
    check our optimistic locking, not moto's thread safety.
    """

    def __init__(self, client: Any):
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name in ("get_paginator", "get_waiter") or not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


def catalog_record(image_id: str = "p1/front", **changes: Any) -> LabelRecord:
    """An upload as the ingest handler builds it: catalog labels, no version yet."""
    fields: dict[str, Any] = {
        "image_id": image_id,
        "product_id": image_id.split("/")[0],
        "object_key": f"catalog/{image_id}.jpg",
        "split": "train",
        "facets": {"silhouette": "a-line", "neckline": "v-neck", "sleeve": None},
        "bbox": (1.5, 2.0, 30.25, 40.0),
    }
    return LabelRecord(**{**fields, **changes})


@pytest.fixture(scope="session")
def atomic_calls():
    """`atomic_calls(client)`: `client` with its calls serialized (see `AtomicCalls`)."""
    return AtomicCalls


@pytest.fixture(name="catalog_record", scope="session")
def catalog_record_fixture():
    """`catalog_record(image_id="p1/front", **changes)`: see `catalog_record`."""
    return catalog_record
