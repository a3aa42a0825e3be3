"""The relabel loop against hostile answers, stuck loops, a shared budget and a changed taxonomy
(issue 11: findings 12, 13, 14, 15, 16). Each test names its findings."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import ANY, Stubber

from shared.backends import build_ports
from shared.embedded.tasks_sqlite import SqliteTaskStore
from shared.env import TASK_DEADLINE_HOURS, Settings
from shared.errors import BudgetExceededError
from shared.records import LabelRecord, LabelSource
from shared.relabel import answer_as_staff, collect
from shared.tasks import RelabelTask
from shared.workforce import mturk
from shared.workforce.a2i import A2IWorkforce, loop_name
from shared.workforce.internal import InternalWorkforce, record_staff_answer
from shared.workforce.mturk import SANDBOX_ENDPOINT, MTurkWorkforce, committed_spend, parse_answer

NECKLINES = ("v-neck", "crew", "boat", "sweetheart", "halter")
FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/dressvision-relabel"
HIT_ID = "3AQN9REUTFGXCRWFMDCEI5PJ8NZYD2"


@pytest.fixture
def ports(tmp_path, recording_jobs):
    settings = Settings(home=tmp_path, retrain_threshold=100, max_assignments=3)
    p = replace(build_ports(settings), jobs=recording_jobs)
    for i in range(3):
        p.labels.register(
            LabelRecord(
                image_id=f"p{i}/0",
                product_id=f"p{i}",
                object_key=f"catalog/p{i}/0.jpg",
                split="train",
                facets={"neckline": "crew"},
                sources={"neckline": LabelSource.CATALOG},
            )
        )
    return p


def new_task(i: int, provider="internal", **changes) -> RelabelTask:
    task = RelabelTask.new(
        image_id=f"p{i}/0",
        facet="neckline",
        round=1,
        allowed=NECKLINES,
        current_label="crew",
        label_version=1,
        suggested="v-neck",
        confidence=0.9,
        provider=provider,
        max_assignments=3,
    )
    return task.model_copy(update=changes)


def deep_json(depth: int = 50_000) -> str:
    return "[" * depth + "]" * depth


# -- finding 12: hostile answers fail one task, recorded; the pass goes on ---------------------


def test_a_deeply_nested_mturk_answer_is_a_dropped_answer_not_a_crash():
    answer = (
        f'<QuestionFormAnswers xmlns="{mturk.ANSWER_NS}"><Answer>'
        f"<QuestionIdentifier>taskAnswers</QuestionIdentifier>"
        f"<FreeText>{deep_json(20_000)}</FreeText></Answer></QuestionFormAnswers>"
    )
    assert len(answer.encode()) < mturk.MAX_ANSWER_BYTES
    with pytest.raises(ValueError, match="nested"):
        parse_answer(answer)


@pytest.mark.parametrize("output", [b'{"humanAnswers": [{"workerId": "w1", "answ', None])
def test_a_truncated_or_nested_a2i_output_fails_its_task_alone(ports, aws_env, output):
    output = output or deep_json().encode()
    client = boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")
    workforce = A2IWorkforce(FLOW, read_output=lambda uri: output, client=client)
    for i in range(2):
        ports.tasks.create(new_task(i, provider="a2i", external_id=loop_name(f"t{i}")))
    with Stubber(client) as stub:
        for i in range(2):
            name = loop_name(new_task(i).task_id)
            stub.add_response(
                "describe_human_loop",
                {
                    "CreationTime": datetime(2025, 5, 1, tzinfo=UTC),
                    "HumanLoopStatus": "Completed",
                    "HumanLoopName": name,
                    "HumanLoopArn": f"arn:aws:sagemaker:us-east-1:1:human-loop/{name}",
                    "FlowDefinitionArn": FLOW,
                    "HumanLoopOutput": {"OutputS3Uri": f"s3://out/{name}/output.json"},
                },
                {"HumanLoopName": name},
            )
        summary = collect(ports, workforce)
    assert summary.failed == 2
    for i in range(2):
        task = ports.tasks.get(new_task(i).task_id)
        assert task.status == "open" and task.failures == 1
        assert "output" in task.note


def test_one_failing_task_does_not_stop_the_pass(ports):
    class OneBadTask(InternalWorkforce):
        def fetch_votes(self, task):
            if task.image_id == "p0/0":
                raise RecursionError("maximum recursion depth exceeded")
            return super().fetch_votes(task)

    workforce = OneBadTask(ports.tasks)
    for i in range(2):
        ports.tasks.create(new_task(i))
    task_id = new_task(1).task_id
    record_staff_answer(ports.tasks, task_id, "v-neck", "w1")
    record_staff_answer(ports.tasks, task_id, "v-neck", "w2")
    record_staff_answer(ports.tasks, task_id, "v-neck", "w3")
    summary = collect(ports, workforce)
    assert summary.failed == 1
    assert summary.votes == 3 and summary.decided + summary.asked_more == 1  # p1 went on
    failed = ports.tasks.get(new_task(0).task_id)
    assert failed.status == "open" and "recursion" in failed.note


# -- finding 13: every task has a deadline, then goes to staff ---------------------------------


def describe(name: str, status: str) -> dict:
    return {
        "CreationTime": datetime(2025, 5, 1, tzinfo=UTC),
        "HumanLoopStatus": status,
        "FailureReason": "the workforce did not answer in time",
        "HumanLoopName": name,
        "HumanLoopArn": f"arn:aws:sagemaker:us-east-1:1:human-loop/{name}",
        "FlowDefinitionArn": FLOW,
    }


def test_a_task_past_its_deadline_escalates_to_staff(ports, aws_env):
    old = datetime.now(UTC) - timedelta(hours=Settings.task_deadline_hours + 1)
    late, recent = new_task(0, provider="a2i", created_at=old), new_task(1, provider="a2i")
    for task in (late, recent):
        ports.tasks.create(task.model_copy(update={"external_id": loop_name(task.task_id)}))
    client = boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")
    workforce = A2IWorkforce(FLOW, answers_per_loop=3, read_output=lambda uri: b"", client=client)
    with Stubber(client) as stub:
        for task, status in ((late, "Failed"), (recent, "InProgress")):
            name = loop_name(task.task_id)
            stub.add_response(
                "describe_human_loop", describe(name, status), {"HumanLoopName": name}
            )
        summary = collect(ports, workforce)
        stub.assert_no_pending_responses()
    assert summary.escalated == 1 and summary.waiting == 1
    escalated = ports.tasks.get(late.task_id)
    assert escalated.status == "escalated" and "deadline" in escalated.note
    assert ports.tasks.get(recent.task_id).status == "open"
    assert answer_as_staff(ports, late.task_id, "boat") == "changed"


def test_the_deadline_is_a_setting():
    assert Settings.from_env({TASK_DEADLINE_HOURS: "12"}).task_deadline_hours == 12
    assert Settings().task_deadline_hours > 0
    with pytest.raises(ValueError, match=TASK_DEADLINE_HOURS):
        Settings(task_deadline_hours=0)


# -- finding 14: the MTurk budget is shared, current state -------------------------------------


def test_two_workforces_sharing_one_store_never_pass_the_budget(tmp_path, aws_env):
    store = SqliteTaskStore(tmp_path / "tasks.db")
    reward = Decimal("0.05")
    clients = [
        boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT)
        for _ in range(2)
    ]
    stubs = [Stubber(c) for c in clients]
    workforces = [
        MTurkWorkforce(
            budget_usd=Decimal("1.00"),
            spent_usd=lambda: committed_spend(store.list(), reward),
            ledger=store,
            client=c,
        )
        for c in clients
    ]
    # $0.18 a task (3 x (0.05 + 0.01 fee)): five fit in $1.00. A publishes 0, 2, 4; B 1, 3.
    for n, (stub, publishes) in enumerate(zip(stubs, (3, 2), strict=True)):
        for k in range(publishes):
            stub.add_response("get_account_balance", {"AvailableBalance": "100.00"}, {})
            if k == 0:
                stub.add_response("create_hit_type", {"HITTypeId": "T" * 30}, None)
            hit = f"{n}{k}".ljust(30, "H")
            stub.add_response(
                "create_hit_with_hit_type",
                {"HIT": {"HITId": hit}},
                {
                    **dict.fromkeys(
                        (
                            "HITTypeId",
                            "MaxAssignments",
                            "LifetimeInSeconds",
                            "Question",
                            "RequesterAnnotation",
                            "UniqueRequestToken",
                        ),
                        ANY,
                    )
                },
            )
        stub.activate()
    refused = 0
    for i in range(10):
        workforce = workforces[i % 2]
        task = new_task(i, provider="mturk")
        try:
            hit = workforce.publish(task, "https://example.com/a.jpg")
        except BudgetExceededError:
            refused += 1
            continue
        store.create(task.model_copy(update={"external_id": hit}))
    for stub in stubs:
        stub.assert_no_pending_responses()
    assert refused == 5
    assert committed_spend(store.list(), reward) == Decimal("0.90")


# -- finding 15: a staff answer expires the HIT ------------------------------------------------


def test_a_staff_answer_on_a_task_with_a_hit_expires_the_hit(ports, aws_env):
    client = boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT)
    workforce = MTurkWorkforce(budget_usd=Decimal("10"), client=client)
    task = new_task(0, provider="mturk", external_id=HIT_ID)
    ports.tasks.create(task)
    with Stubber(client) as stub:
        stub.add_response(
            "list_assignments_for_hit",
            {"Assignments": [], "NumResults": 0},
            {"HITId": HIT_ID, "AssignmentStatuses": ["Submitted"], "MaxResults": 100},
        )
        stub.add_response(
            "update_expiration_for_hit", {}, {"HITId": HIT_ID, "ExpireAt": mturk.EXPIRE_NOW}
        )
        assert answer_as_staff(ports, task.task_id, "boat", workforce=workforce) == "changed"
        stub.assert_no_pending_responses()
    assert ports.tasks.get(task.task_id).status == "decided"


# -- finding 16: tasks whose facet or labels left the taxonomy are closed ----------------------


def test_tasks_whose_facet_or_labels_left_the_taxonomy_are_closed_with_a_reason(ports):
    renamed = ("v-neck", "crew", "boat", "sweetheart", "halterneck")  # "halter" renamed
    gone_label = new_task(0).model_copy(update={"allowed": renamed, "current_label": "crew"})
    gone_facet = RelabelTask.new(
        image_id="p1/0",
        facet="collar",
        round=1,
        allowed=("peter-pan", "mandarin"),
        current_label="mandarin",
        label_version=1,
        suggested="peter-pan",
        confidence=0.9,
        provider="internal",
        max_assignments=3,
    )
    fine = new_task(2)
    for task in (gone_label, gone_facet, fine):
        ports.tasks.create(task)
    summary = collect(ports, InternalWorkforce(ports.tasks))
    assert summary.closed == 2 and summary.waiting == 1
    for task in (gone_label, gone_facet):
        stored = ports.tasks.get(task.task_id)
        assert stored.status == "closed" and "taxonomy" in stored.note
    assert ports.tasks.get(fine.task_id).status == "open"
