"""The humans-in-the-loop logic on the embedded adapters with simulated workers."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.errors import ConflictError
from shared.keys import TRAIN_REQUEST_KEY, review_thresholds_key, snapshot_key
from shared.records import LabelSource
from shared.relabel import (
    MODEL_WITNESS,
    answer_as_staff,
    collect,
    find_suspicious,
    maybe_retrain,
    next_holdout_fold,
    oof_version,
    publish_tasks,
    review_labels,
    tasks_within_budget,
)


@pytest.fixture
def ports(relabel_ports):
    return relabel_ports


def test_suspicious_labels_are_the_flipped_ones_with_the_true_label_suggested(
    flipped_necklines, ports
):
    case = flipped_necklines
    suspects = find_suspicious(ports, "v1")
    flagged = {int(s.image_id.split("/")[0][1:]) for s in suspects}
    assert flagged == case.flipped
    for s in suspects:
        assert s.suggested == case.true_label(int(s.image_id.split("/")[0][1:]))
        assert s.facet == case.facet and 0 < s.confidence <= 1
    scores = [s.score for s in suspects]  # the likeliest mistakes first
    assert scores == sorted(scores)
    assert len(find_suspicious(ports, "v1", limit=2)) == 2


def test_images_without_out_of_sample_predictions_are_not_reviewed_and_it_says_so(ports):
    assert find_suspicious(ports, "v2") == []
    review = review_labels(ports, "v2")
    assert review.without_predictions == review.labelled == 60
    assert "60 of 60 labelled images" in review.coverage_warning()
    assert review_labels(ports, "v1").coverage_warning() is None
    # A model without out-of-fold predictions: only the test split can be judged.
    for p in list(ports.predictions.for_model("v1")):
        ports.predictions.put(p.model_copy(update={"model_version": "v3"}))
    partial = review_labels(ports, "v3")
    assert partial.without_predictions == 45 and partial.labelled == 60
    assert "45 of 60" in partial.coverage_warning()
    assert oof_version("v3") not in {p.model_version for p in ports.predictions.for_model("v3")}


def test_labels_people_confirmed_are_not_asked_again_but_count_in_thresholds(
    flipped_necklines, ports
):
    first = find_suspicious(ports, "v1")
    confirmed = first[0]
    record = ports.labels.get(confirmed.image_id)
    ports.labels.update_label(  # what collect does when the crowd keeps the label
        record.image_id,
        confirmed.facet,
        confirmed.label,
        source=LabelSource.CROWD,
        expected_version=record.version,
        evidence={"task_id": "t"},
    )
    again = find_suspicious(ports, "v1")
    assert [s.image_id for s in again] == [s.image_id for s in first[1:]]
    assert [s.score for s in again] == pytest.approx([s.score for s in first[1:]])


def test_the_task_budget_takes_the_likeliest_mistakes_first(ports):
    everything = find_suspicious(ports, "v1")
    budget = review_labels(ports, "v1", budget_tasks=2).suspects
    assert budget == everything[:2]
    # Readers (the web app, the CLI) store nothing: only the review Lambda's rounds do.
    assert not ports.artifacts.exists(review_thresholds_key("v1"))
    with pytest.raises(ValueError, match="budget"):
        review_labels(ports, "v1", budget_tasks=-1)


def test_a_money_budget_buys_tasks_at_the_workforce_price(crowd):
    from decimal import Decimal

    from shared.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="--budget-tasks"):
        tasks_within_budget(crowd, Decimal("5"), assignments=3)

    class Priced:
        name = "priced"

        def task_price_usd(self, assignments):
            return Decimal("0.06") * assignments

    assert tasks_within_budget(Priced(), Decimal("1.00"), assignments=3) == 5  # 0.18 each


class CountingReads:
    """A store wrapper that counts the items it hands out."""

    def __init__(self, inner):
        self.inner, self.items = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, *args):
        self.items += 1
        return self.inner.get(*args)

    def scan(self, *args, **kwargs):
        for item in self.inner.scan(*args, **kwargs):
            self.items += 1
            yield item

    def for_model(self, *args):
        for item in self.inner.for_model(*args):
            self.items += 1
            yield item


def test_a_review_of_a_few_tagged_images_reads_only_them(flipped_necklines, ports):
    whole = review_labels(ports, "v1", store_thresholds=True)  # the round's review
    labels, predictions = CountingReads(ports.labels), CountingReads(ports.predictions)
    counted = replace(ports, labels=labels, predictions=predictions)
    tagged = [f"p{i}/0" for i in (*sorted(flipped_necklines.flipped)[:2], 30, 31)]
    few = review_labels(counted, "v1", image_ids=tagged)
    assert labels.items == 4 and predictions.items == 4  # not the 60 images of the catalog
    assert {s.image_id for s in few.suspects} == {
        s.image_id for s in whole.suspects if s.image_id in tagged
    }
    assert few.suspects and few.labelled == 4


def test_publishing_is_idempotent(ports, crowd):
    suspects = find_suspicious(ports, "v1")
    first = publish_tasks(ports, crowd, suspects, max_assignments=3)
    assert (first.created, first.published) == (5, 5)
    again = publish_tasks(ports, crowd, suspects, max_assignments=3)
    assert (again.created, again.published) == (0, 0)
    assert len(list(ports.tasks.list())) == 5
    assert find_suspicious(ports, "v1") == []  # open tasks are not asked twice


def test_collect_fixes_the_labels_keeps_splits_and_retrains(flipped_necklines, ports, crowd):
    case = flipped_necklines
    splits = {r.image_id: r.split for r in ports.labels.scan()}
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    summary = collect(ports, crowd)
    while summary.asked_more:  # undecided tasks ask for more answers, up to the cap
        summary = collect(ports, crowd)
    fixed = [
        i
        for i in case.flipped
        if ports.labels.get(f"p{i}/0").facets[case.facet] == case.true_label(i)
    ]
    assert len(fixed) >= 4
    for i in fixed:
        record = ports.labels.get(f"p{i}/0")
        assert record.sources[case.facet] == LabelSource.CROWD
        event = ports.labels.events(record.image_id)[-1]
        assert event.source == LabelSource.CROWD and len(event.evidence["votes"]) >= 2
    assert {r.image_id: r.split for r in ports.labels.scan()} == splits
    assert [r.name for r in ports.jobs.requests] == ["train"]  # 3 changes reached the threshold
    assert maybe_retrain(ports) is None  # not twice for the same changes


def test_the_model_witness_weighs_in_but_only_people_decide(flipped_necklines, ports, crowd):
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=2)
    summary = collect(ports, crowd)
    while summary.asked_more:  # one more answer at a time (DRESSVISION_ASK_STEP)
        summary = collect(ports, crowd)
    decided = list(ports.tasks.list("decided"))
    assert decided
    for task in decided:  # two people named the outcome, whatever the model suggested
        assert sum(v.label == task.outcome for v in task.votes) >= 2
        assert MODEL_WITNESS not in {v.worker_id for v in task.votes}
        event = [e for e in ports.labels.events(task.image_id) if e.evidence][-1]
        assert event.evidence["model_witness"] == task.suggested  # the audit trail says so
    workers = {w.worker_id for w in ports.tasks.workers(crowd.name)}
    assert workers and MODEL_WITNESS not in workers  # never paid, judged or excluded


def test_a_label_changed_by_staff_after_publishing_is_not_overwritten(
    flipped_necklines, ports, crowd
):
    case = flipped_necklines
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    record = ports.labels.get("p3/0")
    assert record.facets[case.facet] == "halter"  # the flipped catalog label
    ports.labels.update_label(
        "p3/0", case.facet, "v-neck", source=LabelSource.STAFF, expected_version=record.version
    )
    collect(ports, crowd)
    assert ports.labels.get("p3/0").facets[case.facet] == "v-neck"
    (task,) = [t for t in ports.tasks.list() if t.image_id == "p3/0"]
    assert task.status == "conflict"


def test_staff_answers_decide_escalated_or_open_tasks(flipped_necklines, ports, crowd):
    case = flipped_necklines
    publish_tasks(ports, crowd, find_suspicious(ports, "v1", limit=1), max_assignments=3)
    (task,) = list(ports.tasks.list())
    assert answer_as_staff(ports, task.task_id, "boat") == "changed"
    assert ports.labels.get(task.image_id).facets[case.facet] == "boat"
    assert ports.labels.get(task.image_id).sources[case.facet] == LabelSource.STAFF
    assert ports.tasks.get(task.task_id).status == "decided"
    with pytest.raises(ConflictError, match="decided"):
        answer_as_staff(ports, task.task_id, "crew")


def test_training_is_due_only_after_the_last_snapshot(ports, crowd):
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    lax = replace(ports, settings=replace(ports.settings, retrain_threshold=1000))
    collect(lax, crowd)
    eager = replace(ports, settings=replace(ports.settings, retrain_threshold=1))
    ports.artifacts.put(snapshot_key("29991231T000000Z"), b"")  # a training started after
    assert maybe_retrain(eager) is None


def test_the_loops_retrainings_hold_out_each_fold_of_train_products_in_turn(ports, crowd):
    def option(request, name):
        return request.args[request.args.index(name) + 1]

    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    lax = replace(ports, settings=replace(ports.settings, retrain_threshold=1000))
    summary = collect(lax, crowd)
    while summary.asked_more:
        summary = collect(lax, crowd)
    rotating = replace(
        ports, settings=replace(ports.settings, retrain_threshold=1, loop_holdout_folds=3)
    )
    assert next_holdout_fold(ports) is None  # off by default: the whole train split trains
    assert next_holdout_fold(rotating) == 0  # the loop's first retraining
    assert maybe_retrain(rotating) is not None
    (request,) = ports.jobs.requests
    assert (option(request, "--holdout-folds"), option(request, "--holdout-fold")) == ("3", "0")
    assert json.loads(ports.artifacts.get(TRAIN_REQUEST_KEY).body)["holdout_fold"] == 0
    assert next_holdout_fold(rotating) == 1
    ports.artifacts.put(TRAIN_REQUEST_KEY, json.dumps({"changed": 40, "holdout_fold": 2}).encode())
    assert next_holdout_fold(rotating) == 0  # after the last fold, the first again


def add_photos(ports, product: int, count: int, probs_of_first: bool = True) -> list[str]:
    """`count` more photos of product `p{product}`, with its first photo's labels and the same
    judging probabilities (another view of one dress)."""
    first = ports.labels.get(f"p{product}/0")
    version = "v1" if first.split == "test" else oof_version("v1")
    prediction = ports.predictions.get(first.image_id, version)
    added = []
    for n in range(1, count + 1):
        image_id = f"p{product}/{n}"
        ports.labels.register(
            first.model_copy(update={"image_id": image_id, "object_key": f"catalog/{image_id}.jpg"})
        )
        ports.predictions.put(prediction.model_copy(update={"image_id": image_id}))
        added.append(image_id)
    return added


def test_a_products_photos_are_judged_as_one_and_one_answer_fixes_them_all(
    flipped_necklines, ports, crowd
):
    case = flipped_necklines
    siblings = add_photos(ports, 3, 2)  # p3 is flipped: three photos with its wrong label
    add_photos(ports, 4, 2)  # p4 is right
    suspects = find_suspicious(ports, "v1")
    assert len(suspects) == len(case.flipped)  # one suspect a product, not one a photo
    (p3,) = [s for s in suspects if s.image_id.startswith("p3/")]
    assert sorted((p3.image_id, *p3.siblings)) == ["p3/0", *siblings]
    per_photo = review_labels(ports, "v1", by_product=False).suspects
    assert len(per_photo) == len(case.flipped) + 2  # what one task each would have cost

    publish_tasks(ports, crowd, suspects, max_assignments=3)
    (task,) = [t for t in ports.tasks.list() if t.image_id == p3.image_id]
    assert sorted(task.siblings) == sorted(p3.siblings)
    assert find_suspicious(ports, "v1") == []  # the photos of open tasks are not asked again
    summary = collect(ports, crowd)
    siblings_changed = summary.siblings_changed
    while summary.asked_more:
        summary = collect(ports, crowd)
        siblings_changed += summary.siblings_changed
    assert siblings_changed == 2
    task = ports.tasks.get(task.task_id)
    assert task.status == "decided" and task.outcome == case.true_label(3)
    for image_id in ("p3/0", *siblings):
        record = ports.labels.get(image_id)
        assert record.facets[case.facet] == case.true_label(3)
        assert record.sources[case.facet] == LabelSource.CROWD
    event = ports.labels.events(p3.siblings[0])[-1]
    assert event.evidence["task_id"] == task.task_id  # traceable to the answers
    assert event.evidence["product_photo"] == task.image_id
    assert {r.facets[case.facet] for r in ports.labels.scan() if r.product_id == "p4"} == {
        case.true_label(4)
    }


def test_a_sibling_that_people_relabelled_since_publishing_keeps_their_label(
    flipped_necklines, ports
):
    case = flipped_necklines
    add_photos(ports, 3, 2)
    (suspect,) = [s for s in find_suspicious(ports, "v1") if s.image_id.startswith("p3/")]
    publish_tasks(ports, _Internal(), [suspect], max_assignments=3)
    (task,) = list(ports.tasks.list())
    other = task.siblings[0]
    record = ports.labels.get(other)
    ports.labels.update_label(
        other, case.facet, "crew", source=LabelSource.STAFF, expected_version=record.version
    )
    assert answer_as_staff(ports, task.task_id, case.true_label(3)) == "changed"
    assert ports.labels.get(other).facets[case.facet] == "crew"  # theirs stands
    assert ports.labels.get(task.siblings[1]).facets[case.facet] == case.true_label(3)
    assert ports.labels.get(task.siblings[1]).sources[case.facet] == LabelSource.STAFF


class _Internal:
    """A workforce that only stores tasks (staff answer them)."""

    name = "internal"

    def publish(self, task, image_url):
        return None


def test_a_task_names_other_photos_as_siblings_each_once(ports):
    from shared.tasks import RelabelTask

    fields = dict(
        image_id="p3/0",
        facet="neckline",
        round=0,
        allowed=("v-neck", "crew"),
        current_label="crew",
        label_version=0,
        suggested="v-neck",
        confidence=0.9,
        provider="internal",
        max_assignments=2,
    )
    assert RelabelTask.new(**fields, siblings=["p3/1"]).siblings == ("p3/1",)
    for wrong in (["p3/0"], ["p3/1", "p3/1"]):
        with pytest.raises(ValueError, match="siblings"):
            RelabelTask.new(**fields, siblings=wrong)


def test_with_doubt_the_review_also_asks_about_labels_the_model_barely_backs(
    flipped_necklines, ports
):
    plain = review_labels(ports, "v1").suspects
    doubting = replace(ports, settings=replace(ports.settings, review_doubt=1.0))
    more = review_labels(doubting, "v1").suspects
    assert {s.image_id for s in plain} < {s.image_id for s in more}
    for s in more:
        assert s.score < 1.0
    # The likeliest mistakes still come first: the flips the plain review found.
    assert [s.image_id for s in more[: len(plain)]] == [s.image_id for s in plain]


def test_a_sibling_whose_record_moved_on_meanwhile_is_read_again_and_set(flipped_necklines, ports):
    case = flipped_necklines
    add_photos(ports, 3, 1)
    (suspect,) = [s for s in find_suspicious(ports, "v1") if s.image_id.startswith("p3/")]
    publish_tasks(ports, _Internal(), [suspect], max_assignments=3)
    (task,) = list(ports.tasks.list())

    class MovesOnOnce:
        """Another writer bumps the sibling's record between our read and our write, once."""

        def __init__(self, inner):
            self.inner, self.conflicts = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def update_label(self, image_id, *args, **kwargs):
            if image_id in task.siblings and not self.conflicts:
                self.conflicts += 1
                raise ConflictError(f"{image_id} moved on")
            return self.inner.update_label(image_id, *args, **kwargs)

    labels = MovesOnOnce(ports.labels)
    busy = replace(ports, labels=labels)
    assert answer_as_staff(busy, task.task_id, case.true_label(3)) == "changed"
    assert labels.conflicts == 1
    (sibling,) = task.siblings
    assert ports.labels.get(sibling).facets[case.facet] == case.true_label(3)
