"""The relabeling budget is watched: an alarm on the BudgetLeftUSD metric the Lambdas emit."""

from __future__ import annotations

import pytest
from cfn_template import getatt_target

from infra.constructs.alerts import BUDGET_WARNING_FRACTION
from shared import env

pytestmark = pytest.mark.slow  # CDK synth


def budget_alarms(synth) -> list[dict]:
    return [
        a
        for a in synth.props("AWS::CloudWatch::Alarm")
        if a.get("MetricName") == env.METRIC_BUDGET_LEFT_USD
    ]


def test_a_paid_workforce_gets_an_alarm_on_the_budget_left(mturk):
    (alarm,) = budget_alarms(mturk)
    assert alarm["Namespace"] == env.METRICS_NAMESPACE
    assert alarm["Dimensions"] == [{"Name": "service", "Value": env.METRICS_SERVICE}]
    assert alarm["Statistic"] == "Minimum"
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    assert alarm["Threshold"] == 50.0 * BUDGET_WARNING_FRACTION  # the default cap, USD 50
    assert alarm["TreatMissingData"] == "notBreaching"
    (topic_id,) = mturk.of_type("AWS::SNS::Topic")
    assert [getatt_target(a) for a in alarm["AlarmActions"]] == [topic_id]


def test_staff_cost_no_budget_and_get_no_alarm(synth):
    assert budget_alarms(synth) == []
