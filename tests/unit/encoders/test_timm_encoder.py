"""Frozen timm encoders: channels and strides, freezing, and equality with torchvision's own networks."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from torch import nn

from ssmad.encoders import ENCODERS, TimmEncoder, create_encoder
from ssmad.errors import ConfigError, InputError

# Channels at strides 4/8/16 from the architectures' definitions (ResNet basic/bottleneck widths, the
# EfficientNet-lite / MobileNetV2 stage tables); the same numbers are in ENCODERS, checked against them here.
EXPECTED = {
    "resnet18": (64, 128, 256),
    "resnet34": (64, 128, 256),
    "wide_resnet50_2": (256, 512, 1024),
    "tf_efficientnet_lite0": (24, 40, 112),
    "tf_efficientnet_lite1": (24, 40, 112),
    "tf_efficientnet_lite2": (24, 48, 120),
    "mobilenetv2_100": (24, 32, 96),
}


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_channels_and_strides(name):
    enc = create_encoder(name, pretrained=False)
    assert enc.channels == EXPECTED[name] == ENCODERS[name]
    assert enc.strides == (4, 8, 16)
    feats = enc(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(EXPECTED[name], (4, 8, 16), strict=True)
    ]
    assert enc.weights_origin == "random"


@pytest.mark.parametrize(
    ("name", "mean", "std"),
    [
        ("resnet34", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("tf_efficientnet_lite0", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ("mobilenetv2_100", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ],
)
def test_normalisation_statistics(name, mean, std):
    enc = create_encoder(name, pretrained=False)
    assert enc.mean == pytest.approx(mean)
    assert enc.std == pytest.approx(std)


def test_frozen_and_always_eval():
    enc = create_encoder("resnet18", pretrained=False)
    parent = nn.Sequential(enc, nn.Identity())
    parent.train()
    assert not enc.training
    assert all(not m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    bn = enc.body.bn1
    before = bn.running_mean.clone()
    x = torch.randn(2, 3, 64, 64, requires_grad=True) * 3 + 1
    feats = enc(x)
    assert torch.equal(bn.running_mean, before)  # eval mode: statistics unchanged even after parent.train()
    assert all(not f.requires_grad for f in feats)


def test_efficientnet_unused_stages_trimmed_same_outputs():
    enc = create_encoder("tf_efficientnet_lite0", pretrained=False)
    full = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3))
    missing, unexpected = full.load_state_dict(enc.body.state_dict(), strict=False)
    assert not unexpected
    assert missing and all(k.startswith(("blocks.5.", "blocks.6.")) for k in missing)
    assert len(enc.body.blocks) == 5 < len(full.blocks)
    full.eval()
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(enc(x), full(x), strict=True):
        torch.testing.assert_close(a, b)


def test_resnet34_matches_torchvision_layers(tmp_path):
    """A torchvision state dict (same key names) gives the same layer1–3 maps as torchvision's own ResNet34."""
    tv = torchvision.models.resnet34(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics so a wrong mapping would show
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)

    path = tmp_path / "tv_resnet34.pth"
    torch.save(tv.state_dict(), path)
    enc = TimmEncoder("resnet34", weights=path)
    assert enc.weights_origin == "file"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        h = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        l1 = tv.layer1(h)
        l2 = tv.layer2(l1)
        l3 = tv.layer3(l2)
    for ours, ref in zip(enc(x), (l1, l2, l3), strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_mobilenetv2_torchvision_weights_map_by_order(tmp_path):
    """torchvision's MobileNetV2 names differ from timm's; order-and-shape mapping must reproduce its features."""
    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    path = tmp_path / "mobilenet_v2-custom.pth"
    torch.save(tv.state_dict(), path)
    enc = TimmEncoder("mobilenetv2_100", weights=path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = [tv.features[:4](x), tv.features[:7](x), tv.features[:14](x)]
    for ours, r in zip(enc(x), ref, strict=True):
        torch.testing.assert_close(ours, r, rtol=1e-4, atol=1e-5)


def test_unknown_encoder_name_is_config_error():
    with pytest.raises(ConfigError, match="resnet34"):
        create_encoder("resnet34x", pretrained=False)


def test_encoder_without_stride_16_is_config_error():
    # vit_tiny_patch16_224 has all its features at stride 16 only
    with pytest.raises(ConfigError, match="strides"):
        create_encoder("vit_tiny_patch16_224", pretrained=False)


def test_bad_input_shape_is_input_error():
    enc = create_encoder("resnet18", pretrained=False)
    with pytest.raises(InputError, match="RGB"):
        enc(torch.randn(1, 1, 64, 64))
