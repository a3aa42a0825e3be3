"""The stage's model settings reach the environment of what reads them: the Lambdas that submit
jobs (their recipe, their infer batch size) and the train job (a job submitted by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.settings import StageSettings
from shared import env
from shared.env import Settings
from shared.keys import FIRST_TRAINING_KEY
from shared.recipe import TrainingRecipe

SUBMITTERS = (
    "lambdas.ingest.handler",
    "lambdas.flush.handler",
    "lambdas.batch_events.handler",
    "lambdas.collect.handler",
)
SIZED = {
    "dressvision:imageSize": "160",
    "dressvision:trainBatchSize": "24",
    "dressvision:inferBatchSize": "48",
    "dressvision:firstTrainMinImages": "50",
}


def _settings(variables: dict) -> Settings:
    """`Settings.from_env` of a template's variables (references replaced by placeholders)."""
    return Settings.from_env(
        {k: v if isinstance(v, str) else f"<{k}>" for k, v in variables.items()}
    )


@pytest.fixture(scope="module")
def sized(synth_with):
    return synth_with(**SIZED)


def test_the_stage_defaults_are_the_training_recipe():
    stage, recipe = StageSettings(), TrainingRecipe()
    assert (stage.image_size, stage.train_batch_size) == (recipe.image_size, recipe.batch_size)


def test_the_cloud_recipe_starts_from_imagenet_weights_baked_into_the_job_image():
    stage = StageSettings()
    assert stage.train_weights == "IMAGENET1K_V1"
    recipe = TrainingRecipe.from_settings(Settings.from_env({env.TRAIN_WEIGHTS: "IMAGENET1K_V1"}))
    assert recipe.weights == "IMAGENET1K_V1"
    assert recipe.to_args()[recipe.to_args().index("--weights") + 1] == "IMAGENET1K_V1"
    # The jobs' VPC has no internet route: the image must carry those weights of the default
    # backbone in its torch hub cache.
    dockerfile = (Path(__file__).parents[2] / "batch_jobs" / "Dockerfile").read_text()
    assert f"ARG PRETRAINED=ResNet18_Weights.{stage.train_weights}" in dockerfile
    assert TrainingRecipe().arch == "resnet18"
    # A laptop's recipe stays random init unless asked.
    assert TrainingRecipe.from_settings(Settings.from_env({})).weights is None


@pytest.mark.slow
@pytest.mark.parametrize("handler", SUBMITTERS)
def test_submitters_read_the_stage_model_settings(cfn, sized, handler):
    settings = _settings(cfn.function_props(sized, handler)["Environment"]["Variables"])
    assert (settings.image_size, settings.train_batch_size) == (160, 24)
    assert settings.infer_batch_size == 48
    recipe = TrainingRecipe.from_settings(settings)
    assert (recipe.image_size, recipe.batch_size, recipe.weights) == (160, 24, "IMAGENET1K_V1")


@pytest.mark.slow
def test_the_train_job_and_ingest_read_the_rest(cfn, sized):
    (train,) = [
        d
        for d in sized.props("AWS::Batch::JobDefinition")
        if d["JobDefinitionName"].endswith("-train")
    ]
    variables = {e["Name"]: e["Value"] for e in train["ContainerProperties"]["Environment"]}
    settings = _settings(variables)
    assert (settings.image_size, settings.train_batch_size) == (160, 24)
    assert settings.train_weights == "IMAGENET1K_V1"  # the job submitted by hand too
    ingest = _settings(cfn.function_props(sized, SUBMITTERS[0])["Environment"]["Variables"])
    assert ingest.first_train_min_images == 50


@pytest.mark.slow
def test_without_a_first_training_ingest_may_not_submit_training_nor_claim(cfn, synth_with):
    off = synth_with(**{"dressvision:firstTrainMinImages": "0"})
    statements = cfn.statements_of_roles(off, {cfn.role_of(off, SUBMITTERS[0])})
    submit = [s for s in statements if "batch:SubmitJob" in cfn.actions_of(s)]
    assert submit == []  # inference is the window's flush's to submit
    assert FIRST_TRAINING_KEY not in json.dumps(statements)


def test_the_default_stack_lets_ingest_claim_the_first_training(cfn, synth):
    statements = cfn.statements_of_roles(synth, {cfn.role_of(synth, SUBMITTERS[0])})
    claim = [s for s in statements if FIRST_TRAINING_KEY in json.dumps(s["Resource"])]
    assert claim
    actions = {a for s in claim for a in cfn.actions_of(s)}
    # claim (conditional put), release after a failed submission (delete), check (get/head)
    assert {"s3:PutObject", "s3:DeleteObject*", "s3:GetObject*"} <= actions
