"""Training dynamics: each training image's probabilities averaged over a window of epochs, kept
through a resume, stored for review, and low for a label the network has to memorise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from batch_jobs.crossval import fold_of
from batch_jobs.dynamics import TrainingDynamics
from batch_jobs.train import check_args, default_args, dynamics_window, train
from shared.errors import ConfigurationError
from shared.relabel import oof_version

pytestmark = pytest.mark.usefixtures("one_thread")


def logits_for(probs: list[list[float]]) -> torch.Tensor:
    return torch.log(torch.tensor(probs))


def test_the_mean_covers_the_window_and_each_row_over_the_epochs_it_was_seen():
    dynamics = TrainingDynamics({"sleeve": 2}, rows=3, start=1, end=3)
    for epoch, p in enumerate(([0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5])):
        dynamics.record(torch.tensor([0, 1]), {"sleeve": logits_for([p, p])})
        if epoch == 2:  # row 2 is seen once, in a window epoch (a drop_last batch skipped it)
            dynamics.record(torch.tensor([2]), {"sleeve": logits_for([[0.3, 0.7]])})
        dynamics.end_epoch(epoch)
    mean = dynamics.mean()["sleeve"]
    np.testing.assert_allclose(mean[0], [0.4, 0.6], atol=1e-6)  # epochs 1 and 2 only
    np.testing.assert_allclose(mean[2], [0.3, 0.7], atol=1e-6)
    unseen = TrainingDynamics({"sleeve": 4}, rows=1)
    np.testing.assert_allclose(unseen.mean()["sleeve"][0], [0.25] * 4)  # never seen: uniform


def test_state_round_trips_and_refuses_another_data_set():
    dynamics = TrainingDynamics({"sleeve": 2}, rows=2, start=0, end=2)
    dynamics.record(torch.tensor([0, 1]), {"sleeve": logits_for([[0.7, 0.3], [0.1, 0.9]])})
    dynamics.end_epoch(0)
    restored = TrainingDynamics({"sleeve": 2}, rows=2, start=0, end=2)
    restored.load_state_dict(dynamics.state_dict())
    np.testing.assert_allclose(restored.mean()["sleeve"], dynamics.mean()["sleeve"])
    with pytest.raises(ValueError, match="another data set"):
        TrainingDynamics({"sleeve": 2}, rows=5).load_state_dict(dynamics.state_dict())
    with pytest.raises(ValueError, match="window"):
        TrainingDynamics({"sleeve": 2}, rows=2, start=3, end=3)


@pytest.mark.parametrize(
    ("epochs", "warmup", "window"), [(45, 2.0, (2, 23)), (6, 0.5, (1, 3)), (1, 2.0, (0, 1))]
)
def test_the_window_runs_from_the_warm_up_to_the_middle_of_the_run(epochs, warmup, window):
    assert dynamics_window(default_args(epochs=epochs, warmup_epochs=warmup)) == window


def test_a_label_the_network_must_memorise_keeps_a_low_mean_probability():
    """The signal itself, on a problem small enough to watch: two separable clusters, 10% of
    the labels flipped. Averaged over the first half of the training, the flipped labels'
    given class gets a lower probability than every right label's median."""
    torch.manual_seed(0)
    n = 200
    truth = torch.arange(n) % 2
    x = torch.randn(n, 8) + 3.0 * truth[:, None].float()
    given = truth.clone()
    flipped = torch.arange(0, n, 10)
    given[flipped] = 1 - given[flipped]
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    epochs = 60
    dynamics = TrainingDynamics({"f": 2}, rows=n, start=0, end=epochs // 2)
    for epoch in range(epochs):
        for rows in torch.randperm(n).split(20):
            logits = model(x[rows])
            loss = torch.nn.functional.cross_entropy(logits, given[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            dynamics.record(rows, {"f": logits.detach()})
        dynamics.end_epoch(epoch)
    mean = dynamics.mean()["f"]
    self_confidence = mean[np.arange(n), given.numpy()]
    right = np.setdiff1d(np.arange(n), flipped.numpy())
    assert self_confidence[flipped.numpy()].max() < np.median(self_confidence[right])


def tiny_sleeve_args(**overrides):
    """Two epochs of a sleeve-only model on 32-pixel photos: enough to store what review reads."""
    return default_args(
        epochs=2,
        image_size=32,
        batch_size=8,
        locator="none",
        facets=["sleeve"],
        progress=False,
        **overrides,
    )


@pytest.mark.slow  # trains a model
def test_training_stores_the_train_splits_dynamics_for_review_by_default(
    add_images, tiny_ports, tmp_path
):
    ports = tiny_ports(tmp_path / "home")
    records = add_images(ports, 16)
    args = tiny_sleeve_args()
    assert args.dynamics and not args.oof_folds  # the recipe's defaults
    result = train(args, ports)
    judged = {p.image_id: p for p in ports.predictions.for_model(oof_version(result.version))}
    assert set(judged) == {r.image_id for r in records if r.split == "train"}
    for prediction in judged.values():
        assert sum(prediction.facets["sleeve"].probs) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.slow  # trains a model
def test_a_held_out_fold_is_judged_by_the_model_that_never_trained_on_it(
    add_images, tiny_ports, tmp_path
):
    ports = tiny_ports(tmp_path / "home")
    records = add_images(ports, 16)
    result = train(tiny_sleeve_args(holdout_folds=2, holdout_fold=1), ports)
    train_ids = {r.image_id for r in records if r.split == "train"}
    held = {r.image_id for r in records if r.split == "train" and fold_of(r.product_id, 2) == 1}
    assert 0 < len(held) < len(train_ids)
    assert result.metrics["images"] == {
        "train": len(train_ids) - len(held),
        "held_out": len(held),
        "evaluated": len(records),
    }
    judged = {p.image_id: p for p in ports.predictions.for_model(oof_version(result.version))}
    model = {p.image_id: p for p in ports.predictions.for_model(result.version)}
    assert set(judged) == train_ids  # the rest by the training dynamics
    for image_id in held:  # the final model's own predictions, not a training-time average
        assert judged[image_id].facets["sleeve"].probs == pytest.approx(
            model[image_id].facets["sleeve"].probs
        )
    trained_on = train_ids - held
    assert any(
        judged[i].facets["sleeve"].probs != pytest.approx(model[i].facets["sleeve"].probs)
        for i in trained_on
    )


def test_holding_out_is_refused_with_fold_models_or_a_fold_out_of_range(tiny_ports, tmp_path):
    ports = tiny_ports(tmp_path / "home")
    for options, message in [
        ({"holdout_folds": 1}, "--holdout-folds must be 0"),
        ({"holdout_folds": 4, "holdout_fold": 4}, "--holdout-fold must be between 0 and 3"),
        ({"holdout_folds": 4, "oof_folds": 2}, "choose one"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            check_args(default_args(locator="none", **options), ports.taxonomy)
