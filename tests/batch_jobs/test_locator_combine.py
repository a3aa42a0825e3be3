"""The combination of window boxes into one box per image."""

from __future__ import annotations

import pytest
import torch

from batch_jobs.locator.combine import combine_windows


def test_probability_weighted_mean_of_windows_over_the_threshold():
    probs = torch.tensor([[0.9, 0.6, 0.2]])
    boxes = torch.tensor([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.8, 0.8], [0.0, 0.0, 1.0, 1.0]]])
    out = combine_windows(probs, boxes, threshold=0.5)
    # (0.9 * box0 + 0.6 * box1) / 1.5; the 0.2 window does not vote.
    assert out.boxes[0].tolist() == pytest.approx([0.14, 0.14, 0.62, 0.62])
    assert out.scores.tolist() == pytest.approx([0.9])
    assert out.fallback.tolist() == [False]


def test_no_window_over_the_threshold_gives_the_whole_image_flagged():
    probs = torch.tensor([[0.3, 0.1], [0.7, 0.2]])
    boxes = torch.full((2, 2, 4), 0.4)
    boxes[..., 2:] = 0.6
    out = combine_windows(probs, boxes, threshold=0.5)
    assert out.boxes[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert out.fallback.tolist() == [True, False]
    assert out.boxes[1].tolist() == pytest.approx([0.4, 0.4, 0.6, 0.6])
    assert out.scores.tolist() == pytest.approx([0.3, 0.7])


def test_combined_box_is_clamped_to_the_image():
    out = combine_windows(torch.tensor([[1.0]]), torch.tensor([[[-0.2, 0.1, 1.4, 0.9]]]), 0.5)
    assert out.boxes[0].tolist() == pytest.approx([0.0, 0.1, 1.0, 0.9])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="expected probs"):
        combine_windows(torch.rand(2, 3), torch.rand(2, 4, 4), 0.5)
