"""The relabeling budget is watched (an alarm on the BudgetLeftUSD metric the Lambdas emit),
and low-accuracy workers can be kept out of MTurk HITs (minWorkerAccuracy)."""

from __future__ import annotations

import pytest

from infra.constructs.alerts import BUDGET_WARNING_FRACTION
from shared import env

pytestmark = pytest.mark.slow  # CDK synth


def budget_alarms(synth) -> list[dict]:
    return [
        a
        for a in synth.props("AWS::CloudWatch::Alarm")
        if a.get("MetricName") == env.METRIC_BUDGET_LEFT_USD
    ]


def test_a_paid_workforce_gets_an_alarm_on_the_budget_left(cfn, mturk):
    (alarm,) = budget_alarms(mturk)
    assert alarm["Namespace"] == env.METRICS_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env.METRICS_SERVICE}]
    assert alarm["Statistic"] == "Minimum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 50.0 * BUDGET_WARNING_FRACTION  # the default cap, USD 50
    assert alarm["TreatMissingData"] == "notBreaching"
    (topic_id,) = mturk.of_type("AWS::SNS::Topic")
    assert [cfn.getatt_target(a) for a in alarm["AlarmActions"]] == [topic_id]


def test_staff_cost_no_budget_and_get_no_alarm(synth):
    assert budget_alarms(synth) == []


def mturk_actions_by_function(cfn, synth) -> dict[str, set[str]]:
    """Function logical id -> the MTurk actions its role may call."""
    found = {}
    for function_id, function in synth.of_type("AWS::Lambda::Function").items():
        role = cfn.getatt_target(function["Properties"]["Role"])
        statements = cfn.statements_of_roles(synth, {role})
        found[function_id] = {
            a for s in statements for a in cfn.actions_of(s) if a.startswith("mechanicalturk:")
        }
    return found


def test_keeping_workers_out_grants_only_the_qualification_calls(cfn, mturk, synth_with):
    keeping_out = synth_with(
        **{"dressvision:workforce": "mturk", "dressvision:minWorkerAccuracy": "0.5"}
    )
    before, after = (
        mturk_actions_by_function(cfn, mturk),
        mturk_actions_by_function(cfn, keeping_out),
    )
    added = {f: after[f] - before[f] for f in after if after[f] - before[f]}
    qualification = {
        "mechanicalturk:ListQualificationTypes",
        "mechanicalturk:CreateQualificationType",
    }
    assert sorted(added.values(), key=len) == [
        qualification,  # review: the HIT type requires the qualification's absence
        qualification | {"mechanicalturk:AssociateQualificationWithWorker"},  # collect
    ]
    environments = [
        f["Properties"]["Environment"]["Variables"]
        for f in keeping_out.of_type("AWS::Lambda::Function").values()
    ]
    assert {e.get(env.MIN_WORKER_ACCURACY) for e in environments} >= {"0.5"}
