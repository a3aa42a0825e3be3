"""What the synthesized template must guarantee, asserted on properties, not logical ids."""

from __future__ import annotations

import importlib
import json

import pytest
from aws_cdk.assertions import Match, Template

from infra.grants import MTURK_ACTIONS, MTURK_KEEP_OUT_ACTIONS, MTURK_REASON
from shared import env, keys
from shared.keys import CATALOG_PREFIX

GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5")
CONTRACT_NAMES = {
    env.BACKEND,
    env.CATALOG_BUCKET,
    env.ARTIFACTS_BUCKET,
    env.LABELS_TABLE,
    env.PREDICTIONS_TABLE,
    env.TASKS_TABLE,
    env.JOB_QUEUE,
    env.JOB_DEFINITION_PREFIX + "INFER",
    env.JOB_DEFINITION_PREFIX + "TRAIN",
    env.INFER_SHARD_SIZE,
}


def _ingest_queue_id(cfn, synth) -> str:
    return cfn.queue_fed_to(synth, "lambdas.ingest.handler")


def test_catalog_uploads_notify_the_queue_the_ingest_lambda_consumes(cfn, synth):
    queue_id = _ingest_queue_id(cfn, synth)
    configured = [
        (bucket_id, config)
        for bucket_id, bucket in synth.of_type("AWS::S3::Bucket").items()
        for config in bucket["Properties"]
        .get("NotificationConfiguration", {})
        .get("QueueConfigurations", [])
    ]
    assert len(configured) == 1
    bucket_id, config = configured[0]
    assert cfn.getatt_target(config["Queue"]) == queue_id
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": CATALOG_PREFIX}]
    # S3 may send only from that bucket, and the bucket waits for that permission.
    bucket = synth.resources[bucket_id]
    (policy_id,) = bucket["DependsOn"]
    statement = next(
        s
        for s in synth.resources[policy_id]["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Principal") == {"Service": "s3.amazonaws.com"}
    )
    assert statement["Action"] == "sqs:SendMessage"
    assert cfn.getatt_target(statement["Resource"]) == queue_id
    source_arn = cfn.render(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
    assert source_arn == "arn:${AWS::Partition}:s3:::" + cfn.render(
        bucket["Properties"]["BucketName"]
    )


def test_every_queue_but_a_dead_letter_queue_has_a_redrive_policy(cfn, synth):
    queues = synth.of_type("AWS::SQS::Queue")
    dead_letter_ids = cfn.dead_letter_queue_ids(synth)
    assert len(dead_letter_ids) == 5, "ingest, inference window, review, answers, batch_events"
    for logical_id, queue in queues.items():
        props = queue["Properties"]
        assert props.get("SqsManagedSseEnabled") or props.get("KmsMasterKeyId"), logical_id
        if logical_id in dead_letter_ids:
            assert props["MessageRetentionPeriod"] == 14 * 24 * 3600, logical_id
        else:
            assert 1 <= props["RedrivePolicy"]["maxReceiveCount"] <= 5, logical_id


def test_every_queue_refuses_plain_http(cfn, synth):
    denied = {
        cfn.getatt_target(s["Resource"])
        for policy in synth.props("AWS::SQS::QueuePolicy")
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert denied == set(synth.of_type("AWS::SQS::Queue"))


@pytest.mark.parametrize(
    "handler", ["lambdas.ingest.handler", "lambdas.review.handler", "lambdas.collect.handler"]
)
def test_queues_outlast_six_lambda_timeouts_and_report_partial_failures(cfn, synth, handler):
    function = cfn.function_props(synth, handler)
    mapping = cfn.event_source_of(synth, handler)
    queue = synth.resources[cfn.queue_fed_to(synth, handler)]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"] + mapping.get(
        "MaximumBatchingWindowInSeconds", 0
    )
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"]["MaximumConcurrency"] >= 2


def test_ingest_gathers_batches(cfn, synth):
    mapping = cfn.event_source_of(synth, "lambdas.ingest.handler")
    assert mapping["BatchSize"] > 10 and mapping["MaximumBatchingWindowInSeconds"] >= 1


def test_ingest_lambda_runs_our_handler_with_the_layer_and_the_env_contract(cfn, synth):
    function = cfn.function_props(synth, "lambdas.ingest.handler")
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["arm64"]
    assert len(function["Layers"]) == 1
    variables = function["Environment"]["Variables"]
    assert set(variables) >= CONTRACT_NAMES
    assert variables[env.BACKEND] == "aws"
    module, name = function["Handler"].rsplit(".", 1)
    assert callable(getattr(importlib.import_module(module), name))


def test_every_lambda_is_ours_and_no_custom_resource_hides_another(synth):
    handlers = [f["Handler"] for f in synth.props("AWS::Lambda::Function")]
    assert handlers and all(h.startswith("lambdas.") for h in handlers)
    assert not [r for r in synth.resources.values() if r["Type"].startswith("Custom::")]


def test_no_lambda_role_writes_to_every_resource(cfn, synth):
    lambda_roles = cfn.roles_assumed_by(synth, "lambda.amazonaws.com")
    assert len(lambda_roles) == 7  # ingest, flush, batch_events, review, collect, web, similar
    for statement in cfn.statements_of_roles(synth, lambda_roles):
        if "*" in cfn.as_list(statement["Resource"]):
            writes = cfn.write_actions(statement)
            assert not writes, f"{writes} on Resource '*'"


def test_only_the_documented_mturk_actions_have_every_resource(cfn, mturk):
    """MTurk has no resource-level permissions: its actions, named one by one, are the only
    writes on Resource '*', and each role that has them says why (cdk-nag)."""
    lambda_roles = cfn.roles_assumed_by(mturk, "lambda.amazonaws.com")
    seen = set()
    for role in lambda_roles:
        for statement in cfn.statements_of_roles(mturk, {role}):
            if "*" not in cfn.as_list(statement["Resource"]):
                continue
            writes = cfn.write_actions(statement)
            assert set(writes) <= {f"mechanicalturk:{a}" for a in MTURK_ACTIONS}, writes
            assert not [a for a in cfn.actions_of(statement) if "*" in a]
            seen.update(cfn.actions_of(statement))
            acknowledged = cfn.acknowledgements_of_role(mturk, role)
            assert acknowledged["AwsSolutions-IAM5[Resource::*]"] == MTURK_REASON
    # The qualification actions come only with minWorkerAccuracy (test_budget_alarm.py).
    assert seen == {f"mechanicalturk:{a}" for a in MTURK_ACTIONS - MTURK_KEEP_OUT_ACTIONS}


def test_lambdas_submit_only_their_job_to_our_queue(cfn, synth):
    """The inference window's flush and batch_events submit inference, collect training,
    ingest a fresh stack's first training only; nobody else submits."""
    (queue_id,) = synth.of_type("AWS::Batch::JobQueue")
    names = {d["JobDefinitionName"] for d in synth.props("AWS::Batch::JobDefinition")}
    expected = {
        "lambdas.ingest.handler": ("train",),
        "lambdas.flush.handler": ("infer",),
        "lambdas.batch_events.handler": ("infer",),
        "lambdas.collect.handler": ("train",),
        "lambdas.review.handler": None,
    }
    for handler, jobs in expected.items():
        submit = [
            s
            for s in cfn.statements_of_roles(synth, {cfn.role_of(synth, handler)})
            if "batch:SubmitJob" in cfn.actions_of(s)
        ]
        if jobs is None:
            assert submit == [], handler
            continue
        assert len(submit) == 1 and cfn.actions_of(submit[0]) == ["batch:SubmitJob"], handler
        resources = cfn.as_list(submit[0]["Resource"])
        assert "*" not in resources
        assert queue_id in {cfn.getatt_target(r) for r in resources}
        arns = [json.dumps(r) for r in resources if cfn.getatt_target(r) is None]
        allowed = {n for n in names if n.endswith(tuple(f"-{job}" for job in jobs))}
        assert {n for n in names if any(f"job-definition/{n}" in arn for arn in arns)} == allowed
        assert all(any(f"job-definition/{n}" in arn for n in allowed) for arn in arns), handler


def test_buckets_are_private_encrypted_and_ssl_only(cfn, synth):
    buckets = synth.of_type("AWS::S3::Bucket")
    assert len(buckets) >= 3
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert bucket["DeletionPolicy"] == "Retain"
    ssl_only = {
        cfn.getatt_target(policy["Bucket"])
        for policy in synth.props("AWS::S3::BucketPolicy")
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    }
    assert ssl_only == set(buckets)


def test_artifacts_are_versioned_and_photos_readable_cross_origin(synth):
    buckets = synth.props("AWS::S3::Bucket")
    assert any(b.get("VersioningConfiguration") == {"Status": "Enabled"} for b in buckets)
    (catalog,) = [b for b in buckets if "NotificationConfiguration" in b]
    (rule,) = catalog["CorsConfiguration"]["CorsRules"]
    assert "GET" in rule["AllowedMethods"]
    assert "LoggingConfiguration" in catalog


def test_tables_match_the_adapter_schema_and_keep_their_data(synth):
    tables = synth.of_type("AWS::DynamoDB::Table")
    assert len(tables) == 3
    schemas = []
    for table in tables.values():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert props["SSESpecification"]["SSEEnabled"] is True
        assert props["DeletionProtectionEnabled"] is True
        assert table["DeletionPolicy"] == "Retain"
        schemas.append(tuple((k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]))
    labels_key = ((keys.LABELS_PARTITION_KEY, "HASH"), (keys.LABELS_SORT_KEY, "RANGE"))
    assert labels_key in schemas
    assert ((keys.TASKS_PARTITION_KEY, "HASH"),) in schemas
    # The task store queries open tasks and the task of a HIT / loop through these indexes.
    (tasks,) = [
        t["Properties"]
        for t in tables.values()
        if t["Properties"]["KeySchema"][0]["AttributeName"] == keys.TASKS_PARTITION_KEY
    ]
    indexes = {
        i["IndexName"]: (i["KeySchema"], i["Projection"]["ProjectionType"])
        for i in tasks["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        keys.TASKS_BY_STATUS_INDEX: (
            [{"AttributeName": keys.TASKS_STATUS, "KeyType": "HASH"}],
            "ALL",
        ),
        keys.TASKS_BY_EXTERNAL_ID_INDEX: (
            [{"AttributeName": keys.TASKS_EXTERNAL_ID, "KeyType": "HASH"}],
            "KEYS_ONLY",
        ),
    }
    Template.from_json(synth.template).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": keys.PREDICTIONS_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": keys.PREDICTIONS_SORT_KEY, "KeyType": "RANGE"},
            ],
            "GlobalSecondaryIndexes": [
                Match.object_like(
                    {
                        "IndexName": keys.PREDICTIONS_BY_MODEL_INDEX,
                        "KeySchema": [
                            {"AttributeName": "model_version", "KeyType": "HASH"},
                            {"AttributeName": "image_id", "KeyType": "RANGE"},
                        ],
                    }
                )
            ],
        },
    )


