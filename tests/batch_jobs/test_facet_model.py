"""create_model: heads per facet, the STN starts as the identity, weights files load."""

from __future__ import annotations

import pytest
import torch
import torchvision

from batch_jobs.facets.stn import SpatialTransformer
from batch_jobs.models import create_model
from shared.errors import ConfigurationError
from shared.registry import ModelKind

FACETS = ModelKind.FACETS


def test_stn_is_the_identity_at_initialisation():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 56)
    assert torch.allclose(SpatialTransformer()(x), x, atol=1e-5)


def test_a_model_with_stn_predicts_like_the_same_model_without_it_at_init():
    heads = {"sleeve": 5, "neckline": 5}
    torch.manual_seed(0)
    with_stn = create_model(FACETS, "resnet18", heads=heads, stn=True).eval()
    plain = create_model(FACETS, "resnet18", heads=heads).eval()
    plain.load_state_dict(
        {k: v for k, v in with_stn.state_dict().items() if not k.startswith("stn.")}
    )
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        a, b = with_stn(x), plain(x)
    for facet in heads:
        assert torch.allclose(a[facet], b[facet], atol=1e-4)


def test_one_head_per_facet_in_the_given_order():
    model = create_model(FACETS, "resnet18", heads={"sleeve": 5, "occasion": 4}).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 32, 32))
    assert list(out) == ["sleeve", "occasion"]
    assert out["sleeve"].shape == (3, 5) and out["occasion"].shape == (3, 4)


def test_backbone_starts_from_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = create_model(FACETS, "resnet18", heads={"sleeve": 5}, weights=path)
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    with pytest.raises(ConfigurationError, match="does not match"):
        create_model(FACETS, "resnet34", heads={"sleeve": 5}, weights=path)


def test_unknown_backbone_is_refused_with_the_choices():
    with pytest.raises(ConfigurationError, match="resnet18"):
        create_model(FACETS, "vgg16", heads={"sleeve": 5})
