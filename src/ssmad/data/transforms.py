"""Image preprocessing that a checkpoint records and replays.

MambaAD (ADer's configuration, spec A.9/A.8) feeds the encoder with

1. **resize** to ``image_size`` × ``image_size`` (bilinear; Pillow's filter, as torchvision uses on PIL images),
2. **centre crop** to ``crop_size`` (a no-op when it equals ``image_size``, the default),
3. **to tensor**: ``uint8 / 255`` as float32, channel first,
4. **normalise**: ``(x - mean) / std`` per channel.

Ground-truth masks take the same geometry (bilinear resize of the 0/255 mask, same crop) and are then
binarised with ``> 0.5``.

The mean and std belong to the encoder's pretrained weights: ImageNet statistics for ResNets (the default
here), 0.5/0.5 for ``tf_efficientnet_lite*``. :class:`Preprocessing` is a frozen dataclass with
:meth:`~Preprocessing.to_dict` / :meth:`~Preprocessing.from_dict` so the run folder stores it and predict time
applies exactly the same steps to file paths, folders, Pillow images and arrays
(:func:`preprocess_image`, :func:`preprocess_mask`).

Importing this module does not import torch (only the two functions that return tensors do), so the onnxruntime
predictor (:mod:`ssmad.export.runtime`) replays the very same resize and crop (:func:`apply_geometry`) without it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from PIL import Image

from ..errors import ConfigError, InputError
from .imageio import array_to_rgb, binarize_mask, read_image, read_mask, to_rgb

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Statistics of the ``tf_efficientnet_lite*`` and Inception-style weights.
INCEPTION_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
INCEPTION_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}

if TYPE_CHECKING:
    from torch import Tensor

ImageLike: TypeAlias = "str | Path | Image.Image | np.ndarray | Tensor"


def _pair(value: Any, name: str) -> tuple[int, int]:
    """``(height, width)`` from an int or a 2-sequence of positive ints."""
    if isinstance(value, bool):
        raise ConfigError(f"preprocessing {name} must be an int or (height, width); got {value!r}")
    if isinstance(value, int | np.integer):
        value = (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"preprocessing {name} must be an int or (height, width); got {value!r}") from err
    if h <= 0 or w <= 0:
        raise ConfigError(f"preprocessing {name} must be positive; got {value!r}")
    return h, w


def _triple(value: Any, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"preprocessing {name} must be three numbers (R, G, B); got {value!r}") from err
    if len(out) != 3 or not all(np.isfinite(out)):
        raise ConfigError(f"preprocessing {name} must be three finite numbers (R, G, B); got {value!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Preprocessing:
    """Resize → centre crop → to tensor → normalise, as recorded in a run folder.

    Attributes:
        image_size: Resize target, an int for a square or ``(height, width)``; the aspect ratio is not kept
            (as in ADer/MambaAD).
        crop_size: Centre-crop size after resizing (int or ``(height, width)``); ``None`` means no crop.
        mean: Per-channel mean subtracted after scaling to [0, 1] (the encoder's pretrained statistics).
        std: Per-channel standard deviation divided by.
        interpolation: Resampling filter of the image resize, one of :data:`INTERPOLATIONS`. Masks always use
            bilinear followed by ``> 0.5``.
    """

    image_size: int | tuple[int, int] = 256
    crop_size: int | tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        size = self.image_size
        size = int(size) if isinstance(size, int | np.integer) and not isinstance(size, bool) else size
        hw = _pair(size, "image_size")
        object.__setattr__(self, "image_size", size if isinstance(size, int) else hw)
        if self.crop_size is not None:
            crop = self.crop_size
            crop = int(crop) if isinstance(crop, int | np.integer) and not isinstance(crop, bool) else crop
            chw = _pair(crop, "crop_size")
            if chw[0] > hw[0] or chw[1] > hw[1]:
                raise ConfigError(f"preprocessing crop_size {chw} is larger than image_size {hw}; use a smaller crop")
            object.__setattr__(self, "crop_size", crop if isinstance(crop, int) else chw)
        object.__setattr__(self, "mean", _triple(self.mean, "mean"))
        std = _triple(self.std, "std")
        if min(std) <= 0:
            raise ConfigError(f"preprocessing std must be positive; got {std}")
        object.__setattr__(self, "std", std)
        interp = str(self.interpolation).lower()
        if interp not in INTERPOLATIONS:
            raise ConfigError(
                f"unknown preprocessing interpolation {self.interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}"
            )
        object.__setattr__(self, "interpolation", interp)

    @property
    def resize_hw(self) -> tuple[int, int]:
        """``(height, width)`` after the resize step."""
        return _pair(self.image_size, "image_size")

    @property
    def output_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the tensors this preprocessing produces."""
        return self.resize_hw if self.crop_size is None else _pair(self.crop_size, "crop_size")

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict (lists instead of tuples) that :meth:`from_dict` turns back into ``self``."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output; missing keys take the defaults.

        Raises:
            ConfigError: An unknown key or an invalid value.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown preprocessing key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(names))}"
            )
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**kwargs)

    @classmethod
    def from_pretrained_cfg(cls, cfg: Mapping[str, Any], **overrides: Any) -> Preprocessing:
        """Take mean/std from a timm ``pretrained_cfg``-like mapping (keys ``mean``, ``std``), then overrides."""
        kwargs: dict[str, Any] = {}
        if "mean" in cfg:
            kwargs["mean"] = tuple(cfg["mean"])
        if "std" in cfg:
            kwargs["std"] = tuple(cfg["std"])
        kwargs.update(overrides)
        return cls(**kwargs)


