"""The RD4AD network: frozen CNN encoder → OCBE (MFF + one-class embedding) → reverse ResNet decoder (spec A.2).

::

    image (B, 3, H, W)
      └─ encoder (frozen timm CNN)        f1 (c4 @ H/4), f2 (c8 @ H/8), f3 (c16 @ H/16)
      └─ OCBE (trainable)
           MFF:  l1 = ReLU(BN(conv3×3/2(ReLU(BN(conv3×3/2(f1))))))      c16 @ H/16
                 l2 = ReLU(BN(conv3×3/2(f2)))                           c16 @ H/16
                 concat [l1, l2, f3]                                    3·c16 @ H/16
           OCE:  residual blocks, the first with stride 2               2·c16 @ H/32
      └─ reverse ResNet decoder           three stages, each opened by a 2×2 transposed conv of stride 2:
                                          d3 (c16 @ H/16), d2 (c8 @ H/8), d1 (c4 @ H/4)
    loss      = Σ_i mean_b(1 − cos(flat f_i, flat d_i))                (the whole map per sample)
    map       = Gaussian_σ=4( Σ_i up(1 − cos(f_i, d_i)) ),   score = max(map)

Unlike MambaAD's MFF_OCE (additive half-FPN fusion), RD4AD *concatenates* the three scales before the one-class
embedding. The decoder mirrors a ResNet: :class:`DeBasicBlock` / :class:`DeBottleneck` are ResNet blocks whose
strided convolution is a ``ConvTranspose2d(kernel 2, stride 2)`` and whose shortcut upsamples the same way.
Module names follow the original code (OCBE ``conv1``–``conv3``, ``bn_layer``; decoder ``layer1``–``layer3``,
shortcut ``upsample``); the OCBE is ``ocbe`` (upstream: ``bn``). Initialisation as upstream: ``nn.Conv2d``
Kaiming-normal (fan_out, ReLU), BatchNorm weight 1 and bias 0, transposed convolutions PyTorch's default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

from ...encoders import TimmEncoder
from ...errors import ConfigError
from .._necks import conv3x3, init_resnet_, one_class_embedding
from .._recon import FeatureReconstructionNet, flat_cosine_loss, mse_loss
from .config import RD4ADConfig

__all__ = ["OCBE", "RD4AD", "DeBasicBlock", "DeBottleneck", "Layout", "ReverseDecoder", "encoder_layout"]

EXPANSION = {"basic": 1, "bottleneck": 4}


@dataclass(frozen=True)
class Layout:
    """Block structure of the OCBE and the decoder.

    Attributes:
        block: ``basic`` or ``bottleneck``.
        base_width: Bottleneck width per 64 planes (64: ResNet, 128: wide ResNet; unused by basic blocks).
        decoder_layers: Blocks per decoder stage, deepest first.
        oce_blocks: Blocks of the one-class embedding.
    """

    block: str
    base_width: int
    decoder_layers: tuple[int, int, int]
    oce_blocks: int


def encoder_layout(encoder: nn.Module, config: RD4ADConfig) -> Layout:
    """Resolve the ``auto`` / ``None`` options of ``config`` from the encoder's own structure.

    A timm ResNet (``body.layer1``–``layer3`` of :class:`~timm.models.resnet.BasicBlock` or
    :class:`~timm.models.resnet.Bottleneck`) gives its block type, bottleneck width and block counts (decoder
    stages: ``layer1``, ``layer2``, ``layer3`` counts, deepest first, as the original ``de_resnet``; OCBE: the
    ``layer1`` count). Any other encoder: basic blocks, ``(2, 2, 2)`` and 2.
    """
    body = getattr(encoder, "body", encoder)
    stages = [getattr(body, f"layer{i}", None) for i in (1, 2, 3)]
    block, base_width, layers, oce = "basic", 64, (2, 2, 2), 2
    if all(isinstance(s, nn.Sequential) and len(s) > 0 for s in stages):
        first = stages[0][0]  # type: ignore[index]
        if isinstance(first, Bottleneck):
            planes = first.conv3.out_channels // Bottleneck.expansion
            block, base_width = "bottleneck", first.conv1.out_channels * 64 // planes
        if isinstance(first, BasicBlock | Bottleneck):
            layers = tuple(len(s) for s in stages)  # type: ignore[arg-type,assignment]
            oce = len(stages[0])  # type: ignore[arg-type]
    return Layout(
        block=block if config.block == "auto" else config.block,
        base_width=config.base_width or base_width,
        decoder_layers=config.decoder_layers or layers,  # type: ignore[arg-type]
        oce_blocks=config.oce_blocks or oce,
    )


def _deconv2x2(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2, bias=False)


def _check_planes(channels: int, block: str, what: str) -> int:
    expansion = EXPANSION[block]
    if channels % expansion:
        raise ConfigError(
            f"rd4ad: {what} has {channels} channels, not a multiple of {expansion}, so it cannot be built from "
            f"{block} blocks (expansion {expansion}); set block: basic"
        )
    return channels // expansion


class OCBE(nn.Module):
    """One-class bottleneck embedding: multi-scale feature fusion (MFF) + one-class embedding (OCE).

    ::

        l1  = ReLU(BN(conv3×3/2(ReLU(BN(conv3×3/2(f1))))))     c4 → c8 → c16 @ H/16
        l2  = ReLU(BN(conv3×3/2(f2)))                          c8 → c16 @ H/16
        out = blocks(concat[l1, l2, f3])                       3·c16 → 2·c16 @ H/32 (first block stride 2)

    Args:
        channels: Encoder channels ``(c4, c8, c16)``.
        layout: Block type, width and count (:func:`encoder_layout`).
    """

    def __init__(self, channels: Sequence[int], layout: Layout) -> None:
        super().__init__()
        c4, c8, c16 = (int(c) for c in channels)
        out_dim = 2 * c16
        self.out_dim = out_dim
        self.conv1 = conv3x3(c4, c8, 2)
        self.bn1 = nn.BatchNorm2d(c8)
        self.conv2 = conv3x3(c8, c16, 2)
        self.bn2 = nn.BatchNorm2d(c16)
        self.conv3 = conv3x3(c8, c16, 2)
        self.bn3 = nn.BatchNorm2d(c16)
        self.relu = nn.ReLU(inplace=True)
        block_cls = Bottleneck if layout.block == "bottleneck" else BasicBlock
        planes = _check_planes(out_dim, layout.block, "the OCBE output (2 × the stride-16 channels)")
        width = layout.base_width if layout.block == "bottleneck" else 64  # timm's BasicBlock accepts only 64
        self.bn_layer = one_class_embedding(block_cls, 3 * c16, out_dim, planes, layout.oce_blocks, width)
        init_resnet_(self)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Fuse ``[f1, f2, f3]`` into the embedding ``(B, 2·c16, H/32, W/32)``.

        Shapes: ``f1`` ``(B, c4, H/4, W/4)``, ``f2`` ``(B, c8, H/8, W/8)``, ``f3`` ``(B, c16, H/16, W/16)``.
        """
        f1, f2, f3 = feats
        l1 = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(f1))))))
        l2 = self.relu(self.bn3(self.conv3(f2)))
        return self.bn_layer(torch.cat([l1, l2, f3], dim=1)).contiguous()


