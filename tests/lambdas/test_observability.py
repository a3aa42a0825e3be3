"""What an operator sees of a Lambda invocation: one EMF document with the metrics, and JSON
log lines that carry the ids to search by."""

from __future__ import annotations

import io
import json

import pytest

from lambdas import batch_events, collect, ingest, observability
from shared import env
from shared.keys import current_model_key


def printed_json(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def logs(monkeypatch) -> io.StringIO:
    """What the JSON log handler writes (it holds the stdout of its creation, not capsys')."""
    stream = io.StringIO()
    for handler in observability.logger.handlers:
        monkeypatch.setattr(handler, "stream", stream)
    return stream


def emf_metrics(documents: list[dict]) -> dict[str, float]:
    """name -> value of the one EMF document among the printed lines."""
    (emf,) = [d for d in documents if "_aws" in d]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == env.METRICS_NAMESPACE
    assert directive["Dimensions"] == [["service"]] and emf["service"] == env.METRICS_SERVICE
    return {m["Name"]: sum(emf[m["Name"]]) for m in directive["Metrics"]}


@pytest.fixture
def uploads(aws, make_jpeg):
    aws["s3"].put_object(
        Bucket=aws["artifacts"], Key=current_model_key("facets"), Body=json.dumps({"version": "v1"})
    )
    aws["s3"].put_object(
        Bucket=aws["catalog"], Key="catalog/p-1/front.jpg", Body=make_jpeg((48, 64))
    )
    aws["s3"].put_object(Bucket=aws["catalog"], Key="catalog/p-2/bad.jpg", Body=b"GIF89a?")
    event = aws["receive_all"]()
    event["Records"].append(
        {"messageId": "poison-1", "receiptHandle": "r", "body": "{not json", "attributes": {}}
    )
    return event


def test_ingest_prints_its_metrics_and_logs_with_ids(uploads, lambda_context, capsys, logs):
    response = ingest.handler(uploads, lambda_context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "poison-1"}]}
    documents = printed_json(capsys.readouterr().out) + printed_json(logs.getvalue())

    assert emf_metrics(documents) == {
        env.METRIC_IMAGES_INGESTED: 1.0,
        env.METRIC_IMAGES_INVALID: 1.0,
        env.METRIC_JOBS_SUBMITTED: 0.0,  # queued for the inference window, not submitted
    }
    logs = [d for d in documents if "_aws" not in d]
    (failed,) = [d for d in logs if d["level"] == "ERROR"]
    assert failed["message_id"] == "poison-1" and "poison-1" in failed["message"]
    assert "image_id" not in failed  # the previous message's image is not this one's
    assert failed["function_name"] == lambda_context.function_name
    (summary,) = [d for d in logs if d["message"].startswith("ingest batch")]
    assert "'inference_queued': 1" in summary["message"]
    assert summary["name"] == "lambdas.ingest" and "cold_start" in summary


def test_the_ids_do_not_leak_into_the_next_invocation(uploads, lambda_context, capsys, logs):
    ingest.handler(uploads, lambda_context)
    capsys.readouterr()
    logs.seek(0)
    logs.truncate()
    with open("tests/events/batch_job_state_change_succeeded.json") as handle:
        batch_events.handler(json.load(handle), lambda_context)
    documents = printed_json(capsys.readouterr().out)
    (line,) = [d for d in printed_json(logs.getvalue()) if d["message"].startswith("job ")]
    assert "message_id" not in line and "image_id" not in line and line["job_id"]
    assert line["name"] == "lambdas.batch_events"
    assert emf_metrics(documents)[env.METRIC_JOBS_SUBMITTED] == 0.0


def test_collect_reports_answers_and_changed_labels(aws, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv(env.TASKS_TABLE, "Tasks")
    import boto3

    from lambdas import wiring
    from shared.aws.tasks_dynamodb import create_tasks_table

    create_tasks_table(boto3.client("dynamodb"), "Tasks")
    wiring.reset()
    assert collect.handler({"source": "aws.scheduler"}, lambda_context)["decided"] == 0
    assert emf_metrics(printed_json(capsys.readouterr().out)) == {
        env.METRIC_ANSWERS_RECEIVED: 0.0,
        env.METRIC_LABELS_CHANGED: 0.0,
        env.METRIC_JOBS_SUBMITTED: 0.0,
    }


def test_a_paid_workforce_reports_what_it_spent_and_what_is_left(lambda_context, capsys):
    from decimal import Decimal

    from lambdas.review import budget_spent

    class PaidWorkforce:
        def __init__(self):
            self.left = iter([Decimal("10.00"), Decimal("9.40")])

        def budget_left_usd(self) -> Decimal:
            return next(self.left)

    @observability.instrument
    def publishing(event, context):
        with budget_spent(PaidWorkforce()):
            pass  # publishing 2 tasks of 3 answers at $0.10 each
        with budget_spent(object()):  # an unpaid workforce reports no budget
            pass
        return {}

    publishing({}, lambda_context)
    assert emf_metrics(printed_json(capsys.readouterr().out)) == {
        env.METRIC_BUDGET_SPENT_USD: 0.6,
        env.METRIC_BUDGET_LEFT_USD: 9.4,
    }


def test_task_level_lines_carry_the_task_id(relabel_ports, crowd, logs):
    """An operator searches one task's story by `task_id`: every task-level line of collect
    (a failure, a decision) is a JSON document with the id as its own key."""
    from lambdas import collect as collect_lambda
    from lambdas import review as review_lambda

    class Down:
        name = crowd.name

        def __getattr__(self, attribute):
            return getattr(crowd, attribute)

        def fetch_votes(self, task):
            raise ConnectionError("provider down")

    observability._configure_once()  # what the first invocation in a Lambda does
    message = {"Records": [{"messageId": "m1", "body": json.dumps({"model_version": "v1"})}]}
    review_lambda.handle_sqs_batch(message, relabel_ports, crowd)
    task_ids = {t.task_id for t in relabel_ports.tasks.list()}
    assert task_ids

    collect_lambda.handle_event({"source": "aws.events"}, relabel_ports, Down())
    failed = [d for d in printed_json(logs.getvalue()) if d["level"] == "WARNING"]
    assert {d.get("task_id") for d in failed} == task_ids
    assert all("provider down" in d["message"] for d in failed)

    logs.seek(0)
    logs.truncate()
    for _ in range(3):
        collect_lambda.handle_event({"source": "aws.events"}, relabel_ports, crowd)
    lines = printed_json(logs.getvalue())
    decided = [d for d in lines if d.get("task_id") and "posterior" in d["message"]]
    assert decided and {d["task_id"] for d in decided} <= task_ids
    for line in decided:
        assert line["task_id"] in line["message"] and line["image_id"] in line["message"]
        assert line["level"] == "INFO" and line["name"] == "shared.relabel"
    summary = [d for d in lines if d["message"].startswith("collect:")]
    assert summary and "task_id" not in summary[-1]  # a pass's summary is not one task's
