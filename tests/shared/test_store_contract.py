"""One contract for every LabelStore and PredictionStore adapter: SQLite and DynamoDB (moto).

Each `backend.labels()` / `backend.predictions()` call opens a new store on the same state, the
way another process or Lambda would. Pages are 2 items long so scans and queries paginate.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from shared.aws import dynamodb
from shared.aws.dynamodb import DynamoDBLabelStore, DynamoDBPredictionStore, create_tables
from shared.embedded import sqlite
from shared.embedded.sqlite import SqliteLabelStore, SqlitePredictionStore
from shared.errors import ConfigurationError, ConflictError, NotFoundError, StoreThrottledError
from shared.ports import LabelStore, PredictionStore, RegisterOutcome
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord

IMAGE = "p1/front"
CATALOG, STAFF, CROWD = LabelSource.CATALOG, LabelSource.STAFF, LabelSource.CROWD


@dataclass
class Backend:
    labels: Callable[[], LabelStore]
    predictions: Callable[[], PredictionStore]


@pytest.fixture(params=["sqlite", "dynamodb"])
def backend(atomic_calls, request, tmp_path, monkeypatch, aws_env) -> Iterator[Backend]:
    monkeypatch.setattr(sqlite, "PAGE_SIZE", 2)
    monkeypatch.setattr(dynamodb, "PAGE_SIZE", 2)
    if request.param == "sqlite":
        db = tmp_path / "state.db"
        yield Backend(lambda: SqliteLabelStore(db), lambda: SqlitePredictionStore(db))
        return
    with mock_aws():
        client = atomic_calls(boto3.client("dynamodb"))
        create_tables(client, "Labels", "Predictions")
        yield Backend(
            lambda: DynamoDBLabelStore("Labels", client=client),
            lambda: DynamoDBPredictionStore("Predictions", client=client),
        )


def change(event) -> tuple:
    return (event.facet, event.old, event.new, event.source, event.version)


# --- registration -------------------------------------------------------------------------


def test_register_new_image_creates_version_1_with_an_event_per_known_facet(
    catalog_record, backend
):
    labels = backend.labels()
    outcome, stored = labels.register(catalog_record())

    assert outcome is RegisterOutcome.CREATED
    assert stored.version == 1
    assert labels.get(IMAGE) == stored
    assert sorted(change(e) for e in labels.events(IMAGE)) == [
        ("neckline", None, "v-neck", CATALOG, 1),
        ("silhouette", None, "a-line", CATALOG, 1),
    ]


def test_register_identical_upload_again_is_unchanged_and_writes_nothing(catalog_record, backend):
    labels = backend.labels()
    _, first = labels.register(catalog_record())

    outcome, again = labels.register(catalog_record())

    assert outcome is RegisterOutcome.UNCHANGED
    assert again == first
    assert labels.get(IMAGE) == first  # same version, same updated_at
    assert len(labels.events(IMAGE)) == 2


def test_register_changed_catalog_label_updates_and_records_an_event(catalog_record, backend):
    labels = backend.labels()
    labels.register(catalog_record())

    outcome, stored = labels.register(
        catalog_record(facets={"silhouette": "sheath", "neckline": "v-neck"})
    )

    assert outcome is RegisterOutcome.UPDATED
    assert stored.version == 2
    assert labels.get(IMAGE) == stored
    assert stored.facets["silhouette"] == "sheath"
    assert change(labels.events(IMAGE)[-1]) == ("silhouette", "a-line", "sheath", CATALOG, 2)


def test_register_never_changes_the_split_nor_a_label_set_by_people(catalog_record, backend):
    labels = backend.labels()
    _, original = labels.register(catalog_record())
    labels.update_label(IMAGE, "neckline", "crew", source=STAFF, expected_version=1)
    labels.update_label(IMAGE, "sleeve", "long", source=CROWD, expected_version=2)

    outcome, stored = labels.register(
        catalog_record(
            split="test", facets={"silhouette": "sheath", "neckline": "halter", "sleeve": "short"}
        )
    )

    assert outcome is RegisterOutcome.UPDATED
    assert labels.get(IMAGE) == stored
    assert stored.split == "train"
    assert stored.created_at == original.created_at
    assert stored.facets == {"silhouette": "sheath", "neckline": "crew", "sleeve": "long"}
    assert stored.sources["neckline"] is STAFF and stored.sources["sleeve"] is CROWD


def first_get_returns(store: LabelStore, stale: LabelRecord | None, monkeypatch) -> None:
    """The store's next `get` answers `stale`, as if another writer wrote right after it read.
    (A store that reads under its write lock, like SQLite, never reads stale: still correct.)"""
    real_get = store.get
    answers = [stale]

    def get(image_id: str) -> LabelRecord | None:
        return answers.pop() if answers else real_get(image_id)

    monkeypatch.setattr(store, "get", get)


def test_register_of_a_new_image_that_appears_meanwhile_merges_instead_of_overwriting(
    catalog_record, backend, monkeypatch
):
    labels, uploader = backend.labels(), backend.labels()
    _, first = labels.register(catalog_record())
    first_get_returns(uploader, None, monkeypatch)  # the redelivered upload read "no record"

    outcome, stored = uploader.register(catalog_record())

    assert outcome is RegisterOutcome.UNCHANGED
    assert stored == first
    assert labels.get(IMAGE) == first
    assert len(labels.events(IMAGE)) == 2  # no duplicated registration events


def test_register_from_a_stale_read_keeps_a_concurrent_staff_label(
    catalog_record, backend, monkeypatch
):
    labels, uploader = backend.labels(), backend.labels()
    _, version_1 = labels.register(catalog_record())
    first_get_returns(uploader, version_1, monkeypatch)  # the upload read before the relabel
    labels.update_label(IMAGE, "neckline", "crew", source=STAFF, expected_version=1)

    outcome, stored = uploader.register(
        catalog_record(facets={"silhouette": "sheath", "neckline": "halter"})
    )

    assert outcome is RegisterOutcome.UPDATED
    assert stored.version == 3
    assert labels.get(IMAGE) == stored
    assert stored.facets["neckline"] == "crew" and stored.facets["silhouette"] == "sheath"
    assert [e.version for e in labels.events(IMAGE)] == [1, 1, 2, 3]


# --- label updates ------------------------------------------------------------------------


def test_update_label_at_the_current_version_writes_a_new_version_and_its_event(
    catalog_record, backend
):
    labels = backend.labels()
    labels.register(catalog_record())
    evidence = {"votes": {"crew": 3, "boat": 1}, "task_id": "t-1"}

    updated = labels.update_label(
        IMAGE, "neckline", "crew", source=CROWD, expected_version=1, evidence=evidence
    )

    assert updated.version == 2
    assert updated.facets["neckline"] == "crew" and updated.sources["neckline"] is CROWD
    assert updated.split == "train"
    assert labels.get(IMAGE) == updated
    event = labels.events(IMAGE)[-1]
    assert change(event) == ("neckline", "v-neck", "crew", CROWD, 2)
    assert event.evidence == evidence


def test_update_label_at_a_stale_version_conflicts_and_writes_nothing(catalog_record, backend):
    labels = backend.labels()
    labels.register(catalog_record())
    current = labels.update_label(IMAGE, "neckline", "crew", source=STAFF, expected_version=1)

    with pytest.raises(ConflictError):
        labels.update_label(IMAGE, "neckline", "boat", source=STAFF, expected_version=1)

    assert labels.get(IMAGE) == current
    assert len(labels.events(IMAGE)) == 3


def test_update_label_of_an_unknown_image_is_not_found(backend):
    with pytest.raises(NotFoundError):
        backend.labels().update_label(
            "nope/x", "neckline", "crew", source=STAFF, expected_version=1
        )


def test_events_are_oldest_first(catalog_record, backend):
    labels = backend.labels()
    labels.register(catalog_record())
    for version, label in enumerate(["sheath", "shift", "a-line"], start=1):
        labels.update_label(IMAGE, "silhouette", label, source=STAFF, expected_version=version)

    events = labels.events(IMAGE)

    assert [e.version for e in events] == [1, 1, 2, 3, 4]
    assert [(e.old, e.new) for e in events[2:]] == [
        ("a-line", "sheath"),
        ("sheath", "shift"),
        ("shift", "a-line"),
    ]


def test_scan_returns_every_record_across_pages(catalog_record, backend):
    labels = backend.labels()
    ids = [f"p{i}/front" for i in range(5)]
    for image_id in ids:
        labels.register(catalog_record(image_id))

    scanned = list(labels.scan())

    assert sorted(r.image_id for r in scanned) == ids
    assert all(r == labels.get(r.image_id) for r in scanned)


# --- concurrency: no change is ever silently lost -----------------------------------------


def relabel(
    labels: LabelStore,
    facet: str,
    label: str,
    barrier: threading.Barrier,
    retry: bool,
    conflicts: list[str],
) -> LabelRecord | None:
    """Read-modify-write one facet; the barrier makes both writers read the same version."""
    for attempt in range(5 if retry else 1):
        current = labels.get(IMAGE)
        if attempt == 0:
            barrier.wait(timeout=10)
        try:
            return labels.update_label(
                IMAGE, facet, label, source=STAFF, expected_version=current.version
            )
        except ConflictError:
            conflicts.append(facet)
    if retry:
        raise AssertionError(f"{facet}: still conflicting after 5 attempts")
    return None


def run_two_writers(backend: Backend, record: LabelRecord, retry: bool) -> tuple[list, list[str]]:
    backend.labels().register(record)
    barrier, conflicts = threading.Barrier(2), []
    changes = [("neckline", "crew"), ("sleeve", "long")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(relabel, backend.labels(), facet, label, barrier, retry, conflicts)
            for facet, label in changes
        ]
        return [f.result() for f in futures], conflicts


def test_two_concurrent_writers_with_retry_both_land(catalog_record, backend):
    _, conflicts = run_two_writers(backend, catalog_record(), retry=True)

    final = backend.labels().get(IMAGE)
    assert final.facets["neckline"] == "crew" and final.facets["sleeve"] == "long"
    assert final.version == 3
    later = [e for e in backend.labels().events(IMAGE) if e.version > 1]
    assert sorted((e.facet, e.new) for e in later) == [("neckline", "crew"), ("sleeve", "long")]
    assert len(conflicts) == 1  # they did collide; the loser re-read and applied its change


def test_second_concurrent_writer_without_retry_gets_a_conflict_not_an_overwrite(
    catalog_record, backend
):
    results, conflicts = run_two_writers(backend, catalog_record(), retry=False)

    assert len(conflicts) == 1 and sum(r is not None for r in results) == 1
    final = backend.labels().get(IMAGE)
    assert final.version == 2
    loser = conflicts[0]
    winner = "sleeve" if loser == "neckline" else "neckline"
    assert final.facets[winner] == {"neckline": "crew", "sleeve": "long"}[winner]
    assert final.facets[loser] == catalog_record().facets[loser]  # untouched, not overwritten
    assert [e.facet for e in backend.labels().events(IMAGE) if e.version == 2] == [winner]


# --- predictions --------------------------------------------------------------------------


def prediction(image_id: str, model_version: str = "m1", label: str = "a-line") -> PredictionRecord:
    return PredictionRecord(
        image_id=image_id,
        model_version=model_version,
        facets={
            "silhouette": FacetPrediction(label=label, prob=0.7, probs=[0.7, 0.1, 0.1, 0.05, 0.05])
        },
        bbox=(1.5, 2.0, 30.25, 40.0),
        bbox_score=0.93,
        embedding_key=f"embeddings/{model_version}/{image_id}.npy",
    )


def test_prediction_round_trips_exactly(backend):
    predictions = backend.predictions()
    record = prediction(IMAGE)
    predictions.put(record)

    assert predictions.get(IMAGE, "m1") == record  # floats unchanged, no Decimal drift
    assert predictions.get(IMAGE, "m2") is None
    assert predictions.get("nope/x", "m1") is None


def test_for_model_returns_every_prediction_of_that_model_only(backend):
    predictions = backend.predictions()
    ids = [f"p{i}/front" for i in range(5)]
    for image_id in ids:
        predictions.put(prediction(image_id, "m1"))
    predictions.put(prediction(ids[0], "m2"))

    assert sorted(p.image_id for p in predictions.for_model("m1")) == ids
    assert [p.image_id for p in predictions.for_model("m2")] == [ids[0]]
    assert list(predictions.for_model("m3")) == []


def test_put_again_replaces_the_prediction(backend):
    predictions = backend.predictions()
    predictions.put(prediction(IMAGE, label="a-line"))
    replacement = prediction(IMAGE, label="sheath")

    predictions.put(replacement)
    predictions.put(replacement)  # redelivery

    assert predictions.get(IMAGE, "m1") == replacement
    assert list(predictions.for_model("m1")) == [replacement]


def test_put_many_stores_every_record_and_the_last_of_twins_wins(backend):
    predictions = backend.predictions()
    records = [prediction(f"p{i}/front") for i in range(30)]  # more than one DynamoDB batch
    replacement = prediction("p0/front", label="sheath")

    predictions.put_many([*records, replacement])
    predictions.put_many([replacement])  # a retried job writes the same again

    stored = {p.image_id: p for p in predictions.for_model("m1")}
    assert sorted(stored) == sorted(r.image_id for r in records)
    assert stored["p0/front"] == replacement
    assert stored["p29/front"] == records[29]


def test_put_many_sends_again_what_dynamodb_left_unprocessed(monkeypatch):
    monkeypatch.setattr(dynamodb.time, "sleep", lambda s: None)
    calls: list[int] = []

    class Throttling:
        def batch_write_item(self, RequestItems):
            items = RequestItems["Predictions"]
            calls.append(len(items))
            left = items[1:] if len(calls) < 3 else []  # one item at a time gets through
            return {"UnprocessedItems": {"Predictions": left} if left else {}}

    store = DynamoDBPredictionStore("Predictions", client=Throttling())
    store.put_many([prediction(f"p{i}/front") for i in range(3)])
    assert calls == [3, 2, 1]

    calls.clear()
    monkeypatch.setattr(dynamodb, "BATCH_ATTEMPTS", 2)
    with pytest.raises(StoreThrottledError, match="unprocessed"):
        store.put_many([prediction(f"p{i}/front") for i in range(3)])


def test_labels_and_predictions_share_one_sqlite_file(catalog_record, tmp_path):
    db = tmp_path / "state.db"
    record = prediction(IMAGE)
    SqliteLabelStore(db).register(catalog_record())
    SqlitePredictionStore(db).put(record)

    assert SqliteLabelStore(db).get(IMAGE).version == 1
    assert SqlitePredictionStore(db).get(IMAGE, "m1") == record


# --- DynamoDB specifics: the stored layout other parts rely on, and setup errors ----------


def test_dynamodb_layout_is_one_label_item_and_one_item_per_event(catalog_record, aws_env):
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, "Labels", "Predictions")
        labels = DynamoDBLabelStore("Labels", client=client)
        labels.register(catalog_record())
        labels.update_label(IMAGE, "neckline", "crew", source=STAFF, expected_version=1)

        items = client.scan(TableName="Labels")["Items"]

    keys = sorted(item[dynamodb.LABELS_SORT_KEY]["S"] for item in items)
    assert keys[-1] == dynamodb.LABEL_SK
    label_item = next(i for i in items if i[dynamodb.LABELS_SORT_KEY]["S"] == dynamodb.LABEL_SK)
    assert label_item[dynamodb.VERSION] == {"N": "2"}
    event_key = re.compile(r"^EVENT#\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z#\d{10}#[a-z]+$")
    assert all(event_key.match(k) for k in keys[:-1]) and len(keys) == 4


def test_dynamodb_client_is_created_lazily_and_a_missing_table_says_what_to_do(aws_env):
    labels = DynamoDBLabelStore("Missing")  # no client, no AWS call yet
    with mock_aws(), pytest.raises(ConfigurationError, match="does not exist"):
        labels.get(IMAGE)
