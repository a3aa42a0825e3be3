"""The same app with other stage settings: on-demand only, alarms by e-mail, another stage."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def prod(synth_with):
    return synth_with(
        **{
            "dressvision:stage": "prod",
            "dressvision:spot": "false",
            "dressvision:alarmEmail": "ops@example.com",
            "dressvision:gpuInstanceTypes": "g6.2xlarge",
        },
    )


@pytest.mark.slow
def test_without_spot_the_queue_has_only_on_demand_gpus(prod):
    (environment,) = prod.props("AWS::Batch::ComputeEnvironment")
    assert environment["ComputeResources"]["Type"] == "EC2"
    assert environment["ComputeResources"]["InstanceTypes"] == ["g6.2xlarge"]
    (queue,) = prod.props("AWS::Batch::JobQueue")
    assert len(queue["ComputeEnvironmentOrder"]) == 1


@pytest.mark.slow
def test_the_alarm_email_is_subscribed_and_names_follow_the_stage(prod):
    (subscription,) = prod.props("AWS::SNS::Subscription")
    assert subscription["Protocol"] == "email" and subscription["Endpoint"] == "ops@example.com"
    assert prod.stack_name == "Dressvision-prod"
    names = {d["JobDefinitionName"] for d in prod.props("AWS::Batch::JobDefinition")}
    assert names == {"dressvision-prod-infer", "dressvision-prod-train"}
