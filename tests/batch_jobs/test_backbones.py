"""Pretrained weights, by torchvision name or by file, through the one backbone loader that the
facet model and the locator share. No network: the named weights' file is made by the test in
a temporary torch hub cache, and the download is made to fail."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from batch_jobs.backbones import hub_cache_file, load_backbone, named_weights, resolve_weights
from batch_jobs.models import create_model, list_models
from shared.errors import ConfigurationError
from shared.registry import ModelKind


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache where any download fails (as on a machine without network)."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture
def reference(tmp_path):
    """A random resnet18 and its state dict file."""
    torch.manual_seed(3)
    net = torchvision.models.resnet18()
    path = tmp_path / "resnet18-random.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_named_weights_are_read_from_the_hub_cache(hub, reference):
    net, path = reference
    weights = named_weights("resnet18", "IMAGENET1K_V1")
    assert weights is torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    cached = hub_cache_file(weights)
    assert cached == hub / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())

    facets = create_model(
        ModelKind.FACETS, "resnet18", heads={"sleeve": 5}, weights="IMAGENET1K_V1"
    )
    assert torch.equal(facets.backbone.conv1.weight, net.conv1.weight)
    locator = create_model(
        ModelKind.LOCATOR, "patches", backbone="resnet18", weights="ResNet18_Weights.IMAGENET1K_V1"
    )
    assert torch.equal(locator.trunk[0].weight, net.conv1.weight)


def test_without_network_named_weights_stop_with_the_file_to_pass(hub):
    with pytest.raises(ConfigurationError) as caught:
        resolve_weights("resnet18", "IMAGENET1K_V1")
    message = str(caught.value)
    assert str(hub / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "--weights FILE" in message and "download.pytorch.org" in message


def test_a_weights_file_starts_both_models(reference):
    net, path = reference
    facets = create_model(ModelKind.FACETS, "resnet18", heads={"sleeve": 5}, weights=path)
    assert torch.equal(facets.backbone.layer4[1].conv2.weight, net.layer4[1].conv2.weight)
    locator = create_model(ModelKind.LOCATOR, "whole", backbone="resnet18", weights=str(path))
    assert torch.equal(locator.trunk[4][0].conv1.weight, net.layer1[0].conv1.weight)


def test_every_bad_weights_argument_is_one_clear_error(tmp_path, reference, hub):
    _, path = reference
    with pytest.raises(
        ConfigurationError, match=r"no torchvision weights 'IMAGENET9K_V9'.*IMAGENET1K_V1"
    ):
        load_backbone("resnet18", "IMAGENET9K_V9")
    with pytest.raises(ConfigurationError, match="no such file"):
        load_backbone("resnet18", tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(ConfigurationError, match="cannot read backbone weights"):
        load_backbone("resnet18", garbage)
    with pytest.raises(ConfigurationError, match="does not match resnet34"):
        load_backbone("resnet34", path)
    with pytest.raises(ConfigurationError, match="--backbone resnet18"):
        create_model(ModelKind.LOCATOR, "patches", backbone="tiny", weights=path)


def test_create_model_names_what_it_builds():
    assert {"resnet18", "resnet50"} <= set(list_models(ModelKind.FACETS))
    assert list_models("locator") == ["patches", "whole"]
    with pytest.raises(ConfigurationError, match="unknown facets model 'vgg16'; use one of"):
        create_model(ModelKind.FACETS, "vgg16", heads={"sleeve": 5})
    with pytest.raises(ConfigurationError, match="no models of kind 'bogus'"):
        create_model("bogus", "x")
