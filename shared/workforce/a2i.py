"""Amazon Augmented AI (A2I): relabel tasks as human loops of a flow definition, answered on
the crowd-image-classifier page by its workforce (private staff, a vendor, or public workers).

The flow definition (created by infra) holds the worker task template
(`template.a2i_worker_template()`), the workforce, the output S3 location and `TaskCount`: the
answers each loop gets (`answers_per_loop` here must equal it). A task with `max_assignments`
answers runs ceil(max_assignments / answers_per_loop) loops, named from the task id: the first
name is the task's external id, the others add `-<n>`, so `request_more` starts the missing
loops and a retry finds them there (ConflictException). `image_url` must be an `s3://` URI:
the template signs it each time a worker opens the task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.ports import RawAnswer, Workforce
from shared.tasks import RelabelTask, Vote
from shared.workforce.base import accept_votes, check_extra
from shared.workforce.template import a2i_input_content, answer_label

logger = logging.getLogger(__name__)

MAX_LOOP_NAME = 63
CONTENT_CLASSIFIERS = ["FreeOfPersonallyIdentifiableInformation"]  # catalog photos, no PII
MAX_OUTPUT_BYTES = 4 * 1024 * 1024

OutputReader = Callable[[str], bytes]  # s3:// URI -> the object's bytes

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_EXTRA_LOOP = re.compile(r"(.*-[0-9a-f]{12})-\d+")  # "<slug>-<hash>-<n>"


def loop_name(task_id: str, index: int = 0) -> str:
    """The human loop name of a task's `index`-th loop: lower-case letters, digits and '-',
    at most 63 characters, unique per task id (a hash of it), readable (a slug of it). The
    extra loops add `-<index>` to the first one's name."""
    if not 0 <= index < 1000:
        raise ValueError(f"loop index must be within [0, 1000), got {index}")
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:12]
    room = MAX_LOOP_NAME - len(f"-{digest}-999")  # the same slug for every loop of a task
    slug = _NOT_SLUG.sub("-", task_id.lower())[:room].strip("-") or "task"
    base = f"{slug}-{digest}"
    return f"{base}-{index}" if index else base


def base_loop_name(name: str) -> str:
    """The task's external id (its first loop's name) for any of its loop names, e.g. the one
    an A2I status-change event names."""
    match = _EXTRA_LOOP.fullmatch(name)
    return match.group(1) if match else name


def s3_output_reader(client: Any = None) -> OutputReader:
    """Reads `s3://bucket/key` through an `S3ObjectStore` per bucket."""
    from shared.aws.s3 import S3ObjectStore

    stores: dict[str, S3ObjectStore] = {}

    def read(uri: str) -> bytes:
        match = re.fullmatch(r"s3://([^/]+)/(.+)", uri)
        if not match:
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket, key = match.groups()
        store = stores.setdefault(bucket, S3ObjectStore(bucket, client=client))
        return store.get(key).body

    return read


