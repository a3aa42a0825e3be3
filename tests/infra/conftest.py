"""The CDK app synthesized once per test session, as `cdk synth` would, minus the bundling.

Bundling (pip for the layer, the source copy) is skipped with `aws:cdk:bundling-stacks = []`:
the asset hashes do not depend on it, and `test_cdk_cli.py` runs the real thing. cdk-nag runs
as in `cdk synth`, but reports instead of failing, so `test_nag.py` can say what failed.

Every test that synthesizes the app (through the `synth`, `synth_with`, `mturk` or `a2i`
fixtures) is marked `slow` here (a test that gets one with `request.getfixturevalue` carries
the mark itself), so `pytest -m "not slow"` never runs the CDK. The `cfn` fixture
reads a synthesized template: references, roles, functions, queues.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_NODE = REPO_ROOT / "node_modules" / ".bin" / "node"

# jsii runs the CDK in Node: prefer the supported Node that `make synth` installs locally
# (package.json) over an end-of-life system Node. Set before aws_cdk is first imported.
if LOCAL_NODE.exists():
    os.environ.setdefault("JSII_NODE", str(LOCAL_NODE))

A2I_FLOW_DEFINITION = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/dress-relabel"
SYNTH_FIXTURES = {"synth", "synth_with", "mturk", "a2i"}

TEST_CONTEXT = {
    "aws:cdk:bundling-stacks": [],
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}


def cdk_json_context() -> dict[str, Any]:
    """The context the CLI would pass: cdk.json's feature flags and settings."""
    return json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


@dataclass
class Synth:
    outdir: Path
    stack_name: str
    template: dict[str, Any]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == resource_type}

    def props(self, resource_type: str) -> list[dict[str, Any]]:
        return [r.get("Properties", {}) for r in self.of_type(resource_type).values()]


def synth_app(outdir: Path, **overrides: Any) -> Synth:
    """Synthesize the app with cdk.json's context plus `overrides` into `outdir`."""
    from infra.app import build_app

    context = {**cdk_json_context(), **TEST_CONTEXT, **overrides}
    app = build_app(context=context, outdir=str(outdir))
    assembly = app.synth()
    (stack,) = assembly.stacks
    return Synth(outdir=outdir, stack_name=stack.stack_name, template=stack.template)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The app as `cdk.json` configures it."""
    return synth_app(tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def synth_with(tmp_path_factory: pytest.TempPathFactory):
    """`synth_with(**context)`: the app with other settings, in a fresh output folder."""
    return lambda **context: synth_app(tmp_path_factory.mktemp("cdk.out"), **context)


@pytest.fixture(scope="session")
def mturk(synth_with):
    """The app with Mechanical Turk as the workforce."""
    return synth_with(**{"dressvision:workforce": "mturk"})


@pytest.fixture(scope="session")
def a2i(synth_with):
    """The app with an A2I flow definition as the workforce."""
    return synth_with(
        **{"dressvision:workforce": "a2i", "dressvision:a2iFlowDefinitionArn": A2I_FLOW_DEFINITION}
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and SYNTH_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)


# --- Reading a synthesized CloudFormation template ----------------------------------------------

READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "Receive")


def getatt_target(value: Any) -> str | None:
    """The logical id behind `{"Fn::GetAtt": [id, attr]}` or `{"Ref": id}`."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
    return None


