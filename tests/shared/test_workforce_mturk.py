"""Mechanical Turk adapter against botocore's Stubber, which checks every request against the
real MTurk API model: the exact requests, idempotent publishing, the budget, untrusted answers.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from shared.errors import BudgetExceededError, ConfigurationError
from shared.tasks import RelabelTask
from shared.workforce import mturk
from shared.workforce.mturk import (
    PRODUCTION_ENDPOINT,
    SANDBOX_ENDPOINT,
    HitTypeSettings,
    MTurkWorkforce,
    assignment_cost,
    committed_spend,
    parse_answer,
    request_token,
)
from shared.workforce.template import HTML_QUESTION_NS

NECKLINES = ("v-neck", "crew", "boat", "sweetheart", "halter")
IMAGE_URL = (
    "https://catalog.s3.amazonaws.com/catalog/p1/front.jpg?X-Amz-Signature=abc&X-Amz-Expires=604800"
)
HIT_ID = "3AQN9REUTFGXCRWFMDCEI5PJ8NZYD2"
HIT_TYPE_ID = "3HYWIMA2HXZ5SZ8K3SZ0C0UW4ZRLSS"
SUBMITTED = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)


def task(max_assignments: int = 3, **changes) -> RelabelTask:
    fresh = RelabelTask.new(
        image_id="p1/front",
        facet="neckline",
        round=1,
        allowed=NECKLINES,
        current_label="v-neck",
        label_version=2,
        suggested="crew",
        confidence=0.94,
        provider="mturk",
        max_assignments=max_assignments,
    )
    return fresh.model_copy(update=changes)


@pytest.fixture
def client(aws_env):
    return boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT)


@pytest.fixture
def stub(client):
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def workforce(client, **kwargs) -> MTurkWorkforce:
    kwargs.setdefault("budget_usd", Decimal("10"))
    return MTurkWorkforce(client=client, **kwargs)


def expect_balance(stub: Stubber, available: str) -> None:
    stub.add_response("get_account_balance", {"AvailableBalance": available}, {})


def expect_hit_type(stub: Stubber) -> None:
    stub.add_response(
        "create_hit_type",
        {"HITTypeId": HIT_TYPE_ID},
        {
            "Title": "Choose the right label for a dress photo",
            "Description": HitTypeSettings().description,
            "Reward": "0.05",
            "AssignmentDurationInSeconds": 600,
            "AutoApprovalDelayInSeconds": 259200,
            "Keywords": "image, classification, fashion, dress, labeling",
            "QualificationRequirements": [
                {
                    "QualificationTypeId": "000000000000000000L0",
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [95],
                }
            ],
        },
    )


def expect_create_hit(stub: Stubber, max_assignments: int = 3) -> None:
    stub.add_response(
        "create_hit_with_hit_type",
        {"HIT": {"HITId": HIT_ID, "HITTypeId": HIT_TYPE_ID, "MaxAssignments": max_assignments}},
        {
            "HITTypeId": HIT_TYPE_ID,
            "MaxAssignments": max_assignments,
            "LifetimeInSeconds": 604800,
            "Question": ANY,  # captured and parsed below
            "RequesterAnnotation": "p1/front#neckline#1",
            "UniqueRequestToken": request_token("hit", "p1/front#neckline#1"),
        },
    )


def capture(client, operation: str, into: list[dict]) -> None:
    client.meta.events.register(
        f"provide-client-params.mturk.{operation}", lambda params, **_: into.append(dict(params))
    )


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag, attrs):
        self.found.setdefault(tag, dict(attrs))


def page_elements(question_xml: str) -> tuple[ElementTree.Element, dict[str, dict[str, str]]]:
    root = ElementTree.fromstring(question_xml)
    parser = _Elements()
    parser.feed(root.findtext(f"{{{HTML_QUESTION_NS}}}HTMLContent"))
    return root, parser.found


# --- client and endpoint ------------------------------------------------------------------


def test_client_is_created_lazily_on_the_sandbox_unless_production_is_configured(aws_env):
    sandbox = MTurkWorkforce(budget_usd=Decimal("1"))  # no client yet, no AWS call
    production = MTurkWorkforce(budget_usd=Decimal("1"), production=True)

    assert sandbox.client.meta.endpoint_url == SANDBOX_ENDPOINT
    assert production.client.meta.endpoint_url == PRODUCTION_ENDPOINT
    assert sandbox.client.meta.region_name == "us-east-1"


def test_a_client_on_the_other_endpoint_is_refused(client, aws_env):
    real_money = boto3.client("mturk", region_name="us-east-1", endpoint_url=PRODUCTION_ENDPOINT)

    with pytest.raises(ConfigurationError, match="DRESSVISION_MTURK_PRODUCTION"):
        _ = workforce(real_money).client
    with pytest.raises(ConfigurationError):
        _ = workforce(client, production=True).client


# --- publishing ---------------------------------------------------------------------------


def test_publish_creates_the_hit_type_then_one_hit_with_the_classifier_page(client, stub):
    requests: list[dict] = []
    capture(client, "CreateHITWithHITType", requests)
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    expect_create_hit(stub)

    assert workforce(client).publish(task(), IMAGE_URL) == HIT_ID

    root, elements = page_elements(requests[0]["Question"])
    assert root.tag == f"{{{HTML_QUESTION_NS}}}HTMLQuestion"
    assert root.findtext(f"{{{HTML_QUESTION_NS}}}FrameHeight") == "0"
    assert elements["script"]["src"] == "https://assets.crowd.aws/crowd-html-elements.js"
    assert "crowd-form" in elements
    classifier = elements["crowd-image-classifier"]
    assert json.loads(classifier["categories"]) == list(NECKLINES)  # taxonomy order
    assert classifier["src"] == IMAGE_URL  # '&' escaped in the HTML, intact for the browser
    assert classifier["name"] == "label"
    assert classifier["header"] == "Which neckline does this dress have?"
    assert len(requests[0]["UniqueRequestToken"]) <= 64


def test_notifications_of_the_hit_type_go_to_the_queue(client, stub):
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/answers"
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    stub.add_response(
        "update_notification_settings",
        {},
        {
            "HITTypeId": HIT_TYPE_ID,
            "Notification": {
                "Destination": queue,
                "Transport": "SQS",
                "Version": "2014-08-15",
                "EventTypes": ["AssignmentSubmitted", "HITReviewable"],
            },
            "Active": True,
        },
    )
    expect_create_hit(stub)

    assert workforce(client, notification_queue_url=queue).publish(task(), IMAGE_URL) == HIT_ID


def test_a_published_task_is_never_published_again(client, stub):
    assert workforce(client).publish(task(external_id=HIT_ID), IMAGE_URL) == HIT_ID  # no call


def test_a_retry_with_a_used_token_returns_the_hit_the_error_names(client, stub):
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    stub.add_client_error(
        "create_hit_with_hit_type",
        service_error_code="RequestError",
        service_message=f"There is already a HIT with this unique request token. ({HIT_ID})",
        modeled_fields={"TurkErrorCode": "AWS.MechanicalTurk.HitAlreadyExists"},
        expected_params={
            "HITTypeId": HIT_TYPE_ID,
            "MaxAssignments": 3,
            "LifetimeInSeconds": 604800,
            "Question": ANY,
            "RequesterAnnotation": "p1/front#neckline#1",
            "UniqueRequestToken": request_token("hit", "p1/front#neckline#1"),
        },
    )

    assert workforce(client).publish(task(), IMAGE_URL) == HIT_ID


def test_a_retry_whose_error_names_no_hit_finds_it_by_its_annotation(client, stub):
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    stub.add_client_error(
        "create_hit_with_hit_type",
        service_error_code="RequestError",
        service_message="The UniqueRequestToken was already used (request 1f0c-aa)",
    )
    stub.add_response(
        "list_hits",
        {"HITs": [{"HITId": "3OTHER", "RequesterAnnotation": "p2/x#sleeve#1"}], "NextToken": "n"},
        {"MaxResults": 100},
    )
    stub.add_response(
        "list_hits",
        {"HITs": [{"HITId": HIT_ID, "RequesterAnnotation": "p1/front#neckline#1"}]},
        {"MaxResults": 100, "NextToken": "n"},
    )

    assert workforce(client).publish(task(), IMAGE_URL) == HIT_ID


def test_other_errors_are_not_mistaken_for_a_used_token(client, stub):
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    stub.add_client_error("create_hit_with_hit_type", "ServiceFault", "internal error", 500)

    with pytest.raises(ClientError, match="internal error"):
        workforce(client).publish(task(), IMAGE_URL)


# --- money --------------------------------------------------------------------------------


def test_cost_is_reward_plus_fee_with_mturks_minimum_fee():
    assert assignment_cost(Decimal("0.05"), 3) == Decimal("0.18")  # fee 0.01 (the minimum)
    assert assignment_cost(Decimal("0.50"), 3) == Decimal("1.80")  # fee 20%
    published = task(external_id=HIT_ID)
    assert committed_spend([published, task(), task(provider="a2i")], Decimal("0.05")) == Decimal(
        "0.18"
    )


def test_a_money_budget_buys_tasks_at_reward_plus_fee(client):
    from shared.relabel import tasks_within_budget

    assert workforce(client).task_price_usd(3) == Decimal("0.18")  # reward 0.05, no API call
    assert tasks_within_budget(workforce(client), Decimal("1.00"), assignments=3) == 5


def test_a_balance_below_the_cost_stops_before_any_hit_is_created(client, stub):
    expect_balance(stub, "0.17")  # 3 assignments cost 0.18

    with pytest.raises(BudgetExceededError, match="balance"):
        workforce(client).publish(task(), IMAGE_URL)
    # The stubber had no create_hit_type / create_hit_with_hit_type queued: calling either
    # would have raised a different error.


def test_the_budget_cap_stops_publishing_without_calling_mturk(client, stub):
    almost_spent = workforce(client, budget_usd=Decimal("1.00"), spent_usd=lambda: Decimal("0.90"))

    with pytest.raises(BudgetExceededError, match="DRESSVISION_MTURK_BUDGET_USD"):
        almost_spent.publish(task(), IMAGE_URL)


def test_spend_accumulates_across_publishes_of_one_process(client, stub):
    thin = workforce(client, budget_usd=Decimal("0.30"))
    expect_balance(stub, "100.00")
    expect_hit_type(stub)
    expect_create_hit(stub)
    thin.publish(task(), IMAGE_URL)  # 0.18 of 0.30

    with pytest.raises(BudgetExceededError, match=r"\$0.12 left"):
        thin.publish(task(), IMAGE_URL)


def test_ten_assignments_are_refused_because_the_fee_rises(client, stub):
    with pytest.raises(ValueError, match="fee rises"):
        workforce(client).publish(task(max_assignments=10), IMAGE_URL)
    with pytest.raises(ValueError, match="at most 9"):
        workforce(client).request_more(task(max_assignments=8, external_id=HIT_ID), 2)


# --- answers ------------------------------------------------------------------------------


def answer_xml(free_text: str) -> str:
    return (
        '<?xml version="1.0" encoding="ASCII"?>'
        '<QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd">'
        f"<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
        f"<FreeText>{escape(free_text)}</FreeText></Answer></QuestionFormAnswers>"
    )


def crowd_answer(label: str) -> str:
    return answer_xml(json.dumps([{"label": {"label": label}}]))


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    '<QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
    'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd">'
    "<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
    '<FreeText>[{"label": {"label": "crew"}}]&lol2;</FreeText></Answer></QuestionFormAnswers>'
)
INJECTED = '[{"label":{"label":"crew"}}]</FreeText></Answer><Answer><FreeText>x'


def assignment(n: int, answer: str, status: str = "Submitted") -> dict:
    return {
        "AssignmentId": f"ASSIGN{n}",
        "WorkerId": f"WORKER{n}",
        "HITId": HIT_ID,
        "AssignmentStatus": status,
        "SubmitTime": SUBMITTED.replace(minute=n),
        "Answer": answer,
    }


def expect_assignments(stub: Stubber, pages: list[list[dict]], statuses: list[str]) -> None:
    for i, page in enumerate(pages):
        response: dict = {"Assignments": page, "NumResults": len(page)}
        request = {"HITId": HIT_ID, "AssignmentStatuses": statuses, "MaxResults": 100}
        if i + 1 < len(pages):
            response["NextToken"] = f"page{i + 1}"
        if i:
            request["NextToken"] = f"page{i}"
        stub.add_response("list_assignments_for_hit", response, request)


def test_fetch_votes_keeps_only_valid_answers_across_pages(client, stub, caplog):
    expect_assignments(
        stub,
        [
            [assignment(1, crew := crowd_answer("crew")), assignment(2, crowd_answer("polo"))],
            [
                assignment(3, BILLION_LAUGHS),
                assignment(4, answer_xml(INJECTED)),
                assignment(5, crowd_answer("boat"), status="Approved"),
                assignment(1, crew),  # listed twice
            ],
        ],
        ["Submitted", "Approved"],
    )

    with caplog.at_level(logging.WARNING):
        votes = workforce(client).fetch_votes(task(external_id=HIT_ID, max_assignments=5))

    assert [(v.worker_id, v.label, v.assignment_id) for v in votes] == [
        ("WORKER1", "crew", "ASSIGN1"),
        ("WORKER5", "boat", "ASSIGN5"),
    ]
    assert votes[0].at == SUBMITTED.replace(minute=1)
    for worker in ("WORKER2", "WORKER3", "WORKER4"):
        assert worker in caplog.text
    assert "DOCTYPE" in caplog.text


def test_fetch_votes_of_an_unpublished_task_is_empty(client, stub):
    assert workforce(client).fetch_votes(task()) == []


def test_parse_answer_accepts_the_documented_shape_only():
    assert parse_answer(crowd_answer("crew")) == "crew"
    assert parse_answer(crowd_answer("<b>crew</b>")) == "<b>crew</b>"  # text, validated later
    two = crowd_answer("crew").replace("</QuestionFormAnswers>", "") + (
        "<Answer><QuestionIdentifier>taskAnswers</QuestionIdentifier>"
        "<FreeText>[]</FreeText></Answer></QuestionFormAnswers>"
    )
    refused = {
        "two answers": two,
        "not a list": answer_xml(json.dumps({"label": {"label": "crew"}})),
        "flat label": answer_xml(json.dumps([{"label": "crew"}])),
        "no namespace": crowd_answer("crew").replace(' xmlns="http', ' xmlns:x="http'),
        "not xml": "crew",
        "entity": BILLION_LAUGHS,
        "huge": answer_xml("x" * 70_000),
    }
    for what, xml in refused.items():
        with pytest.raises(ValueError):
            parse_answer(xml)
            pytest.fail(what)


# --- more answers, finishing --------------------------------------------------------------


def test_request_more_adds_assignments_with_its_own_token(client, stub):
    expect_balance(stub, "100.00")
    stub.add_response(
        "create_additional_assignments_for_hit",
        {},
        {
            "HITId": HIT_ID,
            "NumberOfAdditionalAssignments": 2,
            "UniqueRequestToken": request_token("more", "p1/front#neckline#1", 5),
        },
    )

    workforce(client).request_more(task(external_id=HIT_ID), 2)


def test_finish_approves_submitted_assignments_and_expires_the_hit(client, stub):
    expect_assignments(
        stub, [[assignment(1, crowd_answer("crew")), assignment(2, "junk")]], ["Submitted"]
    )
    stub.add_response("approve_assignment", {}, {"AssignmentId": "ASSIGN1"})
    stub.add_response("approve_assignment", {}, {"AssignmentId": "ASSIGN2"})
    stub.add_response(
        "update_expiration_for_hit", {}, {"HITId": HIT_ID, "ExpireAt": mturk.EXPIRE_NOW}
    )

    workforce(client).finish(task(external_id=HIT_ID))
