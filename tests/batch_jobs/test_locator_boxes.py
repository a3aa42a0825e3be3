"""Box geometry of the locator: IoU, the patch labelling rule, target encoding round trip."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from batch_jobs.locator.boxes import (
    PatchLabel,
    cell_patches,
    decode_boxes,
    denormalize_box,
    encode_boxes,
    label_patches,
    normalize_box,
    paired_iou,
    patch_centers,
)


def test_iou_of_known_boxes():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0]])
    # 1 / (4 + 4 - 1), identical, disjoint
    assert paired_iou(a, b).tolist() == pytest.approx([1 / 7, 1.0, 0.0])


def test_iou_matches_torchvision_on_random_boxes():
    g = torch.Generator().manual_seed(0)
    lo = torch.rand(20, 2, generator=g)
    a = torch.cat([lo, lo + torch.rand(20, 2, generator=g)], dim=1)
    lo = torch.rand(20, 2, generator=g)
    b = torch.cat([lo, lo + torch.rand(20, 2, generator=g)], dim=1)
    assert torch.allclose(paired_iou(a, b), box_iou(a, b).diagonal(), atol=1e-6)


def test_iou_of_empty_boxes_is_zero_not_nan():
    empty = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    assert paired_iou(empty, empty).tolist() == [0.0]


def test_cell_patches_tile_the_image_row_major():
    patches = cell_patches(2, 4)
    assert patches.shape == (8, 4)
    assert patches[0].tolist() == [0.0, 0.0, 0.25, 0.5]
    assert patches[5].tolist() == [0.25, 0.5, 0.5, 1.0]  # row 1, column 1
    assert patch_centers(patches)[5].tolist() == [0.375, 0.75]


def test_patch_labelling_rule():
    # 4 x 4 grid, patches of 0.25; the box covers columns 1-2 fully, column 0 for 60% of its
    # width and column 3 for 20%, and rows 1-2 fully.
    patches = cell_patches(4, 4)
    box = torch.tensor([[0.1, 0.25, 0.8, 0.75]])
    labels = label_patches(patches, box).reshape(4, 4)
    fg, bg, ig = PatchLabel.FOREGROUND, PatchLabel.BACKGROUND, PatchLabel.IGNORE
    expected = [
        [bg, bg, bg, bg],  # row 0 only touches the box's top edge: no overlap
        [fg, fg, fg, ig],  # 60% inside -> foreground; 20% inside -> in between, ignored
        [fg, fg, fg, ig],
        [bg, bg, bg, bg],
    ]
    assert labels.tolist() == [[int(v) for v in row] for row in expected]


def test_patch_exactly_half_inside_is_ignored_not_foreground():
    patches = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    labels = label_patches(patches, torch.tensor([[0.5, 0.0, 1.0, 1.0]]))
    assert labels.tolist() == [[int(PatchLabel.IGNORE)]]


def test_labels_are_per_image():
    patches = cell_patches(2, 2)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    labels = label_patches(patches, boxes)
    assert labels.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1]]


def test_encode_decode_round_trip():
    g = torch.Generator().manual_seed(1)
    centers = torch.rand(5, 7, 2, generator=g)
    lo = torch.rand(5, 7, 2, generator=g) * 0.5
    boxes = torch.cat([lo, lo + 0.5], dim=-1)
    offsets = encode_boxes(boxes, centers)
    assert torch.allclose(decode_boxes(offsets, centers), boxes, atol=1e-6)


def test_encoding_is_edges_relative_to_the_center():
    offsets = encode_boxes(torch.tensor([0.2, 0.1, 0.9, 0.6]), torch.tensor([0.5, 0.5]))
    assert offsets.tolist() == pytest.approx([-0.3, -0.4, 0.4, 0.1])


def test_pixel_boxes_normalize_and_back():
    box = normalize_box((32, 16, 96, 112), 128, 128)
    assert box.tolist() == pytest.approx([0.25, 0.125, 0.75, 0.875])
    assert denormalize_box(box, 256, 64) == pytest.approx((64, 8, 192, 56))
    # A box hanging over the border is clamped to the image.
    assert denormalize_box(torch.tensor([-0.1, 0.2, 1.3, 0.5]), 100, 10) == pytest.approx(
        (0, 2, 100, 5)
    )
