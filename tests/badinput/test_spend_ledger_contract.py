"""Issue 11, finding 14: the spend ledger behind the MTurk budget, on both TaskStore adapters
(SQLite, DynamoDB on moto). Two stores on the same state stand for two Lambdas."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from tests.shared.test_task_store_contract import backend, make_task  # noqa: F401 (fixture)

CAP = Decimal("1.00")


def test_the_ledger_starts_from_what_was_committed_and_never_passes_the_cap(backend):  # noqa: F811
    review, collect = backend(), backend()
    assert review.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal("0.50")) == (
        True,
        Decimal("0.68"),
    )
    # The other process sees the same number at once, and the initial value is not re-read.
    assert collect.add_spend(Decimal("0.30"), cap=CAP, initial=lambda: Decimal(99)) == (
        True,
        Decimal("0.98"),
    )
    assert review.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0)) == (
        False,
        Decimal("0.98"),
    )
    assert collect.add_spend(Decimal("-0.30"), cap=CAP, initial=lambda: Decimal(0)) == (
        True,
        Decimal("0.68"),
    )


def test_concurrent_spends_stay_within_the_cap(backend):  # noqa: F811
    stores = [backend() for _ in range(4)]

    def spend(i: int) -> bool:
        added, _ = stores[i % 4].add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0))
        return added

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(spend, range(12)))
    assert sum(results) == 5


def test_the_ledger_never_shows_up_as_a_task(backend):  # noqa: F811
    store = backend()
    store.create(make_task())
    store.add_spend(Decimal("0.18"), cap=CAP, initial=lambda: Decimal(0))
    assert [t.task_id for t in store.list()] == [make_task().task_id]