def _crop_box(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Centre-crop box ``(left, top, right, bottom)``, rounding the offsets as torchvision's CenterCrop."""
    top = round((in_hw[0] - out_hw[0]) / 2.0)
    left = round((in_hw[1] - out_hw[1]) / 2.0)
    return left, top, left + out_hw[1], top + out_hw[0]


def _geometry(img: Image.Image, pre: Preprocessing, resample: Image.Resampling) -> Image.Image:
    h, w = pre.resize_hw
    if img.size != (w, h):
        img = img.resize((w, h), resample=resample)
    if pre.crop_size is not None and pre.output_hw != (h, w):
        img = img.crop(_crop_box((h, w), pre.output_hw))
    return img


def apply_geometry(img: Image.Image, pre: Preprocessing) -> Image.Image:
    """The resize and centre crop of ``pre`` on an RGB image, with its interpolation filter (no tensor step)."""
    return _geometry(img, pre, INTERPOLATIONS[pre.interpolation])


def as_rgb_image(x: ImageLike) -> Image.Image:
    """An 8-bit RGB Pillow image from a path, a Pillow image (any mode) or an array/tensor."""
    if isinstance(x, str | Path):
        return read_image(x)
    if isinstance(x, Image.Image):
        return to_rgb(x)
    return array_to_rgb(x)


def preprocess_image(x: ImageLike, pre: Preprocessing) -> Tensor:
    """Apply ``pre`` to one image.

    Args:
        x: A file path, a Pillow image of any mode, or an array/tensor ``(H, W)``, ``(H, W, 3|4)``,
            ``(3, H, W)`` (uint8, uint16 or float; see :func:`~ssmad.data.imageio.array_to_rgb`).
        pre: The preprocessing to apply.

    Returns:
        Normalised image, ``(3, h, w)`` float32 with ``(h, w) = pre.output_hw``.
    """
    import torch

    img = apply_geometry(as_rgb_image(x), pre)
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def mask_to_binary(x: str | Path | Image.Image | np.ndarray | Tensor) -> np.ndarray:
    """A ``(H, W)`` uint8 0/1 mask from a path, a Pillow image or an array (any value > 0 is a defect)."""
    if isinstance(x, str | Path):
        return read_mask(x)
    if isinstance(x, Image.Image):
        return binarize_mask(x)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2:
        raise InputError(f"a mask array must be (H, W); got shape {arr.shape}. Fix: pass one 2-D mask per image.")
    return (np.nan_to_num(arr.astype(np.float64)) > 0).astype(np.uint8)


def preprocess_mask(x: str | Path | Image.Image | np.ndarray | Tensor, pre: Preprocessing) -> Tensor:
    """Apply the geometry of ``pre`` to a ground-truth mask: bilinear resize of the 0/255 mask, crop, ``> 0.5``.

    Args:
        x: A mask file path, a Pillow image or an array; any value > 0 counts as a defect.
        pre: The preprocessing whose geometry to apply.

    Returns:
        ``(1, h, w)`` float32 tensor of 0/1 values, ``(h, w) = pre.output_hw``.
    """
    import torch

    binary = mask_to_binary(x)
    img = _geometry(Image.fromarray(binary * np.uint8(255), mode="L"), pre, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    return torch.from_numpy((arr > 0.5).astype(np.float32)[None])
