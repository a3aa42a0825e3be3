"""What an operator sees of the Lambdas: structured JSON logs and CloudWatch metrics, with
aws-lambda-powertools.

- Logs: powertools' `Logger` formats every line as JSON (cold start, function name, request id,
  and the ids an operator searches by: `message_id`, `image_id`, `task_id`, `job_id`). The
  plain functions keep the standard `logging` (so they run unchanged on one machine, where
  nothing prints JSON on stdout); in a Lambda their loggers get the JSON formatter too, and
  `bind(...)` adds ids to every line that follows within the invocation.
- Metrics: `Metrics` writes them in the embedded metric format (EMF): one JSON document on
  stdout per invocation, which CloudWatch Logs turns into metrics (no PutMetricData call, no
  extra permission). The handler adds them from the summary its plain function returns.

Namespace, dimension and metric names are constants in `shared.env` (infra's alarms use them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from decimal import Decimal
from functools import wraps

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from shared import env

logger = Logger(service=env.METRICS_SERVICE)
metrics = Metrics(namespace=env.METRICS_NAMESPACE, service=env.METRICS_SERVICE)

_bound: ContextVar[dict[str, str] | None] = ContextVar("dressvision_log_keys", default=None)


def bind(**keys: object) -> None:
    """Add ids (message_id, image_id, task_id, job_id) to every log line that follows in this
    invocation; a None value removes the key. `instrument` forgets them between invocations."""
    bound = {**(_bound.get() or {}), **{k: str(v) for k, v in keys.items()}}
    _bound.set({k: v for k, v in bound.items() if keys.get(k, v) is not None})


class _BoundKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_bound.get() or {}).items():
            setattr(record, key, value)  # the JSON formatter prints a record's extra attributes
        return True


_OUR_LOGGERS = {"lambdas", "shared"}  # the parents of every module logger of ours
_configured: list[bool] = []


def _configure_once() -> None:
    """In a Lambda only (on its first invocation, never at import: the one-machine runtime
    imports the handler modules and keeps its own logging): our modules' standard loggers get
    powertools' JSON handler, which adds the bound ids."""
    if _configured:
        return
    for name in _OUR_LOGGERS:
        logging.getLogger(name)  # registered, so that powertools finds them
    copy_config_to_registered_loggers(source_logger=logger, include=set(_OUR_LOGGERS))
    for handler in logger.handlers:  # the same handler object now serves our loggers too
        handler.addFilter(_BoundKeys())
    _configured.append(True)


def count(name: str, value: float, unit: str = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def usd(name: str, amount: Decimal) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.NoUnit, value=float(amount))


def instrument(handler: Callable[[dict, object], dict]) -> Callable[[dict, object], dict]:
    """The decorators every handler wears: JSON logs with the Lambda context, the EMF document
    flushed at the end of each invocation (also when it raises), ids reset per invocation."""

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @wraps(handler)
    def wrapped(event: dict, context: object) -> dict:
        _configure_once()
        logger.append_keys(name="%(name)s")  # which module logged (clear_state dropped it)
        _bound.set(None)
        return handler(event, context)

    return wrapped


def message_ids(event: Mapping) -> list[str]:
    """The SQS message ids of a batch (logged by the handler: one line names every id)."""
    return [r.get("messageId", "") for r in event.get("Records", []) if isinstance(r, Mapping)]