def render(value: Any) -> str:
    """A string expression as text, `{"Ref": X}` as `${X}`: to compare two expressions."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    separator, parts = value["Fn::Join"]
    return separator.join(render(part) for part in parts)


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def function_id(synth, handler: str) -> str:
    """The logical id of the function running `handler` (e.g. `lambdas.review.handler`)."""
    (logical_id,) = [
        k
        for k, f in synth.of_type("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == handler
    ]
    return logical_id


def function_props(synth, handler: str) -> dict:
    return synth.resources[function_id(synth, handler)]["Properties"]


def role_of(synth, handler: str) -> str:
    return getatt_target(function_props(synth, handler)["Role"])


def event_source_of(synth, handler: str) -> dict:
    """The one SQS event source mapping of the function running `handler`."""
    target = function_id(synth, handler)
    (mapping,) = [
        m
        for m in synth.props("AWS::Lambda::EventSourceMapping")
        if getatt_target(m["FunctionName"]) == target
    ]
    return mapping


def queue_fed_to(synth, handler: str) -> str:
    """The logical id of the queue the function running `handler` consumes."""
    return getatt_target(event_source_of(synth, handler)["EventSourceArn"])


def roles_assumed_by(synth, service: str) -> set[str]:
    return {
        logical_id
        for logical_id, role in synth.of_type("AWS::IAM::Role").items()
        if any(
            service in as_list(s.get("Principal", {}).get("Service", []))
            for s in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        )
    }


def statements_of_roles(synth, roles: set[str]) -> list[dict]:
    statements = []
    for policy in synth.props("AWS::IAM::Policy"):
        if {getatt_target(r) for r in policy["Roles"]} & roles:
            statements.extend(policy["PolicyDocument"]["Statement"])
    return statements


def acknowledgements_of_role(synth, role: str) -> dict[str, str]:
    """cdk-nag acknowledgement id -> reason, on the role `role` and its policies."""
    found = {}
    for logical_id, resource in synth.resources.items():
        roles = {getatt_target(r) for r in resource.get("Properties", {}).get("Roles", [])}
        if logical_id == role or role in roles:
            for ack in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                found[ack["id"]] = ack["reason"]
    return found


def actions_of(statement: dict) -> list[str]:
    return as_list(statement["Action"])


def write_actions(statement: dict) -> list[str]:
    """The actions of `statement` that are not reads."""
    return [
        a for a in actions_of(statement) if not a.split(":", 1)[1].startswith(READ_ONLY_PREFIXES)
    ]


def queue_policy_statements(synth, queue_id: str) -> list[dict]:
    """Every statement of the resource policies attached to the queue `queue_id`."""
    return [
        statement
        for policy in synth.props("AWS::SQS::QueuePolicy")
        if queue_id in {getatt_target(q) for q in policy["Queues"]}
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def dead_letter_queue_ids(synth) -> set[str]:
    """Queues that receive failures: redrive targets, and dead-letter queues of EventBridge
    targets and of Lambda asynchronous invocations."""
    queues = synth.of_type("AWS::SQS::Queue")
    ids = {
        getatt_target(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    for rule in synth.props("AWS::Events::Rule"):
        for target in rule.get("Targets", []):
            if "DeadLetterConfig" in target:
                ids.add(getatt_target(target["DeadLetterConfig"]["Arn"]))
    for config in synth.props("AWS::Lambda::EventInvokeConfig"):
        failure = config.get("DestinationConfig", {}).get("OnFailure")
        if failure:
            ids.add(getatt_target(failure["Destination"]))
    return ids & set(queues)


@pytest.fixture(scope="session")
def cfn() -> SimpleNamespace:
    """The template readers above: `cfn.role_of(synth, handler)`, `cfn.getatt_target(value)`..."""
    return SimpleNamespace(
        getatt_target=getatt_target,
        render=render,
        as_list=as_list,
        function_id=function_id,
        function_props=function_props,
        role_of=role_of,
        event_source_of=event_source_of,
        queue_fed_to=queue_fed_to,
        roles_assumed_by=roles_assumed_by,
        statements_of_roles=statements_of_roles,
        acknowledgements_of_role=acknowledgements_of_role,
        actions_of=actions_of,
        write_actions=write_actions,
        queue_policy_statements=queue_policy_statements,
        dead_letter_queue_ids=dead_letter_queue_ids,
    )


@pytest.fixture(scope="session")
def a2i_flow_definition() -> str:
    return A2I_FLOW_DEFINITION
