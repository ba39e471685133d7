"""Pieces shared by the feature-reconstruction detectors (MambaAD, RD4AD): anomaly maps, smoothing, losses.

Both detectors compare the multi-scale features ``F_E^i`` of a frozen encoder with a decoder's reconstruction
``F_D^i`` (``i`` = 1..3, strides 4/8/16):

* **anomaly map** (spec A.8, RD4AD test): per scale ``a_i = 1 − cos(F_E^i, F_D^i)`` along channels, bilinearly
  upsampled to the image size (``align_corners=True``), summed over scales and divided by a constant (MambaAD /
  ADer: 9 = scales × Σ weights; RD4AD: 1), then smoothed per image with a Gaussian of σ = 4;
* **image score**: the maximum of the smoothed map;
* **losses**: ``lam · Σ_i mean((F_E^i − F_D^i)²)`` (MambaAD's ``L2Loss``, lam = 5), or the cosine of the whole
  flattened map per sample, ``Σ_i mean_b(1 − cos(flat F_E^i, flat F_D^i))`` (RD4AD; ADer's ``CosLoss`` also
  divides by the number of scales).

:func:`gaussian_blur` reproduces ``scipy.ndimage.gaussian_filter(sigma, truncate=4.0, mode="reflect")`` in torch
(same kernel radius ``int(truncate·σ + 0.5)``, same half-sample-symmetric borders, any map size), so smoothing runs
batched on the model's device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..encoders import TimmEncoder
from ..errors import ConfigError, InputError

__all__ = [
    "LOSSES",
    "FeatureReconstructionNet",
    "MapLossConfigMixin",
    "ReconConfigMixin",
    "check_divisible",
    "check_loss_name",
    "cosine_distance_maps",
    "flat_cosine_loss",
    "fused_anomaly_map",
    "gaussian_blur",
    "gaussian_kernel1d",
    "image_scores",
    "mse_loss",
    "size_pair",
]

LOSSES: tuple[str, ...] = ("mse", "cosine")


def _check_pairs(enc: Sequence[Tensor], dec: Sequence[Tensor]) -> None:
    if len(enc) != len(dec) or not enc:
        raise InputError(f"expected matching lists of encoder and decoder features, got {len(enc)} and {len(dec)}")
    for i, (a, b) in enumerate(zip(enc, dec, strict=True)):
        if a.shape != b.shape:
            raise InputError(f"scale {i}: encoder features {tuple(a.shape)} and decoder {tuple(b.shape)} differ")


def cosine_distance_maps(enc: Sequence[Tensor], dec: Sequence[Tensor]) -> list[Tensor]:
    """Per-scale ``1 − cos`` along channels.

    Args:
        enc: Encoder features, each ``(batch, C_i, h_i, w_i)``.
        dec: Decoder features, same shapes.

    Returns:
        One ``(batch, 1, h_i, w_i)`` map per scale (float32).
    """
    _check_pairs(enc, dec)
    return [
        (1.0 - F.cosine_similarity(a.float(), b.float(), dim=1)).unsqueeze(1) for a, b in zip(enc, dec, strict=True)
    ]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, *, device: torch.device | None = None) -> Tensor:
    """Scipy's normalised 1-D Gaussian: taps ``x = −r..r`` with ``r = int(truncate·σ + 0.5)`` (float64)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    k = torch.exp(-0.5 * (x / float(sigma)) ** 2)
    return k / k.sum()


