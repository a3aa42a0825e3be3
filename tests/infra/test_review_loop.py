"""The relabel loop as deployed: batch_events on job state changes, review on its queue, collect
on the answers queue and a schedule, and only the workforce in use may send answers."""

from __future__ import annotations

import json

import pytest

from infra.constructs.review_loop import A2I_STATUS_CHANGE, MTURK_PRINCIPAL
from shared import env, keys
from shared.env import Settings

BATCH_EVENTS = "lambdas.batch_events.handler"
REVIEW = "lambdas.review.handler"
COLLECT = "lambdas.collect.handler"


def _rules_targeting(cfn, synth, logical_id: str) -> list[dict]:
    return [
        rule
        for rule in synth.props("AWS::Events::Rule")
        if logical_id in {cfn.getatt_target(t["Arn"]) for t in rule.get("Targets", [])}
    ]


def _alarmed_queues(cfn, synth) -> set[str]:
    return {
        cfn.getatt_target(dimension["Value"])
        for alarm in synth.props("AWS::CloudWatch::Alarm")
        if alarm.get("Namespace") == "AWS/SQS"  # not the budget alarm (test_budget_alarm.py)
        for dimension in alarm["Dimensions"]
    }


def _on_failure(cfn, synth, handler: str) -> dict:
    (config,) = [
        c
        for c in synth.props("AWS::Lambda::EventInvokeConfig")
        if cfn.getatt_target(c["FunctionName"]) == cfn.function_id(synth, handler)
    ]
    return config


def _allows(statements: list[dict]) -> list[dict]:
    return [s for s in statements if s["Effect"] == "Allow"]


def _s3_writes(cfn, synth, handler: str) -> set[str]:
    """The object patterns `handler`'s role may write, as `${Bucket}/pattern` strings."""
    found = set()
    for statement in cfn.statements_of_roles(synth, {cfn.role_of(synth, handler)}):
        if any(a.startswith("s3:Put") for a in cfn.actions_of(statement)):
            found |= {_render_arn(cfn, r) for r in cfn.as_list(statement["Resource"])}
    return found


def _render_arn(cfn, value) -> str:
    """`{"Fn::Join": ["", [{"Fn::GetAtt": [Bucket, "Arn"]}, "/key"]]}` as `Bucket/key`."""
    if "Fn::Join" in value:
        _, (head, tail) = value["Fn::Join"]
        return f"{cfn.getatt_target(head)}{tail}"
    return str(cfn.getatt_target(value))


def test_job_state_changes_of_our_queue_invoke_batch_events(cfn, synth):
    batch_events = cfn.function_id(synth, BATCH_EVENTS)
    (rule,) = _rules_targeting(cfn, synth, batch_events)
    (queue_id,) = synth.of_type("AWS::Batch::JobQueue")
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert sorted(pattern["detail"]["status"]) == ["FAILED", "SUCCEEDED"]
    assert [cfn.getatt_target(q) for q in pattern["detail"]["jobQueue"]] == [queue_id]
    assert pattern["detail"]["arrayProperties"] == {"index": [{"exists": False}]}
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    dead_letter = cfn.getatt_target(target["DeadLetterConfig"]["Arn"])
    # A failed run lands where an undelivered event does, and that queue has an alarm.
    config = _on_failure(cfn, synth, BATCH_EVENTS)
    assert cfn.getatt_target(config["DestinationConfig"]["OnFailure"]["Destination"]) == dead_letter
    assert dead_letter in _alarmed_queues(cfn, synth)
    (permission,) = [
        p
        for p in synth.props("AWS::Lambda::Permission")
        if cfn.getatt_target(p["FunctionName"]) == batch_events
    ]
    assert permission["Principal"] == "events.amazonaws.com"


def test_batch_events_sends_to_the_queue_review_consumes(cfn, synth):
    review_queue = cfn.queue_fed_to(synth, REVIEW)
    variables = cfn.function_props(synth, BATCH_EVENTS)["Environment"]["Variables"]
    assert cfn.getatt_target(variables[env.REVIEW_QUEUE_URL]) == review_queue
    senders = {
        handler
        for handler in (BATCH_EVENTS, REVIEW, COLLECT, "lambdas.ingest.handler")
        for s in cfn.statements_of_roles(synth, {cfn.role_of(synth, handler)})
        if "sqs:SendMessage" in cfn.actions_of(s)
        and review_queue in {cfn.getatt_target(r) for r in cfn.as_list(s["Resource"])}
    }
    assert senders == {BATCH_EVENTS}
    mapping = next(
        m
        for m in synth.props("AWS::Lambda::EventSourceMapping")
        if cfn.getatt_target(m["EventSourceArn"]) == review_queue
    )
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_collect_runs_one_pass_at_a_time_on_answers_and_a_schedule(cfn, synth):
    collect = cfn.function_props(synth, COLLECT)
    assert collect["ReservedConcurrentExecutions"] == 1
    answers = cfn.queue_fed_to(synth, COLLECT)
    assert answers != cfn.queue_fed_to(synth, REVIEW)
    (schedule,) = _rules_targeting(cfn, synth, cfn.function_id(synth, COLLECT))
    assert schedule["ScheduleExpression"] == "rate(15 minutes)"
    (target,) = schedule["Targets"]
    dead_letter = cfn.getatt_target(target["DeadLetterConfig"]["Arn"])
    assert dead_letter in _alarmed_queues(cfn, synth)
    config = _on_failure(cfn, synth, COLLECT)
    assert config["MaximumEventAgeInSeconds"] <= 15 * 60  # the next pass replaces it
    for logical_id in (answers, cfn.queue_fed_to(synth, REVIEW)):
        redrive = synth.resources[logical_id]["Properties"]["RedrivePolicy"]
        assert cfn.getatt_target(redrive["deadLetterTargetArn"]) in _alarmed_queues(cfn, synth)


