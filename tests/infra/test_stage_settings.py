"""Stage settings from CDK context: defaults, command-line strings, and refusals that name the
key to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.settings import CONTEXT_PREFIX, StageSettings

CDK_JSON = Path(__file__).resolve().parents[2] / "cdk.json"
FLOW = "arn:aws:sagemaker:eu-west-1:123456789012:flow-definition/dress-relabel"


def test_defaults_run_spot_first_on_xlarge_gpus_with_the_internal_workforce():
    settings = StageSettings.from_context({})
    assert settings.spot is True
    assert settings.gpu_instance_types == ("g5.xlarge", "g6.xlarge")
    assert settings.workforce == "internal"
    assert settings.alarm_email is None
    assert settings.stack_name == "Dressvision-dev"


def test_command_line_strings_are_parsed_to_their_types():
    settings = StageSettings.from_context(
        {
            "dressvision:stage": "prod",
            "dressvision:spot": "false",
            "dressvision:gpuInstanceTypes": "g6.xlarge, g6.2xlarge",
            "dressvision:maxVcpus": "32",
            "dressvision:budgetCapUsd": "12.5",
            "dressvision:workforce": "a2i",
            "dressvision:a2iFlowDefinitionArn": FLOW,
            "dressvision:mturkProduction": "true",
            "dressvision:alarmEmail": "ops@example.com",
        }
    )
    assert settings.stage == "prod" and settings.spot is False
    assert settings.gpu_instance_types == ("g6.xlarge", "g6.2xlarge")
    assert settings.max_vcpus == 32 and settings.budget_cap_usd == 12.5
    assert settings.workforce == "a2i" and settings.alarm_email == "ops@example.com"
    assert settings.mturk_production is True
    assert settings.a2i_flow_definition == {
        "partition": "aws",
        "region": "eu-west-1",
        "account": "123456789012",
        "name": "dress-relabel",
    }


def test_json_values_from_cdk_json_are_accepted():
    settings = StageSettings.from_context(
        {"dressvision:gpuInstanceTypes": ["g5.2xlarge"], "dressvision:spot": False}
    )
    assert settings.gpu_instance_types == ("g5.2xlarge",) and settings.spot is False


def test_cdk_json_holds_only_known_settings():
    context = json.loads(CDK_JSON.read_text())["context"]
    known = StageSettings.context_keys()
    assert [k for k in context if k.startswith(CONTEXT_PREFIX) and k not in known] == []
    StageSettings.from_context(context)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dressvision:gpuInstanceTypes", "m5.xlarge", "GPU types only"),
        ("dressvision:workforce", "crowd", "one of mturk, a2i, internal"),
        ("dressvision:spot", "maybe", "true or false"),
        ("dressvision:maxVcpus", "2", "at least jobVcpus"),
        ("dressvision:sharedMemoryGib", "14", "less than jobMemoryGib"),
        ("dressvision:stage", "Prod_1", "lower-case"),
        ("dressvision:alarmEmail", "ops", "an e-mail address"),
        ("dressvision:retrainThreshold", "1.5", "an integer"),
        ("dressvision:loopMinChanges", "0", "at least 1"),
        ("dressvision:loopHoldoutFolds", "1", r"0 \(off\) or between 2 and 10"),
        ("dressvision:reviewDoubt", "1.5", r"between 0 \(off\) and 1"),
        ("dressvision:gpuTypes", "g5.xlarge", "unknown context keys dressvision:gpuTypes"),
        ("dressvision:workforce", "simulated", "local benchmarks only"),
        ("dressvision:workforce", "a2i", "set when workforce is a2i"),
        ("dressvision:a2iFlowDefinitionArn", "dress-relabel", "flow-definition/<name>"),
        ("dressvision:maxAssignments", "10", "between 1 and 9"),
        ("dressvision:askStep", "0", "between 1 and 8"),
        ("dressvision:collectEveryMinutes", "1", "between 5 and 360"),
    ],
)
def test_bad_values_fail_naming_the_key(key, value, message):
    with pytest.raises(ValueError, match=message) as caught:
        StageSettings.from_context({key: value})
    assert key.split(":")[1] in str(caught.value)


def test_the_deploy_guide_documents_every_setting():
    readme = (CDK_JSON.parent / "infra" / "README.md").read_text()
    missing = [
        key
        for key in StageSettings.context_keys()
        if f"`{key.removeprefix(CONTEXT_PREFIX)}`" not in readme
    ]
    assert missing == []