def _reflect_index(n: int, radius: int, device: torch.device) -> Tensor:
    """Indices of a length-``n`` axis padded by ``radius`` with scipy's 'reflect' (``d c b a | a b c d``) rule."""
    idx = torch.arange(-radius, n + radius, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def gaussian_blur(maps: Tensor, sigma: float = 4.0, truncate: float = 4.0) -> Tensor:
    """Separable Gaussian smoothing of each 2-D map, equal to ``scipy.ndimage.gaussian_filter`` per map.

    Args:
        maps: Shape ``(..., H, W)``.
        sigma: Standard deviation in pixels (0 returns the input).
        truncate: Kernel half-width in standard deviations.

    Returns:
        Smoothed maps, same shape and dtype.
    """
    if sigma < 0:
        raise ConfigError(f"Gaussian sigma must be ≥ 0, got {sigma}")
    if sigma == 0:
        return maps
    shape = maps.shape
    h, w = shape[-2:]
    x = maps.reshape(-1, 1, h, w)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    k = gaussian_kernel1d(sigma, truncate, device=x.device).to(work)
    r = (k.numel() - 1) // 2
    x = x.to(work).index_select(2, _reflect_index(h, r, x.device))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    x = x.index_select(3, _reflect_index(w, r, x.device))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return x.reshape(shape).to(maps.dtype)


def fused_anomaly_map(
    enc: Sequence[Tensor],
    dec: Sequence[Tensor],
    out_size: tuple[int, int],
    *,
    divisor: float = 1.0,
    sigma: float = 4.0,
) -> Tensor:
    """Sum of the upsampled per-scale cosine distances, divided by ``divisor``, smoothed with σ.

    Args:
        enc: Encoder features, each ``(batch, C_i, h_i, w_i)``.
        dec: Decoder features, same shapes.
        out_size: ``(H, W)`` of the map (the network's input size).
        divisor: Constant the sum is divided by (MambaAD: 9).
        sigma: Gaussian σ in pixels (0: no smoothing).

    Returns:
        ``(batch, 1, H, W)`` float32 maps, higher = more anomalous.
    """
    total = None
    for a in cosine_distance_maps(enc, dec):
        up = F.interpolate(a, size=tuple(out_size), mode="bilinear", align_corners=True)
        total = up if total is None else total + up
    assert total is not None
    return gaussian_blur(total / divisor, sigma)


def image_scores(maps: Tensor) -> Tensor:
    """Image scores = maximum of each map; ``(batch, ...)`` → ``(batch,)``."""
    return maps.flatten(1).amax(dim=1)


def mse_loss(enc: Sequence[Tensor], dec: Sequence[Tensor], weight: float = 5.0) -> Tensor:
    """``weight · Σ_i mean((F_E^i − F_D^i)²)`` (MambaAD's ``L2Loss``, lam = 5)."""
    _check_pairs(enc, dec)
    return weight * sum(F.mse_loss(b, a) for a, b in zip(enc, dec, strict=True))  # type: ignore[return-value]


def flat_cosine_loss(
    enc: Sequence[Tensor], dec: Sequence[Tensor], weight: float = 1.0, average: bool = False
) -> Tensor:
    """``weight · Σ_i mean_b(1 − cos(flat F_E^i, flat F_D^i))``, divided by the scale count when ``average``.

    RD4AD's loss is ``average=False``; ADer's ``CosLoss`` (the selectable MambaAD alternative) is ``average=True``.
    """
    _check_pairs(enc, dec)
    total = sum(
        (1.0 - F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)).mean() for a, b in zip(enc, dec, strict=True)
    )
    if average:
        total = total / len(enc)
    return weight * total  # type: ignore[return-value]


def check_loss_name(loss: str) -> str:
    """Validate a loss name (``mse`` or ``cosine``)."""
    if loss not in LOSSES:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    return loss


def check_divisible(size: Sequence[int], multiple: int, what: str) -> None:
    """Raise :class:`InputError` unless both sides of ``size`` are positive multiples of ``multiple``."""
    if any(s <= 0 or s % multiple for s in size):
        near = [max(multiple, multiple * round(s / multiple)) for s in size]
        raise InputError(
            f"{what}: image size {tuple(size)} is not a multiple of {multiple} on both sides; the decoder upsamples "
            f"the stride-{multiple} bottleneck back to strides 16/8/4, so resize the images to e.g. {tuple(near)} "
            "(set image_size accordingly)."
        )