@pytest.mark.slow
def test_the_collect_schedule_is_a_setting(cfn, synth_with):
    other = synth_with(**{"dressvision:collectEveryMinutes": "60"})
    (schedule,) = _rules_targeting(cfn, other, cfn.function_id(other, COLLECT))
    assert schedule["ScheduleExpression"] == "rate(1 hour)"


def test_with_the_internal_workforce_nobody_may_send_answers(cfn, synth):
    statements = cfn.queue_policy_statements(synth, cfn.queue_fed_to(synth, COLLECT))
    assert statements and _allows(statements) == []
    assert not [
        r
        for r in synth.props("AWS::Events::Rule")
        if r.get("EventPattern", {}).get("source") == ["aws.sagemaker"]
    ]


def test_the_mturk_answers_queue_lets_only_mturk_send(cfn, mturk):
    answers = cfn.queue_fed_to(mturk, COLLECT)
    (allow,) = _allows(cfn.queue_policy_statements(mturk, answers))
    assert allow["Principal"] == {"Service": MTURK_PRINCIPAL}
    assert allow["Action"] == "sqs:SendMessage"
    assert cfn.getatt_target(allow["Resource"]) == answers
    assert allow["Condition"] == {"Bool": {"aws:SecureTransport": "true"}}
    # MTurk's notification destination is the queue URL; only review registers it.
    variables = cfn.function_props(mturk, REVIEW)["Environment"]["Variables"]
    assert cfn.getatt_target(variables[env.MTURK_NOTIFICATION_QUEUE_URL]) == answers
    assert variables[env.WORKFORCE] == "mturk"


