"""RD4AD's model configuration: one frozen dataclass, defaults equal to the original code (spec A.2).

Reverse distillation (Deng & Li, CVPR 2022) trains a one-class bottleneck (OCBE) and a reverse ResNet decoder to
reproduce the multi-scale features of a frozen ImageNet encoder. Training hyper-parameters (the original: Adam,
lr 0.005, betas (0.5, 0.999), 200 epochs, batch 16, one model per class) belong to the run's ``trainer`` section
(see the ``rd4ad_mvtec`` preset); this class holds what defines the network, its loss and its anomaly map.

Widths follow the encoder's feature channels ``(c4, c8, c16)`` at strides 4/8/16: the bottleneck is ``2 · c16`` at
stride 32 and the decoder stages give back ``c16``, ``c8`` and ``c4``::

                          bottleneck   decoder outputs   blocks (OCBE; decoder stages)
    wide_resnet50_2       2048         1024, 512, 256    bottleneck ×3; 3, 4, 6    (the paper's setting)
    resnet18              512          256, 128, 64      basic ×2; 2, 2, 2
    resnet34              512          256, 128, 64      basic ×3; 3, 4, 6
    tf_efficientnet_lite0 224          112, 40, 24       basic ×2; 2, 2, 2

``"auto"`` / ``None`` options are read from the encoder when the network is built: a timm ResNet gives its block
type, its bottleneck width (``base_width``: 128 for wide ResNets) and its ``layer1``–``layer3`` block counts (the
decoder's stages take them in that order, deepest stage first, as the original ``de_resnet`` does; the OCBE takes
the count of ``layer1``, which reproduces the original's 2 / 3 / 3 for ResNet18 / 34 / 50); any other encoder
gets basic blocks, two per stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from .._recon import LOSSES, ReconConfigMixin

__all__ = ["BLOCKS", "RD4ADConfig"]

#: Residual block types of the OCBE and the decoder.
BLOCKS: tuple[str, ...] = ("auto", "basic", "bottleneck")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class RD4ADConfig(ReconConfigMixin):
    """RD4AD network, loss and anomaly-map options.

    Attributes:
        encoder: timm encoder name (:data:`ssmad.encoders.ENCODERS`; paper: ``wide_resnet50_2``).
        pretrained: Load ImageNet weights for the encoder (offline; see :mod:`ssmad.encoders.weights`).
        encoder_weights: Explicit encoder weights file.
        allow_download: Let timm download encoder weights when none are found locally.
        image_size: Network input size, an int or ``(height, width)``; multiples of 32, at least 64.
        block: Residual block of the OCBE and the decoder: ``auto`` (the encoder's own for ResNets, else
            ``basic``), ``basic`` or ``bottleneck``.
        base_width: Bottleneck width per 64 planes (ResNet's ``width_per_group``; ``None``: from the encoder, 64
            for plain ResNets, 128 for wide ones).
        decoder_layers: Blocks per decoder stage, deepest first (``None``: from the encoder, see the module doc).
        oce_blocks: Residual blocks of the one-class embedding (``None``: from the encoder).
        loss: ``cosine`` (the paper: ``Σ_i mean_b(1 − cos(flat F_E^i, flat F_D^i))``) or ``mse``.
        loss_weight: Loss factor.
        sigma: Gaussian σ of the anomaly-map smoothing (paper: 4; 0: none).
        map_divisor: Constant the summed map is divided by (paper: 1).
    """

    model_key = "rd4ad"  # error-message name (a plain class attribute, not a dataclass field)

    encoder: str = "wide_resnet50_2"
    pretrained: bool = True
    encoder_weights: str | None = None
    allow_download: bool = False
    image_size: int | tuple[int, int] = 256
    block: str = "auto"
    base_width: int | None = None
    decoder_layers: tuple[int, int, int] | None = None
    oce_blocks: int | None = None
    loss: str = "cosine"
    loss_weight: float = 1.0
    sigma: float = 4.0
    map_divisor: float = 1.0

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"rd4ad: {msg}")

        self._check_encoder_and_size("wide_resnet50_2", "batch norms")
        if self.block not in BLOCKS:
            fail(f"block must be one of {', '.join(BLOCKS)}, got {self.block!r}")
        if self.base_width is not None and not _positive_int(self.base_width):
            fail(f"base_width must be a positive integer (ResNet: 64, wide ResNet: 128), got {self.base_width!r}")
        if self.decoder_layers is not None:
            layers = tuple(self.decoder_layers)
            if len(layers) != 3 or not all(_positive_int(n) for n in layers):
                fail(f"decoder_layers must be 3 positive integers (paper: 3, 4, 6), got {self.decoder_layers!r}")
            object.__setattr__(self, "decoder_layers", layers)
        if self.oce_blocks is not None and not _positive_int(self.oce_blocks):
            fail(f"oce_blocks must be a positive integer (paper: 3), got {self.oce_blocks!r}")
        if self.loss not in LOSSES:
            fail(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if isinstance(self.loss_weight, bool) or float(self.loss_weight) <= 0:
            fail(f"loss_weight must be positive, got {self.loss_weight!r}")
        if float(self.sigma) < 0 or float(self.map_divisor) <= 0:
            fail(f"sigma must be ≥ 0 and map_divisor > 0, got {self.sigma!r}, {self.map_divisor!r}")
