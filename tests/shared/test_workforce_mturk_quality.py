"""Keeping low-accuracy workers out of MTurk HITs: one qualification type (found or created
once), given to excluded workers, required absent by the HIT type. botocore's Stubber checks
each request against the real MTurk API model."""

from __future__ import annotations

from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from shared.workforce.mturk import (
    LOW_QUALITY_QUALIFICATION_NAME,
    SANDBOX_ENDPOINT,
    MTurkWorkforce,
)

HIT_TYPE_ID = "3HYWIMA2HXZ5SZ8K3SZ0C0UW4ZRLSS"


@pytest.fixture
def client(aws_env):
    return boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT)


@pytest.fixture
def stub(client):
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


QUALIFICATION_ID = "3QUALXXXXXXXXXXXXXXXXXXXXXXXXX"


def expect_qualification_lookup(stub: Stubber, existing: list[dict]) -> None:
    stub.add_response(
        "list_qualification_types",
        {"NumResults": len(existing), "QualificationTypes": existing},
        {
            "Query": LOW_QUALITY_QUALIFICATION_NAME,
            "MustBeRequestable": False,
            "MustBeOwnedByCaller": True,
        },
    )


def expect_qualification_created(stub: Stubber) -> None:
    stub.add_response(
        "create_qualification_type",
        {"QualificationType": {"QualificationTypeId": QUALIFICATION_ID}},
        {
            "Name": LOW_QUALITY_QUALIFICATION_NAME,
            "Description": QUALIFICATION_DESCRIPTION,
            "QualificationTypeStatus": "Active",
        },
    )


QUALIFICATION_DESCRIPTION = (
    "Given by dressvision's requester to workers whose answers were estimated too often wrong; "
    "its HITs are not offered to them."
)


def keeping_out(client) -> MTurkWorkforce:
    return MTurkWorkforce(client=client, budget_usd=Decimal("10"), keep_out_low_quality=True)


def test_excluded_workers_get_the_qualification_created_once(client, stub):
    expect_qualification_lookup(stub, [])
    expect_qualification_created(stub)
    for worker in ("A1SPAMMER", "A2CARELESS"):
        stub.add_response(
            "associate_qualification_with_worker",
            {},
            {
                "QualificationTypeId": QUALIFICATION_ID,
                "WorkerId": worker,
                "IntegerValue": 0,
                "SendNotification": False,
            },
        )
    assert keeping_out(client).exclude_workers(["A1SPAMMER", "A2CARELESS"]) is True


def test_an_existing_qualification_is_reused_and_the_hit_type_requires_its_absence(client, stub):
    expect_qualification_lookup(
        stub,
        [
            {"QualificationTypeId": "3OTHERXXXXXXXXXXXXXXXXXXXXXXXX", "Name": "someone else's"},
            {"QualificationTypeId": QUALIFICATION_ID, "Name": LOW_QUALITY_QUALIFICATION_NAME},
        ],
    )
    requests: list[dict] = []
    client.meta.events.register(
        "provide-client-params.mturk.CreateHITType", lambda params, **_: requests.append(params)
    )
    stub.add_response("create_hit_type", {"HITTypeId": HIT_TYPE_ID})
    assert keeping_out(client).hit_type_id == HIT_TYPE_ID
    requirements = requests[0]["QualificationRequirements"]
    assert {
        "QualificationTypeId": QUALIFICATION_ID,
        "Comparator": "DoesNotExist",
        "ActionsGuarded": "DiscoverPreviewAndAccept",
    } in requirements
    assert len(requirements) == 2  # the approval-rate requirement stays


def test_without_the_setting_nobody_is_excluded_and_mturk_is_not_called(client, stub):
    workforce = MTurkWorkforce(client=client, budget_usd=Decimal("10"))
    assert workforce.exclude_workers(["A1SPAMMER"]) is False  # reported, not enforced