def test_a2i_status_changes_of_our_flow_reach_the_answers_queue_and_nothing_else(
    cfn, a2i_flow_definition, a2i
):
    answers = cfn.queue_fed_to(a2i, COLLECT)
    (rule_id,) = [
        k
        for k, r in a2i.of_type("AWS::Events::Rule").items()
        if answers in {cfn.getatt_target(t["Arn"]) for t in r["Properties"].get("Targets", [])}
    ]
    rule = a2i.resources[rule_id]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": [A2I_STATUS_CHANGE],
        "detail": {"flowDefinitionArn": [a2i_flow_definition]},
    }
    (target,) = rule["Targets"]
    assert cfn.getatt_target(target["DeadLetterConfig"]["Arn"]) in _alarmed_queues(cfn, a2i)
    (allow,) = _allows(cfn.queue_policy_statements(a2i, answers))
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert "sqs:SendMessage" in cfn.actions_of(allow)
    assert cfn.getatt_target(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == rule_id


def test_the_workforce_api_is_granted_only_with_that_workforce(cfn, synth, mturk, a2i):
    def services(app, handler):
        return {
            a.split(":")[0]
            for s in cfn.statements_of_roles(app, {cfn.role_of(app, handler)})
            for a in cfn.actions_of(s)
        }

    for handler in (REVIEW, COLLECT, BATCH_EVENTS):
        assert not {"mechanicalturk", "sagemaker"} & services(synth, handler), handler
        assert "sagemaker" not in services(mturk, handler)
        assert "mechanicalturk" not in services(a2i, handler)
    assert "mechanicalturk" in services(mturk, REVIEW) & services(mturk, COLLECT)


def test_each_lambda_calls_only_the_mturk_actions_its_handler_uses(cfn, mturk):
    expected = {
        REVIEW: {
            "CreateHITType",
            "CreateHITWithHITType",
            "GetAccountBalance",
            "UpdateNotificationSettings",
            "ListHITs",
        },
        COLLECT: {
            "ListAssignmentsForHIT",
            "ApproveAssignment",
            "CreateAdditionalAssignmentsForHIT",
            "UpdateExpirationForHIT",
            "GetAccountBalance",
        },
        BATCH_EVENTS: set(),
    }
    for handler, actions in expected.items():
        granted = {
            a.removeprefix("mechanicalturk:")
            for s in cfn.statements_of_roles(mturk, {cfn.role_of(mturk, handler)})
            for a in cfn.actions_of(s)
            if a.startswith("mechanicalturk:")
        }
        assert granted == actions, handler


def test_each_loop_lambda_writes_only_its_tables(cfn, synth):
    by_keys = {
        (keys.LABELS_PARTITION_KEY, keys.LABELS_SORT_KEY): "labels",
        (keys.PREDICTIONS_PARTITION_KEY, keys.PREDICTIONS_SORT_KEY): "predictions",
        (keys.TASKS_PARTITION_KEY,): "tasks",
    }
    tables = {
        k: by_keys[tuple(key["AttributeName"] for key in t["Properties"]["KeySchema"])]
        for k, t in synth.of_type("AWS::DynamoDB::Table").items()
    }
    expected = {BATCH_EVENTS: set(), REVIEW: {"tasks"}, COLLECT: {"tasks", "labels"}}
    for handler, names in expected.items():
        written = {
            tables[cfn.getatt_target(r)]
            for s in cfn.statements_of_roles(synth, {cfn.role_of(synth, handler)})
            if "dynamodb:PutItem" in cfn.actions_of(s)
            for r in cfn.as_list(s["Resource"])
            if cfn.getatt_target(r) in tables
        }
        assert written == names, handler


def test_a2i_loops_start_only_on_our_flow_definition(cfn, a2i_flow_definition, a2i):
    account_region = "arn:aws:sagemaker:us-east-1:123456789012"
    for handler, expected in [
        (REVIEW, {"sagemaker:StartHumanLoop": [a2i_flow_definition]}),
        (
            COLLECT,
            {
                "sagemaker:StartHumanLoop": [a2i_flow_definition],
                "sagemaker:DescribeHumanLoop": [f"{account_region}:human-loop/*"],
            },
        ),
    ]:
        granted = {
            action: cfn.as_list(s["Resource"])
            for s in cfn.statements_of_roles(a2i, {cfn.role_of(a2i, handler)})
            for action in cfn.actions_of(s)
            if action.startswith("sagemaker:")
        }
        assert granted == expected, handler
    reads = json.dumps(cfn.statements_of_roles(a2i, {cfn.role_of(a2i, COLLECT)}))
    assert "/a2i/*" in reads  # the flow definition's output


def test_each_loop_lambda_writes_only_its_own_keys(cfn, synth):
    (artifacts,) = [
        k
        for k, b in synth.of_type("AWS::S3::Bucket").items()
        if b["Properties"].get("VersioningConfiguration")
        and "NotificationConfiguration" not in b["Properties"]  # the catalog is versioned too
    ]
    assert _s3_writes(cfn, synth, BATCH_EVENTS) == {
        f"{artifacts}/manifests/infer/*",
        f"{artifacts}/jobs/failed/*",
        f"{artifacts}/models/*/reinfer*.json",  # reinfer.json, and reinfer-similarity-<v>.json
    }
    assert _s3_writes(cfn, synth, COLLECT) == {f"{artifacts}/loop/train-requested.json"}
    # The round's whole-catalog review stores the model's thresholds for the upload reviews.
    assert _s3_writes(cfn, synth, REVIEW) == {f"{artifacts}/models/facets/*/review-thresholds.json"}
    for handler in (BATCH_EVENTS, REVIEW, COLLECT):
        for statement in cfn.statements_of_roles(synth, {cfn.role_of(synth, handler)}):
            assert not [a for a in cfn.write_actions(statement) if a.startswith("s3:Delete")], (
                handler
            )


@pytest.mark.slow
@pytest.mark.parametrize("handler", [BATCH_EVENTS, REVIEW, COLLECT])
@pytest.mark.parametrize("app", ["synth", "mturk", "a2i"])
def test_each_loop_lambda_gets_settings_its_handler_accepts(
    cfn, a2i_flow_definition, request, app, handler
):
    """The environment reads back as `shared.env.Settings` with the stage's values (resource
    references replaced by placeholders), so a deployed handler starts."""
    template = request.getfixturevalue(app)
    variables = cfn.function_props(template, handler)["Environment"]["Variables"]
    plain = {k: v if isinstance(v, str) else f"<{k}>" for k, v in variables.items()}
    settings = Settings.from_env(plain)
    assert settings.backend == "aws" and settings.job_queue == f"<{env.JOB_QUEUE}>"
    if handler == BATCH_EVENTS:
        assert settings.review_queue_url
        return
    assert settings.workforce == {"synth": "internal", "mturk": "mturk", "a2i": "a2i"}[app]
    assert str(settings.mturk_budget_usd) == "50.0" and settings.mturk_production is False
    assert settings.retrain_threshold == 100 and settings.max_assignments == 2
    assert settings.ask_step == 1  # one more answer at a time
    assert settings.loop_min_changes == 10  # the rounds stop where the stage says
    assert settings.loop_holdout_folds == 0  # retrainings train on the whole train split
    assert settings.review_doubt == 0.85  # the review also asks where the model doubts
    if app == "a2i":
        assert settings.a2i_flow_definition_arn == a2i_flow_definition


def test_every_queue_of_every_workforce_has_a_dead_letter_queue(cfn, synth, mturk, a2i):
    for app in (synth, mturk, a2i):
        dead_letters = cfn.dead_letter_queue_ids(app)
        for logical_id, queue in app.of_type("AWS::SQS::Queue").items():
            assert logical_id in dead_letters or "RedrivePolicy" in queue["Properties"]
        assert dead_letters == _alarmed_queues(cfn, app)