class FeatureReconstructionNet(nn.Module):
    """What MambaAD and RD4AD share: a frozen ``encoder`` and a ``config`` with ``sigma`` and ``map_divisor``.

    This class builds the encoder from the config (``encoder``, ``pretrained``, ``encoder_weights``,
    ``allow_download``), runs ``forward(images) -> (enc, dec)``, turns the feature pairs into smoothed anomaly maps
    and image scores and exposes the encoder's normalisation statistics. Subclasses build their neck and decoder
    after ``super().__init__`` and define :meth:`reconstruct` and ``loss(enc, dec)``.

    Args:
        config: The model configuration.
        encoder: A ready encoder to use instead of building ``config.encoder`` (e.g. one shared in tests).
    """

    #: The Gaussian smoothing happens inside :meth:`anomaly_map` (the engine must not smooth again).
    smooths_maps = True

    encoder: nn.Module
    config: Any

    def __init__(self, config: Any, encoder: TimmEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder or TimmEncoder(
            config.encoder,
            pretrained=config.pretrained,
            weights=config.encoder_weights,
            allow_download=config.allow_download,
        )

    def reconstruct(self, enc: Sequence[Tensor]) -> list[Tensor]:
        """Decoder reconstructions of the encoder maps, same shapes (defined by each network)."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Encode and reconstruct.

        Args:
            images: Normalised images ``(B, 3, H, W)``, ``H`` and ``W`` multiples of 32.

        Returns:
            ``(enc, dec)``: three encoder maps (detached) and the decoder's reconstructions, same shapes,
            ``(B, c_i, H / s_i, W / s_i)`` for strides 4, 8, 16.
        """
        check_divisible(tuple(images.shape[-2:]), 32, type(self).__name__)
        enc = self.encoder(images)
        return enc, self.reconstruct(enc)

    @property
    def mean(self) -> tuple[float, ...]:
        """Input normalisation mean (the encoder's pretrained statistics)."""
        return self.encoder.mean

    @property
    def std(self) -> tuple[float, ...]:
        """Input normalisation std."""
        return self.encoder.std

    def anomaly_map(
        self, enc: Sequence[Tensor], dec: Sequence[Tensor], out_size: tuple[int, int] | None = None
    ) -> Tensor:
        """Smoothed anomaly maps ``(B, 1, H, W)`` (spec A.8); ``out_size`` defaults to ``4 ×`` the finest map."""
        if out_size is None:
            out_size = (4 * enc[0].shape[-2], 4 * enc[0].shape[-1])
        return fused_anomaly_map(enc, dec, out_size, divisor=self.config.map_divisor, sigma=self.config.sigma)

    @torch.no_grad()
    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Anomaly maps ``(B, H, W)`` at the input size and image scores ``(B,)`` (max of each map)."""
        enc, dec = self(images)
        maps = self.anomaly_map(enc, dec, (images.shape[-2], images.shape[-1]))[:, 0]
        return maps, image_scores(maps)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that receive gradients (everything but the frozen encoder)."""
        return [p for p in self.parameters() if p.requires_grad]


def size_pair(value: Any, model: str) -> tuple[int, int]:
    """``(height, width)`` from an ``image_size`` option (an int, or a pair); ``model`` names the options' owner.

    Raises:
        ConfigError: Anything else.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{model}: image_size must be an int or [height, width], got {value!r}")
    if isinstance(value, int):
        return value, value
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{model}: image_size must be an int or [height, width], got {value!r}") from None
    return h, w


_ConfigT = TypeVar("_ConfigT", bound="ReconConfigMixin")


class ReconConfigMixin:
    """Dict round trip and input size shared by the frozen config dataclasses of MambaAD and RD4AD."""

    #: Name used in error messages (the registry name of the model).
    model_key: ClassVar[str] = "model"
    image_size: Any

    def _check_encoder_and_size(self, example_encoder: str, norms: str) -> None:
        """Validate ``encoder``, ``pretrained``, ``allow_download`` and ``image_size``; normalise ``image_size``.

        Args:
            example_encoder: An encoder name to suggest in the error message.
            norms: The decoder's normalisation layers, named in the image-size message (e.g. ``"batch norms"``).

        Raises:
            ConfigError: A value of the wrong type, or a size that is not a multiple of 32 of at least 64.
        """

        def fail(msg: str) -> None:
            raise ConfigError(f"{self.model_key}: {msg}")

        encoder = getattr(self, "encoder", None)
        if not isinstance(encoder, str) or not encoder:
            fail(f"encoder must be a timm model name such as {example_encoder!r}, got {encoder!r}")
        for name in ("pretrained", "allow_download"):
            if not isinstance(getattr(self, name), bool):
                fail(f"{name} must be true or false, got {getattr(self, name)!r}")
        h, w = size_pair(self.image_size, self.model_key)
        if h < 64 or w < 64 or h % 32 or w % 32:
            fail(
                f"image_size must be a multiple of 32 and at least 64 on both sides (e.g. 224, 256, 320), got "
                f"{self.image_size!r}: the decoder upsamples the stride-32 bottleneck ×2 three times, and its "
                f"{norms} need more than one cell at that bottleneck"
            )
        object.__setattr__(self, "image_size", self.image_size if isinstance(self.image_size, int) else (h, w))

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the network input."""
        return size_pair(self.image_size, self.model_key)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML/JSON (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_ConfigT], data: Mapping[str, Any]) -> _ConfigT:
        """Build from a mapping, rejecting unknown keys.

        Raises:
            ConfigError: Unknown keys (with the valid ones) or invalid values.
        """
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"{cls.model_key}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(names)}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class MapLossConfigMixin:
    """Loss and anomaly-map options shared by the MambaAD and MambaADv2 configs: checks and the loss factor."""

    loss: str
    loss_weight: float | None
    sigma: float
    map_divisor: float

    def _check_loss_and_map(self, fail: Callable[[str], None]) -> None:
        """Report a bad ``loss``, ``loss_weight``, ``sigma`` or ``map_divisor`` through ``fail``."""
        if self.loss not in LOSSES:
            fail(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.loss_weight is not None and float(self.loss_weight) <= 0:
            fail(f"loss_weight must be positive, got {self.loss_weight!r}")
        if float(self.sigma) < 0 or float(self.map_divisor) <= 0:
            fail(f"sigma must be ≥ 0 and map_divisor > 0, got {self.sigma!r}, {self.map_divisor!r}")

    @property
    def effective_loss_weight(self) -> float:
        """The loss factor in use (5 for ``mse``, 1 for ``cosine`` unless set)."""
        if self.loss_weight is not None:
            return float(self.loss_weight)
        return 5.0 if self.loss == "mse" else 1.0
