"""The similarity indexes in the template: an S3 Vectors bucket with a cosine index per
embedder kind, the infer job may put and delete vectors, ingest may only delete, the similar
function may only query and get; every handler and job is told the bucket's name."""

from __future__ import annotations

import json

import pytest

from shared import env
from shared.keys import EMBEDDING_DIMENSIONS, vector_index_name

pytestmark = pytest.mark.slow


def s3vectors_actions(cfn, synth, role: str) -> set[str]:
    return {
        action
        for statement in cfn.statements_of_roles(synth, {role})
        for action in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
        if action.startswith("s3vectors:")
    }


def job_role(cfn, synth, job: str) -> str:
    (definition,) = [
        d
        for d in synth.props("AWS::Batch::JobDefinition")
        if d["ContainerProperties"]["Command"][-1] == f"batch_jobs.{job}"
    ]
    return cfn.getatt_target(definition["ContainerProperties"]["JobRoleArn"])


def test_one_vector_bucket_with_a_cosine_index_per_embedder_kind(synth):
    (bucket,) = synth.props("AWS::S3Vectors::VectorBucket")
    indexes = {i["IndexName"]: i for i in synth.props("AWS::S3Vectors::Index")}

    assert set(indexes) == {vector_index_name(kind) for kind in EMBEDDING_DIMENSIONS}
    for kind, dimension in EMBEDDING_DIMENSIONS.items():
        index = indexes[vector_index_name(kind)]
        assert index["DistanceMetric"] == "cosine" and index["DataType"] == "float32"
        assert index["Dimension"] == dimension
        assert index["VectorBucketName"] == bucket["VectorBucketName"]
        assert "MetadataConfiguration" not in index  # every metadata key stays filterable


def test_who_may_do_what_with_vectors(cfn, synth):
    assert s3vectors_actions(cfn, synth, job_role(cfn, synth, "infer")) == {
        "s3vectors:PutVectors",
        "s3vectors:DeleteVectors",
    }
    assert s3vectors_actions(cfn, synth, job_role(cfn, synth, "train")) == set()
    assert s3vectors_actions(cfn, synth, cfn.role_of(synth, "lambdas.ingest.handler")) == {
        "s3vectors:DeleteVectors"
    }
    similar_role = cfn.role_of(synth, "lambdas.similar.handler")
    assert s3vectors_actions(cfn, synth, similar_role) == {
        "s3vectors:QueryVectors",
        "s3vectors:GetVectors",
    }
    # ... and nothing else but its own logs: no table, no bucket, no job.
    others = [
        a
        for s in cfn.statements_of_roles(synth, {similar_role})
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        if not a.startswith(("s3vectors:", "logs:"))
    ]
    assert others == []
    for statement in cfn.statements_of_roles(synth, {similar_role}):
        if "s3vectors:" in json.dumps(statement["Action"]):  # the two indexes, by ARN
            assert "*" not in json.dumps(statement["Resource"])


def test_the_web_app_may_only_query_and_get_vectors(cfn, synth):
    from infra.constructs.web_api import HANDLER

    assert s3vectors_actions(cfn, synth, cfn.role_of(synth, HANDLER)) == {
        "s3vectors:QueryVectors",
        "s3vectors:GetVectors",
    }


def test_the_bucket_name_reaches_the_job_and_the_functions(cfn, synth):
    (bucket,) = synth.props("AWS::S3Vectors::VectorBucket")
    for handler in ("lambdas.similar.handler", "lambdas.ingest.handler"):
        variables = cfn.function_props(synth, handler)["Environment"]["Variables"]
        assert variables[env.VECTOR_BUCKET] == bucket["VectorBucketName"]
    for definition in synth.props("AWS::Batch::JobDefinition"):
        environment = {
            e["Name"]: e["Value"] for e in definition["ContainerProperties"]["Environment"]
        }
        assert environment[env.VECTOR_BUCKET] == bucket["VectorBucketName"]
