"""A JobRunner on AWS Batch: `python -m batch_jobs.<name>` as a (possibly array) Batch job.

The job definition carries the deployment's settings as environment variables (set by infra);
a submission only adds the request's own environment. Helpers here are shared with the local
runner so both name jobs and check requests the same way.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from shared.env import JOB_DEFINITION_PREFIX
from shared.errors import JobSubmissionError
from shared.messages import JobRequest
from shared.ports import JobRunner

JOB_MODULE_PREFIX = "batch_jobs"
MAX_JOB_NAME = 128
RESERVED_ENV_PREFIX = "AWS_BATCH_"  # Batch refuses it in overrides; it sets those itself
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def job_name_for(request: JobRequest) -> str:
    """A Batch job name: letters, digits, '-' and '_', starting alphanumeric, at most 128.
    `request.job_name` sanitized, else `dressvision-<name>-<8 hex>`."""
    raw = request.job_name or ""
    name = _NAME_UNSAFE.sub("-", raw).lstrip("-_")[:MAX_JOB_NAME]
    return name or f"dressvision-{request.name}-{uuid.uuid4().hex[:8]}"


def job_command(request: JobRequest, *, python: str = "python", module_prefix: str = "") -> list:
    """The command that runs the job: `python -m batch_jobs.<name> <args...>`."""
    return [python, "-m", f"{module_prefix or JOB_MODULE_PREFIX}.{request.name}", *request.args]


def check_environment(request: JobRequest) -> None:
    """Refuse variables Batch reserves for itself, on every backend alike."""
    reserved = sorted(k for k in request.environment if k.startswith(RESERVED_ENV_PREFIX))
    if reserved:
        raise JobSubmissionError(
            f"job {request.name!r} sets {', '.join(reserved)}: the {RESERVED_ENV_PREFIX} prefix "
            "is reserved for AWS Batch; rename these variables"
        )


class BatchJobRunner(JobRunner):
    """Submits jobs to `job_queue`, one job definition per job name (`infer`, `train`)."""

    def __init__(
        self, job_queue: str, job_definitions: Mapping[str, str], *, client: Any | None = None
    ):
        self.job_queue = job_queue
        self.job_definitions = dict(job_definitions)
        self._client = client

    @property
    def client(self) -> Any:
        """The Batch client, created on first use; it retries only throttling and 5xx errors
        (botocore's standard mode), never a rejected request."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client("batch", config=Config(retries={"mode": "standard"}))
        return self._client

    def submit(self, request: JobRequest) -> str:
        """Submit `request`; return the Batch job id. `JobSubmissionError` when it cannot."""
        from botocore.exceptions import BotoCoreError, ClientError

        definition = self.job_definitions.get(request.name)
        if not definition:
            raise JobSubmissionError(
                f"no job definition for job {request.name!r}: set "
                f"{JOB_DEFINITION_PREFIX}{request.name.upper()} to its name or ARN"
            )
        check_environment(request)
        params: dict[str, Any] = {
            "jobName": job_name_for(request),
            "jobQueue": self.job_queue,
            "jobDefinition": definition,
            "containerOverrides": {
                "command": job_command(request),
                "environment": [
                    {"name": k, "value": v} for k, v in sorted(request.environment.items())
                ],
            },
        }
        if request.array_size:
            params["arrayProperties"] = {"size": request.array_size}
        try:
            response = self.client.submit_job(**params)
        except (ClientError, BotoCoreError) as exc:
            raise JobSubmissionError(
                f"AWS Batch refused job {params['jobName']!r} on queue {self.job_queue!r} "
                f"with definition {definition!r}: {exc}"
            ) from exc
        return response["jobId"]
