"""A JobRunner that runs jobs as local subprocesses, the way AWS Batch would run them.

Same contract as Batch: `python -m batch_jobs.<name> <args>` with os.environ + the settings'
environment + the request's + `AWS_BATCH_*`; an array job runs one child per index (bounded
parallelism) and succeeds only if every child does. When a job ends, `on_event` receives a dict
shaped like EventBridge's "Batch Job State Change" event, as a Lambda would on AWS. Only the
parent of an array job is reported (one event per submitted job).

Watcher threads are not daemons on purpose: a process that submitted jobs waits for them (and
delivers their events) before it exits, instead of leaving orphan subprocesses behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shared.aws.batch import RESERVED_ENV_PREFIX, check_environment, job_command, job_name_for
from shared.env import BATCH_ARRAY_INDEX, BATCH_JOB_ID, Settings
from shared.errors import JobSubmissionError, NotFoundError
from shared.messages import JobRequest
from shared.ports import JobRunner

logger = logging.getLogger(__name__)

ACCOUNT = "000000000000"  # local jobs belong to no AWS account; ARNs keep AWS's shape
REGION = "local"
SUCCEEDED_REASON = "Essential container in task exited"  # what Batch says on success
LOG_TAIL_LINES = 10


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Run:
    """One process: a plain job, or one child of an array job."""

    index: int | None
    exit_code: int
    reason: str
    log_path: Path
    started_at: int
    stopped_at: int


@dataclass
class _Job:
    job_id: str
    job_name: str
    request: JobRequest
    command: list[str]
    created_at: int
    status: str = "SUBMITTED"
    status_reason: str | None = None
    started_at: int | None = None
    stopped_at: int | None = None
    runs: list[_Run] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class LocalJobRunner(JobRunner):
    """Runs jobs as subprocesses; logs go to `log_dir/<job id>.log` (array children:
    `<job id>.<index>.log`, the parent's log lists them)."""

    def __init__(
        self,
        settings: Settings,
        *,
        log_dir: Path,
        on_event: Callable[[dict], None] | None = None,
        python: str = sys.executable,
        cwd: Path | None = None,
        module_prefix: str = "batch_jobs",
        max_parallel: int = 2,
    ):
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        self.settings = settings
        self.log_dir = Path(log_dir)
        self.on_event = on_event
        self.python = python
        self.cwd = cwd
        self.module_prefix = module_prefix
        self.max_parallel = max_parallel
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def submit(self, request: JobRequest) -> str:
        """Start the job in the background and return its id at once."""
        check_environment(request)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JobSubmissionError(f"cannot create the job log folder {self.log_dir}") from exc
        job = _Job(
            job_id=str(uuid.uuid4()),
            job_name=job_name_for(request),
            request=request,
            command=job_command(request, python=self.python, module_prefix=self.module_prefix),
            created_at=_now_ms(),
        )
        with self._lock:
            self._jobs[job.job_id] = job
        threading.Thread(target=self._watch, args=(job,), name=f"job-{job.job_id}").start()
        return job.job_id

    def status(self, job_id: str) -> str:
        """SUBMITTED, RUNNING, SUCCEEDED or FAILED."""
        return self._job(job_id).status

    def log_path(self, job_id: str) -> Path:
        """Where the job's output goes (for an array job: the list of its children's logs)."""
        self._job(job_id)
        return self.log_dir / f"{job_id}.log"

    def wait(self, job_id: str | None = None, timeout: float | None = None) -> dict[str, str]:
        """Block until `job_id` (or every job, including jobs submitted meanwhile, e.g. by
        `on_event`) has ended; return {job id: status}. `TimeoutError` after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                jobs = [self._job(job_id)] if job_id else list(self._jobs.values())
            pending = [job for job in jobs if not job.done.is_set()]
            if not pending:
                return {job.job_id: job.status for job in jobs}
            for job in pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not job.done.wait(left):
                    raise TimeoutError(
                        f"job {job.job_id} ({job.job_name}) is still {job.status} after "
                        f"{timeout}s; its output: {self.log_dir / f'{job.job_id}.log'}"
                    )

    # -- internals --------------------------------------------------------------------------

    def _job(self, job_id: str) -> _Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise NotFoundError(f"no local job {job_id!r} was submitted by this runner") from None

    def _watch(self, job: _Job) -> None:
        try:
            job.status, job.started_at = "RUNNING", _now_ms()
            size = job.request.array_size
            if size:
                with ThreadPoolExecutor(min(self.max_parallel, size)) as pool:
                    job.runs = list(pool.map(lambda i: self._run(job, i), range(size)))
                self._write_array_log(job)
            else:
                job.runs = [self._run(job, None)]
            failed = [run for run in job.runs if run.exit_code != 0]
            job.status = "FAILED" if failed else "SUCCEEDED"
            job.status_reason = _job_reason(job.runs, failed, array=bool(size))
        except Exception as exc:  # the runner must survive any job; the event tells why
            logger.exception("local job %s could not run", job.job_id)
            job.status, job.status_reason = "FAILED", f"could not run the job: {exc!r}"
        finally:
            job.stopped_at = _now_ms()
            self._emit(job)
            job.done.set()

    def _run(self, job: _Job, index: int | None) -> _Run:
        run_id = job.job_id if index is None else f"{job.job_id}:{index}"
        log_name = job.job_id if index is None else f"{job.job_id}.{index}"
        log_path = self.log_dir / f"{log_name}.log"
        env = self._environment(job, run_id, index)
        started = _now_ms()
        with log_path.open("wb") as log:
            try:
                code = subprocess.run(
                    job.command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    check=False,
                ).returncode
            except OSError as exc:  # e.g. the interpreter does not exist
                log.write(f"cannot start {job.command[0]}: {exc}\n".encode())
                code = 127
        killed_by = ""
        if code < 0:  # killed by a signal: report it the way a container would (128 + n)
            killed_by, code = f" (killed by {_signal_name(-code)})", 128 - code
        reason = _run_reason(code, killed_by, log_path)
        return _Run(index, code, reason, log_path, started, _now_ms())

    def _environment(self, job: _Job, run_id: str, index: int | None) -> dict[str, str]:
        # Batch's own variables are never inherited (this process may itself be a Batch job).
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(RESERVED_ENV_PREFIX)}
        env = {
            **inherited,
            **self.settings.to_env(),
            **job.request.environment,
            BATCH_JOB_ID: run_id,
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": self.settings.job_queue,
        }
        if index is not None:
            env[BATCH_ARRAY_INDEX] = str(index)
            env["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.request.array_size)
        return env

    def _write_array_log(self, job: _Job) -> None:
        lines = [f"child {r.index}: exit code {r.exit_code}, log {r.log_path}" for r in job.runs]
        (self.log_dir / f"{job.job_id}.log").write_text("\n".join(lines) + "\n")

    def _emit(self, job: _Job) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(self._event(job))
        except Exception:  # a failing consumer must not take the runner down; it is logged
            logger.exception("on_event failed for local job %s", job.job_id)

    def _arn(self, resource: str) -> str:
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:{resource}"

    def _event(self, job: _Job) -> dict:
        """The EventBridge "Batch Job State Change" event of a finished job."""
        job_arn = self._arn(f"job/{job.job_id}")
        size = job.request.array_size
        container: dict = {"command": job.command, "logStreamName": str(self.log_path(job.job_id))}
        if not size and job.runs:  # an array parent has no exit code of its own
            container["exitCode"] = job.runs[0].exit_code
        detail = {
            "jobArn": job_arn,
            "jobName": job.job_name,
            "jobId": job.job_id,
            "jobQueue": self._arn(f"job-queue/{self.settings.job_queue}"),
            "status": job.status,
            "statusReason": job.status_reason,
            "attempts": [] if size else [_attempt(run) for run in job.runs],
            "createdAt": job.created_at,
            "startedAt": job.started_at,
            "stoppedAt": job.stopped_at,
            "dependsOn": [],
            "jobDefinition": self.settings.job_definitions.get(
                job.request.name, f"local-{job.request.name}"
            ),
            "parameters": {},
            "container": container,
            "tags": {},
        }
        if size:
            detail["arrayProperties"] = {"statusSummary": _status_summary(job.runs), "size": size}
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Batch Job State Change",
            "source": "aws.batch",
            "account": ACCOUNT,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [job_arn],
            "detail": detail,
        }


def _attempt(run: _Run) -> dict:
    return {
        "container": {"exitCode": run.exit_code, "logStreamName": str(run.log_path)},
        "startedAt": run.started_at,
        "stoppedAt": run.stopped_at,
        "statusReason": run.reason,
    }


def _status_summary(runs: list[_Run]) -> dict[str, int]:
    summary = dict.fromkeys(
        ("STARTING", "FAILED", "RUNNING", "SUCCEEDED", "RUNNABLE", "SUBMITTED", "PENDING"), 0
    )
    for run in runs:
        summary["SUCCEEDED" if run.exit_code == 0 else "FAILED"] += 1
    return summary


def _job_reason(runs: list[_Run], failed: list[_Run], *, array: bool) -> str:
    if not failed:
        return SUCCEEDED_REASON
    if not array:
        return failed[0].reason
    first = failed[0]
    return (
        f"Array Child Job failed: {len(failed)} of {len(runs)} children failed; "
        f"child {first.index}: {first.reason}"
    )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _run_reason(code: int, killed_by: str, log_path: Path) -> str:
    if code == 0:
        return SUCCEEDED_REASON
    return f"exit code {code}{killed_by}; last lines of {log_path}:\n{_tail(log_path)}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 4096) -> str:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - max_bytes))
        text = f.read().decode(errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:])