class DeBasicBlock(nn.Module):
    """ResNet basic block of the reverse decoder; with ``stride=2`` its first conv is a 2×2 transposed conv.

    Args:
        inplanes: Input channels.
        planes: Output channels.
        stride: 2 to upsample ×2, else 1.
        upsample: Shortcut for the upsampling block (transposed conv + BN), ``None`` for the identity.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, upsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _deconv2x2(inplanes, planes) if stride == 2 else conv3x3(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        """``(B, inplanes, h, w)`` → ``(B, planes, s·h, s·w)``."""
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class DeBottleneck(nn.Module):
    """ResNet bottleneck of the reverse decoder; with ``stride=2`` its middle conv is a 2×2 transposed conv.

    Args:
        inplanes: Input channels.
        planes: Bottleneck planes (output channels ``4 · planes``).
        stride: 2 to upsample ×2, else 1.
        upsample: Shortcut for the upsampling block (transposed conv + BN), ``None`` for the identity.
        base_width: Width per 64 planes (wide ResNets: 128).
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, upsample: nn.Module | None = None, base_width: int = 64
    ) -> None:
        super().__init__()
        width = planes * base_width // 64
        self.conv1 = nn.Conv2d(inplanes, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _deconv2x2(width, width) if stride == 2 else conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.upsample = upsample

    def forward(self, x: Tensor) -> Tensor:
        """``(B, inplanes, h, w)`` → ``(B, 4·planes, s·h, s·w)``."""
        identity = x if self.upsample is None else self.upsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ReverseDecoder(nn.Module):
    """Reverse ResNet: three stages, each upsampling ×2, from ``2·c16 @ H/32`` to ``c16``, ``c8``, ``c4``.

    Args:
        channels: Encoder channels ``(c4, c8, c16)`` (the stage outputs, finest first).
        in_dim: Bottleneck width (``2 · c16``).
        layout: Block type, width and counts (:func:`encoder_layout`).
    """

    def __init__(self, channels: Sequence[int], in_dim: int, layout: Layout) -> None:
        super().__init__()
        c4, c8, c16 = (int(c) for c in channels)
        inplanes = int(in_dim)
        stages: list[nn.Sequential] = []
        for i, (out, n) in enumerate(zip((c16, c8, c4), layout.decoder_layers, strict=True), start=1):
            planes = _check_planes(out, layout.block, f"the stride-{(32 >> i)} encoder stage")
            upsample = nn.Sequential(_deconv2x2(inplanes, out), nn.BatchNorm2d(out))
            if layout.block == "bottleneck":
                blocks: list[nn.Module] = [DeBottleneck(inplanes, planes, 2, upsample, layout.base_width)]
                blocks += [DeBottleneck(out, planes, base_width=layout.base_width) for _ in range(n - 1)]
            else:
                blocks = [DeBasicBlock(inplanes, planes, 2, upsample)]
                blocks += [DeBasicBlock(out, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = out
        self.layer1, self.layer2, self.layer3 = stages
        init_resnet_(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Decode ``(B, in_dim, h, w)`` into ``[(B, c4, 8h, 8w), (B, c8, 4h, 4w), (B, c16, 2h, 2w)]`` (finest first)."""
        a = self.layer1(x)
        b = self.layer2(a)
        c = self.layer3(b)
        return [c, b, a]


class RD4AD(FeatureReconstructionNet):
    """The RD4AD network: frozen encoder, :class:`OCBE` neck, :class:`ReverseDecoder`.

    ``enc, dec = net(images)``, ``net.loss(enc, dec)``, ``net.anomaly_map(enc, dec, size)`` and ``net.predict`` work
    as in :class:`~ssmad.models._recon.FeatureReconstructionNet` (no I/O, no device moves).

    Args:
        config: Defaults to the original code's :class:`RD4ADConfig`.
        encoder: A ready encoder instead of ``config.encoder``.
    """

    def __init__(self, config: RD4ADConfig | None = None, encoder: TimmEncoder | None = None) -> None:
        super().__init__(config or RD4ADConfig(), encoder)
        self.layout = encoder_layout(self.encoder, self.config)
        channels = tuple(int(c) for c in self.encoder.channels)
        self.ocbe = OCBE(channels, self.layout)
        self.decoder = ReverseDecoder(channels, self.ocbe.out_dim, self.layout)

    def reconstruct(self, enc: Sequence[Tensor]) -> list[Tensor]:
        """Embed the encoder maps (OCBE) and decode them: finest first, the shapes of ``enc``."""
        return self.decoder(self.ocbe(enc))

    def loss(self, enc: Sequence[Tensor], dec: Sequence[Tensor]) -> Tensor:
        """Training loss: ``Σ_i mean_b(1 − cos(flat F_E^i, flat F_D^i))`` (default) or ``Σ MSE`` (``loss="mse"``)."""
        weight = float(self.config.loss_weight)
        if self.config.loss == "mse":
            return mse_loss(enc, dec, weight=weight)
        return flat_cosine_loss(enc, dec, weight=weight, average=False)
