"""A tiny stand-in feature-reconstruction network and detector for the engine tests.

It has the interface of MambaAD / RD4AD as the engine uses it — ``net(images) -> (encoder features, decoder
features)``, ``net.loss(enc, dec)``, ``net.anomaly_map(enc, dec, size)`` — and the parts that matter for the loops:
a frozen encoder with normalisation statistics, trainable convolutions with biases (weight-decay groups), a
BatchNorm (running statistics must be checkpointed) and a dropout (the global generator must be restored on
resume). It trains in well under a second on 32×32 images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmad.detectors import ImageDetector


@dataclass(frozen=True)
class TinyConfig:
    """Options of the stand-in (same names as the real models where they overlap)."""

    encoder: str = "tiny"
    pretrained: bool = False
    image_size: int = 32
    width: int = 8
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")


class TinyEncoder(nn.Module):
    """Frozen two-scale CNN (strides 4 and 8), always in eval mode."""

    mean = (0.5, 0.5, 0.5)
    std = (0.25, 0.25, 0.25)

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 3, 2, 1))
        self.stage2 = nn.Sequential(nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> TinyEncoder:
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        with torch.no_grad():
            f1 = self.stage1(x)
            f2 = self.stage2(f1)
        return [f1, f2]


class TinyNet(nn.Module):
    """Encoder → bottleneck (BatchNorm, dropout) → two decoder heads reconstructing the encoder features."""

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        w = config.width
        self.encoder = TinyEncoder(w)
        self.bottleneck = nn.Sequential(
            nn.Conv2d(3 * w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.Dropout(config.dropout)
        )
        self.head1 = nn.Conv2d(2 * w, w, 3, 1, 1)
        self.head2 = nn.Conv2d(2 * w, 2 * w, 3, 1, 1)

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        f1, f2 = self.encoder(images)
        fused = torch.cat([F.avg_pool2d(f1, 2), f2], dim=1)
        z = self.bottleneck(fused)
        d1 = self.head1(F.interpolate(z, size=f1.shape[-2:], mode="bilinear", align_corners=False))
        d2 = self.head2(F.interpolate(z, size=f2.shape[-2:], mode="bilinear", align_corners=False))
        return [f1, f2], [d1, d2]

    def loss(self, enc: list[Tensor], dec: list[Tensor]) -> Tensor:
        return sum(F.mse_loss(d, e) for e, d in zip(enc, dec, strict=True))

    def anomaly_map(self, enc: list[Tensor], dec: list[Tensor], size: tuple[int, int]) -> Tensor:
        out = 0
        for e, d in zip(enc, dec, strict=True):
            a = 1 - F.cosine_similarity(e, d, dim=1)[:, None]
            out = out + F.interpolate(a, size=size, mode="bilinear", align_corners=True)
        return out


class TinyDetector(ImageDetector):
    """The stand-in as a detector (registered as ``tiny`` by the tests that need ``ssmad.load``)."""

    model_name = "tiny"
    config_path = "tests.unit.engine._tiny:TinyConfig"
    network_path = "tests.unit.engine._tiny:TinyNet"
