"""λ batch_events: EventBridge "Batch Job State Change" -> what comes next.

- infer SUCCEEDED: queue a review. After the re-inference of the whole catalog with a newly
  promoted model, that is the relabel loop's next round (`"round": true`: the whole catalog,
  on the new model's judging probabilities, unless the loop converged); after any other
  inference (an upload), a review of the images that job tagged (`"manifest"`: its manifest);
- train SUCCEEDED with a newly promoted model: re-infer the whole catalog with it (once per
  model version, however often the event is delivered); a newly promoted similarity embedder
  counts too: the re-inference re-embeds the catalog into the similarity indexes;
- FAILED: recorded with its reason under `jobs/failed/` in the artifacts bucket (the alarm on
  failed jobs tells people).
Events of array-job children are ignored: the parent's event speaks for the job.
"""

from __future__ import annotations

import itertools
import json
import logging

from lambdas import wiring
from lambdas.observability import bind, count, instrument
from shared import env
from shared.errors import NotFoundError
from shared.inference import catalog_entries, current_model_version, submit_inference
from shared.keys import failed_job_key, reinfer_marker_key
from shared.messages import BatchJobStateChange
from shared.ports import Ports
from shared.registry import ModelKind

logger = logging.getLogger(__name__)

REINFER_SUBMITTED = "re-inference submitted"


def job_kind(event: BatchJobStateChange) -> str | None:
    """'infer' or 'train', from the container command (`python -m batch_jobs.<kind>`)."""
    for part in event.detail.container.get("command", []):
        if part.startswith("batch_jobs."):
            return part.removeprefix("batch_jobs.")
    name = event.detail.job_name
    return next((k for k in ("infer", "train") if name.startswith(k)), None)


def on_job_state_change(ports: Ports, event: BatchJobStateChange) -> str:
    """Act on one job's end. Returns what was done, for logs and tests."""
    detail = event.detail
    if detail.array_properties and "index" in detail.array_properties:
        return "ignored: array child"
    kind = job_kind(event)
    if detail.status == "FAILED":
        record = {
            "job_id": detail.job_id,
            "job_name": detail.job_name,
            "kind": kind,
            "reason": detail.status_reason,
            "exit_code": detail.container.get("exitCode"),
        }
        ports.artifacts.put(
            failed_job_key(detail.job_id),
            json.dumps(record).encode(),
            content_type="application/json",
        )
        logger.error("job %s (%s) failed: %s", detail.job_name, kind, detail.status_reason)
        return "failure recorded"
    if detail.status != "SUCCEEDED":
        return f"ignored: {detail.status}"
    version = current_model_version(ports, ModelKind.FACETS)
    if kind == "infer":
        if ports.review_queue is None:
            return "no review queue configured"
        message: dict = {"model_version": version, "job_id": detail.job_id}
        if version is not None and _is_reinference(ports, version, detail.job_id):
            message["round"] = True
        elif manifest := _manifest_of(event):
            message["manifest"] = manifest
        ports.review_queue.send(json.dumps(message))
        return "review round queued" if message.get("round") else "review queued"
    if kind == "train" and version is not None:
        embedder = current_model_version(ports, ModelKind.SIMILARITY)
        marker = reinfer_marker_key(ModelKind.FACETS, version, embedder)
        if ports.artifacts.exists(marker):
            return "catalog already re-inferred for this model"
        entries = catalog_entries(ports)
        if not entries:
            return "nothing to re-infer"
        job_id = submit_inference(ports, entries)
        ports.artifacts.put(
            marker, json.dumps({"job_id": job_id}).encode(), content_type="application/json"
        )
        bind(reinfer_job_id=job_id)
        return f"{REINFER_SUBMITTED} ({len(entries)} images)"
    return "ignored"


def _is_reinference(ports: Ports, version: str, job_id: str) -> bool:
    """Whether `job_id` is the re-inference of the catalog with model `version` (and the
    current similarity embedder, whose promotion re-infers too)."""
    embedder = current_model_version(ports, ModelKind.SIMILARITY)
    key = reinfer_marker_key(ModelKind.FACETS, version, embedder)
    try:
        marker = json.loads(ports.artifacts.get(key).body)
    except NotFoundError:
        return False
    return marker.get("job_id") == job_id


def _manifest_of(event: BatchJobStateChange) -> str | None:
    """The `--manifest KEY` of the job's command: the images it tagged."""
    command = list(event.detail.container.get("command", []))
    for flag, value in itertools.pairwise(command):
        if flag == "--manifest":
            return value
    return None


@instrument
def handler(event: dict, context: object) -> dict:
    event_model = BatchJobStateChange.model_validate(event)
    bind(job_id=event_model.detail.job_id)
    result = on_job_state_change(wiring.ports(), event_model)
    count(env.METRIC_JOBS_SUBMITTED, 1 if result.startswith(REINFER_SUBMITTED) else 0)
    logger.info("job %s %s: %s", event_model.detail.job_name, event_model.detail.status, result)
    return {"result": result}
