"""The humans-in-the-loop logic on the embedded adapters with simulated workers."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from lambdas import batch_events
from lambdas import collect as collect_lambda
from lambdas import review as review_lambda
from shared.backends import build_ports
from shared.env import Settings
from shared.keys import current_model_key, snapshot_key
from shared.messages import BatchJobStateChange
from shared.records import FacetPrediction, LabelRecord, LabelSource, PredictionRecord
from shared.relabel import (
    answer_as_staff,
    collect,
    find_suspicious,
    maybe_retrain,
    oof_version,
    publish_tasks,
)
from shared.workforce.simulated import SimulatedWorkforce
from tests.conftest import RecordingJobRunner, RecordingQueue, load_event

FACET = "neckline"
NECKLINES = ("v-neck", "crew", "boat", "sweetheart", "halter")
N = 60
FLIPPED = {3, 17, 28, 41, 55}


def true_label(i: int) -> str:
    return NECKLINES[i % 5]


@pytest.fixture
def ports(tmp_path):
    settings = Settings(home=tmp_path, retrain_threshold=3, max_assignments=3)
    p = build_ports(settings)
    p = replace(p, jobs=RecordingJobRunner(), review_queue=RecordingQueue())
    rng = np.random.default_rng(0)
    for i in range(N):
        given = NECKLINES[(i + 1) % 5] if i in FLIPPED else true_label(i)
        record = LabelRecord(
            image_id=f"p{i}/0",
            product_id=f"p{i}",
            object_key=f"catalog/p{i}/0.jpg",
            split="test" if i % 4 == 0 else "train",
            facets={FACET: given},
            sources={FACET: LabelSource.CATALOG},
        )
        p.labels.register(record)
        # A decent out-of-sample model: most mass on the true label.
        probs = rng.dirichlet(np.ones(5) * 0.3) * 0.15
        probs[i % 5] += 0.85
        probs = (probs / probs.sum()).tolist()
        version = "v1" if record.split == "test" else oof_version("v1")
        facet = FacetPrediction(label=true_label(i), prob=max(probs), probs=probs)
        p.predictions.put(
            PredictionRecord(image_id=record.image_id, model_version=version, facets={FACET: facet})
        )
    p.artifacts.put(current_model_key("facets"), json.dumps({"version": "v1"}).encode())
    return p


@pytest.fixture
def crowd():
    def truth(image_id: str, facet: str) -> str:
        return true_label(int(image_id.split("/")[0][1:]))

    return SimulatedWorkforce(truth, seed=3)


def test_suspicious_labels_are_the_flipped_ones_with_the_true_label_suggested(ports):
    suspects = find_suspicious(ports, "v1")
    flagged = {int(s.image_id.split("/")[0][1:]) for s in suspects}
    assert flagged == FLIPPED
    for s in suspects:
        assert s.suggested == true_label(int(s.image_id.split("/")[0][1:]))
        assert s.facet == FACET and 0 < s.confidence <= 1
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


def test_collect_fixes_the_labels_keeps_splits_and_retrains(ports, crowd):
    splits = {r.image_id: r.split for r in ports.labels.scan()}
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    summary = collect(ports, crowd)
    while summary.asked_more:  # undecided tasks ask for more answers, up to the cap
        summary = collect(ports, crowd)
    fixed = [i for i in FLIPPED if ports.labels.get(f"p{i}/0").facets[FACET] == true_label(i)]
    assert len(fixed) >= 4
    for i in fixed:
        record = ports.labels.get(f"p{i}/0")
        assert record.sources[FACET] == LabelSource.CROWD
        event = ports.labels.events(record.image_id)[-1]
        assert event.source == LabelSource.CROWD and len(event.evidence["votes"]) >= 2
    assert {r.image_id: r.split for r in ports.labels.scan()} == splits
    assert [r.name for r in ports.jobs.requests] == ["train"]  # 3 changes reached the threshold
    assert maybe_retrain(ports) is None  # not twice for the same changes


def test_a_label_changed_by_staff_after_publishing_is_not_overwritten(ports, crowd):
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    record = ports.labels.get("p3/0")
    assert record.facets[FACET] == "halter"  # the flipped catalog label
    ports.labels.update_label(
        "p3/0", FACET, "v-neck", source=LabelSource.STAFF, expected_version=record.version
    )
    collect(ports, crowd)
    assert ports.labels.get("p3/0").facets[FACET] == "v-neck"
    (task,) = [t for t in ports.tasks.list() if t.image_id == "p3/0"]
    assert task.status == "conflict"


def test_staff_answers_decide_escalated_or_open_tasks(ports, crowd):
    publish_tasks(ports, crowd, find_suspicious(ports, "v1", limit=1), max_assignments=3)
    (task,) = list(ports.tasks.list())
    assert answer_as_staff(ports, task.task_id, "boat") == "changed"
    assert ports.labels.get(task.image_id).facets[FACET] == "boat"
    assert ports.labels.get(task.image_id).sources[FACET] == LabelSource.STAFF
    assert ports.tasks.get(task.task_id).status == "decided"
    with pytest.raises(Exception, match="decided"):
        answer_as_staff(ports, task.task_id, "crew")


def test_training_is_due_only_after_the_last_snapshot(ports, crowd):
    publish_tasks(ports, crowd, find_suspicious(ports, "v1"), max_assignments=3)
    lax = replace(ports, settings=replace(ports.settings, retrain_threshold=1000))
    collect(lax, crowd)
    eager = replace(ports, settings=replace(ports.settings, retrain_threshold=1))
    ports.artifacts.put(snapshot_key("29991231T000000Z"), b"")  # a training started after
    assert maybe_retrain(eager) is None


def _event(status="SUCCEEDED", command="batch_jobs.infer", **detail):
    event = load_event("batch_job_state_change_succeeded.json")
    event["detail"]["status"] = status
    event["detail"]["container"]["command"] = ["python", "-m", command]
    event["detail"].update(detail)
    return BatchJobStateChange.model_validate(event)


def test_batch_events_route_each_kind_of_job_end(ports):
    assert batch_events.on_job_state_change(ports, _event()) == "review queued"
    assert json.loads(ports.review_queue.bodies[0])["model_version"] == "v1"

    result = batch_events.on_job_state_change(ports, _event(command="batch_jobs.train"))
    assert result.startswith("re-inference submitted")
    assert batch_events.on_job_state_change(ports, _event(command="batch_jobs.train")) == (
        "catalog already re-inferred for this model"
    )
    assert [r.name for r in ports.jobs.requests] == ["infer"]

    failed = _event(status="FAILED", statusReason="Essential container exited", jobId="j-9")
    assert batch_events.on_job_state_change(ports, failed) == "failure recorded"
    assert "Essential" in json.loads(ports.artifacts.get("jobs/failed/j-9.json").body)["reason"]

    child = _event(arrayProperties={"index": 3})
    assert batch_events.on_job_state_change(ports, child) == "ignored: array child"


def test_review_and_collect_lambdas(ports, crowd):
    message = {
        "Records": [
            {"messageId": "m1", "body": json.dumps({"model_version": "v1"})},
            {"messageId": "m2", "body": "{broken"},
        ]
    }
    response = review_lambda.handle_sqs_batch(message, ports, crowd)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len(list(ports.tasks.list())) == 5
    assert collect_lambda.handle_event({"Records": []}, ports, crowd) == {"batchItemFailures": []}
    summary = collect_lambda.handle_event({"source": "aws.events"}, ports, crowd)
    assert summary["votes"] >= 0 and "decided" in summary
