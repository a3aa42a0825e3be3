"""Locator networks and losses: shapes, argument checks, and the losses against plain versions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.ops import generalized_box_iou

from batch_jobs.locator.boxes import PatchLabel
from batch_jobs.locator.inference import Locator
from batch_jobs.locator.losses import BoxRegressionLoss, PatchLocatorLoss
from batch_jobs.locator.preprocess import LocatorConfig, normalize
from batch_jobs.models import create_model
from shared.errors import ConfigurationError
from shared.registry import ModelKind

LOCATOR = ModelKind.LOCATOR


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: as fast on these tiny tensors, and immune to a busy shared CPU (two
    OpenMP threads competing with other processes for 2 cores can run 100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("backbone", "cells"), [("tiny", 64), ("resnet18", 16)])
def test_patch_network_scores_and_boxes_every_cell(backbone, cells):
    model = create_model(LOCATOR, "patches", backbone=backbone, input_size=64).eval()
    out = model(torch.randn(2, 3, 64, 64))
    # One cell per stride x stride pixels: 8 x 8 cells at stride 8, 4 x 4 at stride 16.
    assert out["logits"].shape == (2, cells)
    assert out["offsets"].shape == (2, cells, 4)
    combined = model.predict(torch.randn(2, 3, 64, 64), threshold=0.5)
    assert combined.boxes.shape == (2, 4) and combined.fallback.shape == (2,)


def test_whole_image_network_gives_ordered_boxes_inside_the_image():
    model = create_model(LOCATOR, "whole", input_size=48).eval()
    boxes = model(torch.randn(5, 3, 48, 48))["boxes"]
    assert boxes.shape == (5, 4)
    assert (boxes[:, :2] <= boxes[:, 2:]).all() and boxes.min() >= 0 and boxes.max() <= 1


def test_create_model_refuses_what_it_cannot_build():
    with pytest.raises(ConfigurationError, match="unknown locator model 'overfeat'; use one of"):
        create_model(LOCATOR, "overfeat")
    with pytest.raises(ValueError, match="multiple of 8"):
        create_model(LOCATOR, "patches", input_size=100)


def test_box_loss_is_l1_plus_giou():
    pred = torch.tensor([[0.1, 0.1, 0.5, 0.6], [0.2, 0.3, 0.9, 0.8]])
    target = torch.tensor([[0.0, 0.2, 0.5, 0.7], [0.2, 0.3, 0.9, 0.8]])
    expected = (pred - target).abs().sum(1).mean() + (
        1 - generalized_box_iou(pred, target).diagonal()
    ).mean()
    assert BoxRegressionLoss()(pred, target) == pytest.approx(float(expected), abs=1e-6)
    assert BoxRegressionLoss()(target, target) == pytest.approx(0.0, abs=1e-6)


def test_box_loss_checks_its_arguments():
    with pytest.raises(ValueError, match="not both 0"):
        BoxRegressionLoss(l1_weight=0, giou_weight=0)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        BoxRegressionLoss()(torch.rand(3, 4), torch.rand(2, 4))
    assert float(BoxRegressionLoss()(torch.zeros(0, 4), torch.zeros(0, 4))) == 0.0


def test_patch_loss_balances_classes_and_regresses_foreground_only():
    fg, bg, ig = int(PatchLabel.FOREGROUND), int(PatchLabel.BACKGROUND), int(PatchLabel.IGNORE)
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0, 0.0]])
    labels = torch.tensor([[fg, bg, bg, bg, ig]])
    targets = torch.tensor([[0.2, 0.2, 0.6, 0.8]])
    boxes = targets[:, None, :].repeat(1, 5, 1)
    boxes[0, 1:] = torch.tensor([0.0, 0.0, 0.1, 0.1])  # wrong, but not foreground: no loss
    boxes[0, 0] += 0.05
    total, parts = PatchLocatorLoss()(logits, boxes, labels, targets)

    # One foreground patch weighs as much as the three background ones together.
    bce_fg = F.binary_cross_entropy_with_logits(logits[0, :1], torch.ones(1))
    bce_bg = F.binary_cross_entropy_with_logits(logits[0, 1:4], torch.zeros(3))
    background = (bce_fg + bce_bg) / 2
    location = BoxRegressionLoss()(boxes[0, :1], targets)
    assert parts["background"] == pytest.approx(float(background), abs=1e-6)
    assert parts["location"] == pytest.approx(float(location), abs=1e-6)
    assert float(total) == pytest.approx(float(background + location), abs=1e-6)


def test_patch_loss_without_foreground_trains_background_only():
    logits = torch.zeros(1, 3, requires_grad=True)
    total, parts = PatchLocatorLoss()(
        logits, torch.rand(1, 3, 4), torch.zeros(1, 3, dtype=torch.long), torch.rand(1, 4)
    )
    total.backward()
    assert parts["location"] == 0.0 and logits.grad is not None


def test_inference_copy_folds_batchnorm_without_changing_the_boxes():
    torch.manual_seed(0)
    model = create_model(LOCATOR, "patches", input_size=64)
    model.train()
    model(torch.randn(8, 3, 64, 64))  # BatchNorm statistics that are not the identity
    model.eval()
    locator = Locator(model, LocatorConfig(input_size=64), amp=False)

    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in locator.model.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # caller's intact
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    boxes, scores, fallback = locator.predict(images)
    with torch.inference_mode():
        expected = model.predict(normalize(images, locator.config), threshold=0.5)
    assert torch.allclose(boxes, expected.boxes, atol=1e-5)
    assert torch.allclose(scores, expected.scores, atol=1e-5)
    assert torch.equal(fallback, expected.fallback)


def test_locate_with_prepared_images_gives_the_same_boxes():
    locator = Locator(create_model(LOCATOR, "patches", input_size=64), LocatorConfig(input_size=64))
    images = [Image.new("RGB", (90, 60), (200, 10, 10)), Image.new("RGB", (40, 80), (0, 0, 90))]
    prepared = [locator.prepare(img) for img in images]
    assert prepared[0].shape == (64, 64, 3)
    assert locator.locate(images, prepared=prepared) == locator.locate(images)