def test_compute_environments_scale_gpu_instances_from_zero_spot_first(cfn, synth):
    environments = synth.of_type("AWS::Batch::ComputeEnvironment")
    assert len(environments) == 2
    by_type = {}
    for logical_id, environment in environments.items():
        resources = environment["Properties"]["ComputeResources"]
        assert resources["MinvCpus"] == 0
        assert resources["InstanceTypes"]
        assert all(t.split(".")[0] in GPU_FAMILIES for t in resources["InstanceTypes"])
        assert resources["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]
        by_type[resources["Type"]] = (logical_id, resources)
    assert by_type["SPOT"][1]["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    (queue,) = synth.props("AWS::Batch::JobQueue")
    order = {
        cfn.getatt_target(e["ComputeEnvironment"]): e["Order"]
        for e in queue["ComputeEnvironmentOrder"]
    }
    assert order[by_type["SPOT"][0]] < order[by_type["EC2"][0]]


def test_job_definitions_ask_for_a_gpu_and_retry_only_lost_spot_hosts(synth):
    definitions = synth.props("AWS::Batch::JobDefinition")
    assert {d["ContainerProperties"]["Command"][-1] for d in definitions} == {
        "batch_jobs.infer",
        "batch_jobs.train",
    }
    for definition in definitions:
        container = definition["ContainerProperties"]
        requirements = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
        assert requirements["GPU"] == "1"
        assert int(requirements["MEMORY"]) > container["LinuxParameters"]["SharedMemorySize"] > 0
        retry = definition["RetryStrategy"]
        assert retry["Attempts"] >= 2
        assert retry["EvaluateOnExit"] == [
            {"Action": "RETRY", "OnStatusReason": "Host EC2*"},
            {"Action": "EXIT", "OnReason": "*"},
        ]
        assert definition["Timeout"]["AttemptDurationSeconds"] > 0
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert set(environment) >= CONTRACT_NAMES
        own = env.JOB_DEFINITION_PREFIX + container["Command"][-1].split(".")[-1].upper()
        assert environment[own] == definition["JobDefinitionName"]


def test_job_roles_never_write_the_catalog(cfn, synth):
    """Nobody deletes photos; only ingest may put one (the last good version back over a bad
    re-upload, in a versioned bucket, so nothing is ever lost)."""
    catalog_id = next(
        logical_id
        for logical_id, b in synth.of_type("AWS::S3::Bucket").items()
        if "NotificationConfiguration" in b["Properties"]
    )
    ingest = cfn.role_of(synth, "lambdas.ingest.handler")
    roles = cfn.roles_assumed_by(synth, "ecs-tasks.amazonaws.com") | cfn.roles_assumed_by(
        synth, "lambda.amazonaws.com"
    )
    for role in roles:
        for statement in cfn.statements_of_roles(synth, {role}):
            targets = json.dumps(statement["Resource"])
            if catalog_id in targets:
                actions = cfn.as_list(statement["Action"])
                forbidden = ("s3:Delete",) if role == ingest else ("s3:Put", "s3:Delete")
                assert not [a for a in actions if a.startswith(forbidden)], (role, actions)


def test_network_has_gateway_endpoints_and_no_nat(synth):
    endpoints = synth.props("AWS::EC2::VPCEndpoint")
    services = {json.dumps(e["ServiceName"]) for e in endpoints}
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)
    assert all(e.get("VpcEndpointType", "Gateway") == "Gateway" for e in endpoints)
    assert not synth.of_type("AWS::EC2::NatGateway")


def test_dead_letters_and_failed_jobs_reach_the_encrypted_alarm_topic(cfn, synth):
    (topic_id,) = synth.of_type("AWS::SNS::Topic")
    assert "KmsMasterKeyId" in synth.resources[topic_id]["Properties"]
    alarmed = set()
    for alarm in synth.props("AWS::CloudWatch::Alarm"):
        assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert [cfn.getatt_target(a) for a in alarm["AlarmActions"]] == [topic_id]
        (queue_dimension,) = alarm["Dimensions"]
        alarmed.add(cfn.getatt_target(queue_dimension["Value"]))
    assert alarmed == cfn.dead_letter_queue_ids(synth)
    ingest_queue = synth.resources[_ingest_queue_id(cfn, synth)]["Properties"]
    assert cfn.getatt_target(ingest_queue["RedrivePolicy"]["deadLetterTargetArn"]) in alarmed
    (rule,) = [
        r
        for r in synth.props("AWS::Events::Rule")
        if [cfn.getatt_target(t["Arn"]) for t in r["Targets"]] == [topic_id]
    ]
    assert rule["EventPattern"]["detail"]["status"] == ["FAILED"]
    assert rule["EventPattern"]["detail-type"] == ["Batch Job State Change"]
    assert not synth.of_type("AWS::SNS::Subscription")  # no alarmEmail in cdk.json


def test_the_inference_window_flushes_on_a_schedule_one_at_a_time(cfn, synth):
    """Ingest queues, a schedule flushes: one flush at a time, with the window settings in
    its environment; its failed runs reach an alarmed dead-letter queue."""
    flush = cfn.function_props(synth, "lambdas.flush.handler")
    assert flush["ReservedConcurrentExecutions"] == 1
    variables = flush["Environment"]["Variables"]
    assert variables[env.INFER_WINDOW_IMAGES] == "50000"
    assert variables[env.INFER_WINDOW_SECONDS] == "300"
    (function_id,) = [
        i
        for i, r in synth.of_type("AWS::Lambda::Function").items()
        if r["Properties"]["Handler"] == "lambdas.flush.handler"
    ]
    (rule,) = [
        r
        for r in synth.props("AWS::Events::Rule")
        if [cfn.getatt_target(t["Arn"]) for t in r["Targets"]] == [function_id]
    ]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Targets"]
    assert cfn.getatt_target(target["DeadLetterConfig"]["Arn"]) in cfn.dead_letter_queue_ids(synth)


def test_training_checkpoints_live_under_the_prefix_the_train_job_may_write():
    from shared.keys import CHECKPOINTS_PREFIX, checkpoint_key

    for kind in ("facets", "locator"):
        assert checkpoint_key(kind, "run").startswith(CHECKPOINTS_PREFIX)
