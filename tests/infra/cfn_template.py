"""Reading a synthesized CloudFormation template: references, roles, functions, queues."""

from __future__ import annotations

from typing import Any

A2I_FLOW_DEFINITION = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/dress-relabel"
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
