"""Amazon A2I adapter against botocore's Stubber (requests checked against the real API model):
human loops started idempotently, their S3 output parsed as untrusted answers."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from shared.tasks import RelabelTask
from shared.workforce.a2i import A2IWorkforce, base_loop_name, loop_name, s3_output_reader
from shared.workforce.template import a2i_worker_template

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/dressvision-relabel"
IMAGE_URI = "s3://catalog/catalog/p1/front.jpg"
SLEEVES = ("sleeveless", "cap", "short", "three-quarter", "long")
TASK_ID = "p1/front#sleeve#2"
OUTPUT = "s3://a2i-out/dressvision-relabel/2025/05/01/12/00/00/{name}/output.json"


def task(max_assignments: int = 3) -> RelabelTask:
    return RelabelTask.new(
        image_id="p1/front",
        facet="sleeve",
        round=2,
        allowed=SLEEVES,
        current_label="long",
        label_version=5,
        suggested="short",
        confidence=0.91,
        provider="a2i",
        max_assignments=max_assignments,
    )


@pytest.fixture
def client(aws_env):
    return boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")


@pytest.fixture
def stub(client):
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


class Outputs(dict):
    """The output bucket: URI -> JSON document (a callable reader, as injected in production)."""

    def __call__(self, uri: str) -> bytes:
        return json.dumps(self[uri]).encode()


def expect_start(stub: Stubber, name: str) -> None:
    stub.add_response(
        "start_human_loop",
        {"HumanLoopArn": f"arn:aws:sagemaker:us-east-1:123456789012:human-loop/{name}"},
        {
            "HumanLoopName": name,
            "FlowDefinitionArn": FLOW,
            "HumanLoopInput": {"InputContent": ANY},
            "DataAttributes": {"ContentClassifiers": ["FreeOfPersonallyIdentifiableInformation"]},
        },
    )


def expect_describe(stub: Stubber, name: str, status: str = "Completed") -> None:
    response = {
        "CreationTime": datetime(2025, 5, 1, 12, tzinfo=UTC),
        "HumanLoopStatus": status,
        "HumanLoopName": name,
        "HumanLoopArn": f"arn:aws:sagemaker:us-east-1:123456789012:human-loop/{name}",
        "FlowDefinitionArn": FLOW,
    }
    if status == "Completed":
        response["HumanLoopOutput"] = {"OutputS3Uri": OUTPUT.format(name=name)}
    stub.add_response("describe_human_loop", response, {"HumanLoopName": name})


def human_answer(worker: str | None, content: object, second: int = 0) -> dict:
    answer = {
        "acceptanceTime": "2025-05-01T12:00:00.000Z",
        "answerContent": content,
        "submissionTime": f"2025-05-01T12:01:{second:02d}.000Z",
        "timeSpentInSeconds": 60.0,
        "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "sub": "x"}},
    }
    if worker is not None:
        answer["workerId"] = worker
    return answer


def loop_output(name: str, *answers: dict) -> dict:
    return {
        "flowDefinitionArn": FLOW,
        "humanAnswers": list(answers),
        "humanLoopName": name,
        "inputContent": {"taskObject": IMAGE_URI, "labels": list(SLEEVES), "facet": "sleeve"},
    }


def chose(label: object) -> dict:
    return {"label": {"label": label}}


# --- names --------------------------------------------------------------------------------


def test_loop_names_are_valid_stable_and_map_back_to_the_task():
    long_id = "p" * 190 + "/front#three-quarter#12"
    for task_id in (TASK_ID, long_id, "__#x#0"):
        names = [loop_name(task_id, index) for index in (0, 1, 999)]
        for name in names:
            assert re.fullmatch(r"[a-z0-9](-*[a-z0-9])*", name) and len(name) <= 63
            assert base_loop_name(name) == names[0]
        assert names[0] == loop_name(task_id)
    assert loop_name(TASK_ID) != loop_name("p1/front#sleeve#3")


# --- publishing ---------------------------------------------------------------------------


def test_publish_starts_one_loop_with_the_task_input(client, stub):
    requests: list[dict] = []
    client.meta.events.register(
        "provide-client-params.sagemaker-a2i-runtime.StartHumanLoop",
        lambda params, **_: requests.append(dict(params)),
    )
    expect_start(stub, loop_name(TASK_ID))

    workforce = A2IWorkforce(FLOW, answers_per_loop=3, client=client)
    assert workforce.publish(task(), IMAGE_URI) == loop_name(TASK_ID)

    content = json.loads(requests[0]["HumanLoopInput"]["InputContent"])
    assert content["taskObject"] == IMAGE_URI
    assert content["labels"] == list(SLEEVES)  # taxonomy order
    assert content["facet"] == "sleeve"
    assert content["header"] == "Which sleeve does this dress have?"


def test_publish_starts_a_loop_per_answer_group_and_a_retry_finds_them(client, stub):
    names = [loop_name(TASK_ID), loop_name(TASK_ID, 1)]
    for name in names:
        expect_start(stub, name)
    for name in names:  # the retry: both exist already
        stub.add_client_error(
            "start_human_loop",
            "ConflictException",
            "exists",
            409,
            expected_params={
                "HumanLoopName": name,
                "FlowDefinitionArn": FLOW,
                "HumanLoopInput": {"InputContent": ANY},
                "DataAttributes": ANY,
            },
        )

    workforce = A2IWorkforce(FLOW, answers_per_loop=1, client=client)
    assert workforce.publish(task(max_assignments=2), IMAGE_URI) == names[0]
    assert workforce.publish(task(max_assignments=2), IMAGE_URI) == names[0]


def test_publish_needs_an_s3_uri_and_other_errors_surface(client, stub):
    workforce = A2IWorkforce(FLOW, answers_per_loop=3, client=client)
    with pytest.raises(ValueError, match="s3://"):
        workforce.publish(task(), "https://example.com/p1.jpg")

    stub.add_client_error("start_human_loop", "ServiceQuotaExceededException", "too many", 400)
    with pytest.raises(ClientError, match="too many"):
        workforce.publish(task(), IMAGE_URI)


# --- answers ------------------------------------------------------------------------------


def test_fetch_votes_reads_completed_output_and_keeps_only_valid_answers(client, stub, caplog):
    name = loop_name(TASK_ID)
    outputs = Outputs(
        {
            OUTPUT.format(name=name): loop_output(
                name,
                human_answer("w-ana", chose("short"), second=1),
                human_answer("w-bo", chose("turtleneck"), second=2),
                human_answer("w-cy", {"label": "short"}, second=3),
                human_answer(None, chose("short"), second=4),
                human_answer("w-di", chose("long"), second=5),
            )
        }
    )
    expect_describe(stub, name)

    workforce = A2IWorkforce(FLOW, answers_per_loop=3, read_output=outputs, client=client)
    with caplog.at_level(logging.WARNING):
        votes = workforce.fetch_votes(task())

    assert [(v.worker_id, v.label, v.assignment_id) for v in votes] == [
        ("w-ana", "short", f"{name}/0"),
        ("w-di", "long", f"{name}/4"),
    ]
    assert votes[0].at == datetime(2025, 5, 1, 12, 1, 1, tzinfo=UTC)
    assert "w-bo" in caplog.text and "w-cy" in caplog.text and "no worker id" in caplog.text


def test_loops_in_progress_or_missing_give_no_votes_and_a_worker_counts_once(client, stub):
    names = [loop_name(TASK_ID, i) for i in range(4)]
    outputs = Outputs(
        {
            OUTPUT.format(name=names[0]): loop_output(
                names[0], human_answer("w-ana", chose("cap"))
            ),
            OUTPUT.format(name=names[3]): loop_output(
                names[3], human_answer("w-ana", chose("long"))
            ),
        }
    )
    expect_describe(stub, names[0])
    expect_describe(stub, names[1], status="InProgress")
    stub.add_client_error("describe_human_loop", "ResourceNotFoundException", "no loop", 404)
    expect_describe(stub, names[3])

    workforce = A2IWorkforce(FLOW, answers_per_loop=1, read_output=outputs, client=client)
    votes = workforce.fetch_votes(task(max_assignments=4))

    assert [(v.worker_id, v.label) for v in votes] == [("w-ana", "cap")]


def test_request_more_starts_the_missing_loops_with_the_published_image(client, stub):
    first, extra = loop_name(TASK_ID), loop_name(TASK_ID, 2)
    outputs = Outputs({OUTPUT.format(name=first): loop_output(first)})
    requests: list[dict] = []
    client.meta.events.register(
        "provide-client-params.sagemaker-a2i-runtime.StartHumanLoop",
        lambda params, **_: requests.append(dict(params)),
    )
    expect_describe(stub, first)
    expect_start(stub, extra)

    workforce = A2IWorkforce(FLOW, answers_per_loop=1, read_output=outputs, client=client)
    workforce.request_more(task(max_assignments=2), 1)

    assert json.loads(requests[0]["HumanLoopInput"]["InputContent"])["taskObject"] == IMAGE_URI


def test_the_default_reader_reads_the_output_from_s3(aws_env):
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="a2i-out")
        s3.put_object(Bucket="a2i-out", Key="flow/2025/out/output.json", Body=b'{"ok": 1}')

        assert s3_output_reader(s3)("s3://a2i-out/flow/2025/out/output.json") == b'{"ok": 1}'
    with pytest.raises(ValueError, match="s3://"):
        s3_output_reader(s3)("https://a2i-out/x")


def test_the_worker_template_reads_the_loop_input_through_liquid():
    template = a2i_worker_template()

    assert "<crowd-image-classifier" in template and "<crowd-form>" in template
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in template
    assert 'categories="{{ task.input.labels | to_json | escape }}"' in template
    assert 'name="label"' in template
