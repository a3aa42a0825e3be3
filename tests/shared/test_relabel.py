"""The humans-in-the-loop logic on the embedded adapters with simulated workers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.errors import ConflictError
from shared.keys import snapshot_key
from shared.records import LabelSource
from shared.relabel import (
    answer_as_staff,
    collect,
    find_suspicious,
    maybe_retrain,
    publish_tasks,
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
    margins = [s.margin for s in suspects]
    assert margins == sorted(margins, reverse=True)
    assert len(find_suspicious(ports, "v1", limit=2)) == 2


def test_images_without_out_of_sample_predictions_are_not_reviewed(ports):
    assert find_suspicious(ports, "v2") == []


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