class A2IWorkforce(Workforce):
    """Human loops of one A2I flow definition."""

    name = "a2i"

    def __init__(
        self,
        flow_definition_arn: str,
        *,
        answers_per_loop: int = 1,
        read_output: OutputReader | None = None,
        client: Any = None,
    ):
        if not flow_definition_arn:
            raise ValueError(
                "an A2I flow definition ARN is needed: set DRESSVISION_A2I_FLOW_DEFINITION_ARN"
            )
        if answers_per_loop < 1:
            raise ValueError(f"answers_per_loop must be at least 1, got {answers_per_loop}")
        self.flow_definition_arn = flow_definition_arn
        self.answers_per_loop = answers_per_loop
        self._read_output = read_output
        self._client = client

    @property
    def client(self) -> Any:
        """The sagemaker-a2i-runtime client, created on first use."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "sagemaker-a2i-runtime", config=Config(retries={"mode": "standard"})
            )
        return self._client

    def publish(self, task: RelabelTask, image_url: str) -> str | None:
        """Start the task's loops (those that exist already are left as they are)."""
        if not image_url.startswith("s3://"):
            raise ValueError(
                f"A2I needs the image's s3:// URI (the template signs it), got {image_url[:40]!r}"
            )
        content = a2i_input_content(task, image_url)
        for index in range(self._loops(task.max_assignments)):
            self._start(loop_name(task.task_id, index), content)
        return loop_name(task.task_id)

    def fetch_votes(self, task: RelabelTask) -> list[Vote]:
        """The answers of the task's completed loops, validated; one per worker."""
        answers: list[RawAnswer] = []
        workers: set[str] = set()
        for index in range(self._loops(task.max_assignments)):
            for answer in self._loop_answers(task, loop_name(task.task_id, index)):
                if answer.worker_id in workers:  # the same person in two loops counts once
                    logger.warning(
                        "task %s: dropped answer %s: worker %s answered already",
                        task.task_id,
                        answer.assignment_id,
                        answer.worker_id,
                    )
                    continue
                workers.add(answer.worker_id)
                answers.append(answer)
        return accept_votes(task, answers)

    def request_more(self, task: RelabelTask, extra: int) -> None:
        """Start the loops that `max_assignments + extra` answers need beyond the current ones.
        The image URI is read back from a completed loop's output."""
        check_extra(extra)
        have, need = self._loops(task.max_assignments), self._loops(task.max_assignments + extra)
        if need == have:
            return
        content = a2i_input_content(task, self._image_uri(task, have))
        for index in range(have, need):
            self._start(loop_name(task.task_id, index), content)

    def finish(self, task: RelabelTask) -> None:
        """Nothing to pay or close: a completed loop is done, its output stays in S3."""

    def _loops(self, answers: int) -> int:
        return math.ceil(answers / self.answers_per_loop)

    def _start(self, name: str, input_content: str) -> None:
        try:
            self.client.start_human_loop(
                HumanLoopName=name,
                FlowDefinitionArn=self.flow_definition_arn,
                HumanLoopInput={"InputContent": input_content},
                DataAttributes={"ContentClassifiers": CONTENT_CLASSIFIERS},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            logger.info("human loop %s exists already", name)

    def _image_uri(self, task: RelabelTask, loops: int) -> str:
        """The image URI the task was published with, from a completed loop's output (the
        runtime API does not return a loop's input)."""
        for index in range(loops):
            loop = self.client.describe_human_loop(HumanLoopName=loop_name(task.task_id, index))
            output = self._read_loop_output(loop) or {}
            content = output.get("inputContent")
            uri = content.get("taskObject") if isinstance(content, dict) else None
            if isinstance(uri, str) and uri.startswith("s3://"):
                return uri
        raise ValueError(
            f"task {task.task_id}: no completed human loop yet to read the image URI from; "
            "ask for more answers once one has completed"
        )

    def _loop_answers(self, task: RelabelTask, name: str) -> Iterator[RawAnswer]:
        try:
            loop = self.client.describe_human_loop(HumanLoopName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return  # being started by a concurrent request_more
            raise
        status = loop.get("HumanLoopStatus")
        if status in ("Failed", "Stopped"):
            logger.warning(
                "task %s: human loop %s is %s: %s",
                task.task_id,
                name,
                status,
                loop.get("FailureReason", ""),
            )
        output = self._read_loop_output(loop)
        if output is None:
            return
        for index, answer in enumerate(_list(output.get("humanAnswers"))):
            worker = answer.get("workerId") if isinstance(answer, dict) else None
            try:
                if not isinstance(worker, str) or not worker:
                    raise ValueError("no worker id")
                label = answer_label(answer.get("answerContent"))
            except ValueError as exc:
                logger.warning(
                    "task %s: dropped answer %d of loop %s (worker %s): %s",
                    task.task_id,
                    index,
                    name,
                    worker,
                    exc,
                )
                continue
            yield RawAnswer(worker, f"{name}/{index}", label, _time(answer))

    def _read_loop_output(self, loop: dict) -> dict | None:
        """The loop's output JSON once it is Completed; None before."""
        if loop.get("HumanLoopStatus") != "Completed":
            return None
        uri = loop.get("HumanLoopOutput", {}).get("OutputS3Uri")
        if not uri:
            return None
        reader = self._read_output or s3_output_reader()
        self._read_output = reader
        body = reader(uri)
        if len(body) > MAX_OUTPUT_BYTES:
            raise ValueError(f"human loop output {uri} is over {MAX_OUTPUT_BYTES} bytes")
        # Untrusted: a truncated or deeply nested document is a failure of this task's fetch
        # (a ValueError the collect pass records on the task), never a crash of the pass.
        try:
            output = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"human loop output {uri} is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"human loop output {uri} is nested too deeply") from None
        return output if isinstance(output, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _time(answer: dict) -> datetime:
    raw = answer.get("submissionTime")
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
