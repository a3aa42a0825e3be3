"""The one-machine deployment: the same handlers and jobs as on AWS, wired to embedded backends.

State lives under a home folder (`--home`, `$DRESSVISION_HOME`, else `./.dressvision`): SQLite
for the tables, folders for the buckets, job logs. S3 notifications, SQS queues and EventBridge
are in-process: an upload puts the object and queues an S3-shaped notification on the ingest
queue; `drain()` delivers queued messages to the handlers the way the Lambda event source
mapping does; jobs run as subprocesses and report "Batch Job State Change" events back here.
"""

from __future__ import annotations

import json
import logging
import os
import queue
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote_plus

from shared.backends import build_ports
from shared.embedded.jobs import LocalJobRunner
from shared.embedded.queues import LocalQueue
from shared.env import HOME, Settings
from shared.ports import ObjectInfo, Ports

logger = logging.getLogger(__name__)

DEFAULT_HOME = Path(".dressvision")
EVENTS_LOG = "events.jsonl"

EventHandler = Callable[[dict], None]


def default_home() -> Path:
    return Path(os.environ.get(HOME) or DEFAULT_HOME)


def s3_notification(bucket: str, info: ObjectInfo) -> dict:
    """An S3 ObjectCreated notification as S3 sends it to SQS (keys URL-encoded)."""
    now = datetime.now(UTC)
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "local",
                "eventTime": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "catalog-uploads",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": quote_plus(info.key, safe="/"),
                        "size": info.size,
                        "eTag": (info.etag or "").strip('"'),
                        "sequencer": f"{int(now.timestamp() * 1e6):016X}",
                    },
                },
            }
        ]
    }


class LocalRuntime:
    """Ports, queues and event rules of one home folder."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = Path(settings.home)
        self._job_events: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self.ingest_queue = LocalQueue("dressvision-ingest")
        self.review_queue = LocalQueue("dressvision-review")
        ports = build_ports(settings, on_job_event=self._job_events.put)
        if not isinstance(ports.jobs, LocalJobRunner):  # build_ports' choice for "local"
            raise TypeError(f"the local runtime needs local jobs, got {type(ports.jobs)}")
        # The same runner as `ports.jobs`, with its local interface (wait, status, log_path).
        self.jobs: LocalJobRunner = ports.jobs
        self.ports: Ports = replace(ports, review_queue=self.review_queue)
        # EventBridge's rule for "Batch Job State Change" -> λ batch_events, as on AWS.
        self.job_event_handlers: list[EventHandler] = [self._batch_events_handler]

    @classmethod
    def open(cls, home: str | Path | None = None, environ: Mapping[str, str] | None = None):
        """The runtime of `home` (created on first use), with settings from the environment."""
        base = Settings.from_env(
            {**(os.environ if environ is None else environ), "DRESSVISION_BACKEND": "local"}
        )
        home_path = Path(home) if home is not None else default_home()
        home_path.mkdir(parents=True, exist_ok=True)
        return cls(replace(base, home=home_path.resolve()))

    @classmethod
    def open_existing(
        cls, home: str | Path | None = None, environ: Mapping[str, str] | None = None
    ) -> LocalRuntime | None:
        """The runtime of `home` if it holds state, else None: read-only commands answer "none
        yet" without creating a folder or a state file in a home that was never used."""
        from shared.backends import LOCAL_DB

        home_path = Path(home) if home is not None else default_home()
        if not (home_path / LOCAL_DB).is_file():
            return None
        return cls.open(home_path, environ)

    def upload(
        self,
        key: str,
        body: bytes,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Put a photo into the catalog bucket and queue its S3 notification, as S3 would."""
        info = self.ports.catalog.put(key, body, metadata=metadata, content_type=content_type)
        self.ingest_queue.send(json.dumps(s3_notification(self.ports.catalog.name, info)))
        return info

    def _ingest_handler(self, event: dict) -> dict:
        from lambdas.ingest import handle_sqs_batch  # the Lambda's own logic, unchanged

        return handle_sqs_batch(event, self.ports)

    def _batch_events_handler(self, event: dict) -> None:
        from lambdas.batch_events import on_job_state_change
        from shared.messages import BatchJobStateChange

        result = on_job_state_change(self.ports, BatchJobStateChange.model_validate(event))
        logger.info("batch_events: %s", result)

    def _review_handler(self, event: dict) -> dict:
        from lambdas.review import handle_sqs_batch
        from shared.backends import build_workforce

        return handle_sqs_batch(event, self.ports, build_workforce(self.settings, self.ports))

    def drain(self) -> int:
        """Deliver queued messages and job events until none are left. Returns how many."""
        delivered = 0
        while True:
            n = (
                self.ingest_queue.deliver(self._ingest_handler)
                + self._flush_inference()
                + self._dispatch_job_events()
                + self.review_queue.deliver(self._review_handler)
            )
            if n == 0:
                return delivered
            delivered += n

    def _flush_inference(self) -> int:
        """The inference window's flush (a schedule on AWS): here, whenever the queues are
        drained, e.g. at the end of an import. Returns how many jobs it submitted."""
        from shared.inference import flush_pending

        return len(flush_pending(self.ports))

    def _dispatch_job_events(self) -> int:
        n = 0
        while True:
            try:
                event = self._job_events.get_nowait()
            except queue.Empty:
                return n
            n += 1
            with (self.home / EVENTS_LOG).open("a") as log:
                log.write(json.dumps(event) + "\n")
            for handle in self.job_event_handlers:
                try:
                    handle(event)
                except Exception:  # one rule's failure must not hide the event from others
                    logger.exception("job event handler %s failed", handle)

    def wait_for_jobs(self, timeout: float | None = None) -> None:
        """Block until every submitted job ended, then deliver what they caused."""
        self.drain()
        self.jobs.wait(timeout=timeout)
        self.drain()

    @property
    def dead_letters(self) -> list[str]:
        return [m.body for q in (self.ingest_queue, self.review_queue) for m in q.dead_letters]
