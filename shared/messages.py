"""Messages that cross a process boundary: S3 notifications (as delivered through SQS), the
inference manifest, job requests and the EventBridge "Batch Job State Change" event.

Only the fields we use are modelled; AWS adds more and we ignore them (extra="ignore").
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field


class _AwsShape(BaseModel):
    # defer_build: validators are built on first use, so a Lambda builds only those it
    # uses, after its cold-start import (bench/cold_start.py).
    model_config = ConfigDict(defer_build=True, extra="ignore", populate_by_name=True)


class S3Bucket(_AwsShape):
    name: str


class S3Object(_AwsShape):
    key: str
    size: int | None = None
    e_tag: str | None = Field(default=None, alias="eTag")

    @property
    def decoded_key(self) -> str:
        """S3 event keys are URL-encoded with '+' for spaces."""
        return unquote_plus(self.key)


class S3Entity(_AwsShape):
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(_AwsShape):
    event_name: str = Field(alias="eventName")
    s3: S3Entity


class S3Notification(_AwsShape):
    """The body of an SQS message that S3 sent. A `s3:TestEvent` has no records."""

    records: list[S3EventRecord] = Field(default_factory=list, alias="Records")
    event: str | None = Field(default=None, alias="Event")

    @property
    def is_test_event(self) -> bool:
        return self.event == "s3:TestEvent"


class ManifestEntry(BaseModel):
    """One line of an inference manifest (JSON lines in the artifacts bucket)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    image_id: str
    bucket: str
    key: str


class JobRequest(BaseModel):
    """A job to run: `python -m batch_jobs.<name> <args...>`, optionally as an array job."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    name: Literal["infer", "train"]
    args: list[str] = Field(default_factory=list)
    array_size: int | None = Field(default=None, ge=2, le=10_000)
    environment: dict[str, str] = Field(default_factory=dict)
    # A stable id makes a resubmission recognisable (job name on Batch).
    job_name: str | None = None


class BatchJobStateDetail(_AwsShape):
    job_name: str = Field(alias="jobName")
    job_id: str = Field(alias="jobId")
    job_queue: str = Field(default="", alias="jobQueue")
    status: Literal[
        "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"
    ]
    status_reason: str | None = Field(default=None, alias="statusReason")
    job_definition: str = Field(default="", alias="jobDefinition")
    container: dict = Field(default_factory=dict)
    array_properties: dict | None = Field(default=None, alias="arrayProperties")
    parameters: dict = Field(default_factory=dict)


class BatchJobStateChange(_AwsShape):
    """EventBridge's "Batch Job State Change" event (source aws.batch)."""

    detail_type: Literal["Batch Job State Change"] = Field(alias="detail-type")
    source: Literal["aws.batch"]
    detail: BatchJobStateDetail


class SqsMessage(_AwsShape):
    """One record of an SQS event delivered to a Lambda."""

    message_id: str = Field(alias="messageId")
    body: str
    attributes: dict = Field(default_factory=dict)


class SqsEvent(_AwsShape):
    records: list[SqsMessage] = Field(default_factory=list, alias="Records")
