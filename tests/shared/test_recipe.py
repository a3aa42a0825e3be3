"""The training recipe: its arguments give it back whatever the parser's defaults, the settings
change only what they name, and `--locator auto` trains a locator only on a fresh deployment."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

import pytest

from shared.env import Settings
from shared.errors import ConfigurationError
from shared.recipe import (
    TrainingRecipe,
    add_recipe_arguments,
    parse_recipe,
    recipe_parser,
    trains_locator,
)

EVERYTHING_CHANGED = TrainingRecipe(
    facets=("sleeve", "neckline"),
    arch="resnet34",
    weights="/weights/resnet34.pth",
    stn=True,
    image_size=96,
    epochs=3,
    batch_size=8,
    optimizer="sgd",
    lr=0.05,
    momentum=0.8,
    weight_decay=0.01,
    warmup_epochs=0.5,
    label_smoothing=0.0,
    ema=0.998,
    class_weights=False,
    locator="none",
    crop_margin=0.2,
    bodice=0.5,
    hue=0.1,
    seed=7,
    oof_folds=3,
    holdout_folds=4,
    holdout_fold=2,
    dynamics=False,
    amp=False,
    force=True,
)


def test_every_field_differs_in_the_changed_recipe():
    """(So the round trip below would catch an option that does not travel.)"""
    default = TrainingRecipe()
    same = [
        f.name
        for f in fields(default)
        if getattr(default, f.name) == getattr(EVERYTHING_CHANGED, f.name)
    ]
    assert same == []


@pytest.mark.parametrize("recipe", [TrainingRecipe(), EVERYTHING_CHANGED])
def test_job_arguments_give_the_recipe_back_over_any_deployments_recipe(recipe):
    other = TrainingRecipe.from_settings(Settings(image_size=300, train_batch_size=3))
    assert parse_recipe(recipe.to_args()) == recipe
    assert parse_recipe(recipe.to_args(), base=other) == recipe


def test_options_not_given_keep_the_base_and_given_ones_replace_it():
    base = TrainingRecipe.from_settings(Settings(image_size=96, train_batch_size=16))
    assert parse_recipe([], base) == base
    got = parse_recipe(["--epochs", "3", "--no-class-weights", "--facets", "sleeve"], base)
    assert got == replace(base, epochs=3, class_weights=False, facets=("sleeve",))


def test_settings_choose_the_image_and_batch_sizes_only():
    settings = Settings(image_size=96, train_batch_size=16)
    assert TrainingRecipe.from_settings(settings) == replace(
        TrainingRecipe(), image_size=96, batch_size=16
    )
    assert TrainingRecipe.from_settings(Settings()) == TrainingRecipe()


def test_settings_read_the_recipe_sizes_from_the_environment():
    settings = Settings.from_env(
        {"DRESSVISION_IMAGE_SIZE": "160", "DRESSVISION_TRAIN_BATCH_SIZE": "24"}
    )
    assert (settings.image_size, settings.train_batch_size) == (160, 24)
    assert Settings.from_env(settings.to_env()) == settings
    with pytest.raises(ValueError, match="DRESSVISION_IMAGE_SIZE must be at least 1"):
        Settings.from_env({"DRESSVISION_IMAGE_SIZE": "0"})


def test_the_defaults_train_a_locator_when_needed_and_record_the_training_dynamics():
    recipe = TrainingRecipe()
    assert recipe.locator == "auto" and recipe.dynamics and recipe.oof_folds == 0
    assert (recipe.image_size, recipe.batch_size, recipe.epochs) == (128, 32, 45)


@pytest.mark.parametrize(
    ("choice", "current", "trains"),
    [
        ("auto", None, True),
        ("auto", "20261128T000000Z", False),
        ("train", None, True),
        ("train", "20261128T000000Z", True),
        ("current", None, False),
        ("none", None, False),
    ],
)
def test_which_runs_train_a_locator_first(choice, current, trains):
    assert trains_locator(choice, current) is trains


def test_a_bad_value_is_refused_by_the_parser_and_the_dataclass():
    with pytest.raises(SystemExit):
        recipe_parser().parse_args(["--locator", "sometimes"])
    with pytest.raises(ValueError, match="locator must be one of"):
        TrainingRecipe(locator="sometimes")  # type: ignore[arg-type]
    # A value the parser lets through but the recipe refuses is an error to read (the CLI
    # prints it), not a traceback.
    args = recipe_parser().parse_args(["--holdout-folds", "4", "--holdout-fold", "4"])
    with pytest.raises(ConfigurationError, match="holdout fold must be between 0 and 3, got 4"):
        TrainingRecipe.from_args(args, TrainingRecipe())


def test_the_options_parse_into_any_parser_as_parents():
    parser = argparse.ArgumentParser(parents=[recipe_parser()])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(["--json", "--image-size", "64"])
    assert args.json and args.image_size == 64 and not hasattr(args, "epochs")
    assert add_recipe_arguments(argparse.ArgumentParser()).parse_args([]) == argparse.Namespace()
