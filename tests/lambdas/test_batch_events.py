"""λ batch_events: each kind of Batch job end leads to the right next step, once."""

from __future__ import annotations

import json

import pytest

from lambdas import batch_events
from shared.messages import BatchJobStateChange


@pytest.fixture
def ports(relabel_ports):
    return relabel_ports


@pytest.fixture
def job_event(load_event):
    """`jobjob_event(status=..., command=..., **detail)`: a Batch Job State Change."""

    def make(status="SUCCEEDED", command="batch_jobs.infer", **detail):
        event = load_event("batch_job_state_change_succeeded.json")
        event["detail"]["status"] = status
        event["detail"]["container"]["command"] = ["python", "-m", command]
        event["detail"].update(detail)
        return BatchJobStateChange.model_validate(event)

    return make


def test_batch_events_route_each_kind_of_job_end(ports, job_event):
    assert batch_events.on_job_state_change(ports, job_event()) == "review queued"
    assert json.loads(ports.review_queue.bodies[0])["model_version"] == "v1"

    result = batch_events.on_job_state_change(ports, job_event(command="batch_jobs.train"))
    assert result.startswith("re-inference submitted")
    assert batch_events.on_job_state_change(ports, job_event(command="batch_jobs.train")) == (
        "catalog already re-inferred for this model"
    )
    assert [r.name for r in ports.jobs.requests] == ["infer"]

    failed = job_event(status="FAILED", statusReason="Essential container exited", jobId="j-9")
    assert batch_events.on_job_state_change(ports, failed) == "failure recorded"
    assert "Essential" in json.loads(ports.artifacts.get("jobs/failed/j-9.json").body)["reason"]

    child = job_event(arrayProperties={"index": 3})
    assert batch_events.on_job_state_change(ports, child) == "ignored: array child"
