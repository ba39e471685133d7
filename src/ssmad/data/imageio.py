"""Reading image files and arrays into 8-bit RGB pictures and binary masks.

Industrial data sets come in every flavour Pillow can open: 8-bit RGB JPEGs (VisA), grayscale PNGs (MVTec AD
``grid``, ``screw``, ``zipper``), RGBA or palette PNGs from annotation tools, 16-bit grayscale PNG/TIFF from
machine-vision cameras. Every model here wants the same thing, an 8-bit RGB image, so this module converts
instead of rejecting:

==================  ==================================================================================
source              conversion to RGB
==================  ==================================================================================
``RGB``             unchanged
``L``, ``1``, ``P`` Pillow's own conversion (gray replicated to three channels, palette looked up)
``RGBA``, ``LA``    alpha dropped (the colour channels are kept as they are)
``I;16*``, ``I``    16-bit values scaled to 8 bits (``v * 255 / 65535``, rounded), then replicated
``F``               values in [0, 1] scaled by 255, otherwise taken as 0–255; clipped
``CMYK``, ``YCbCr`` Pillow's own conversion
==================  ==================================================================================

Masks of any mode are binarised with ``> 0`` after conversion to one channel, so 0/255 masks, 0/1 masks
and VisA's instance-id masks all give the same defect region.

Every failure to decode a file raises :class:`~ssmad.errors.InputError` naming the file and the fix.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError

logger = logging.getLogger(__name__)

#: File name suffixes (lower case) treated as images when folders are listed.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".gif"}
)

_DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` looks like an image by its name: a known suffix and not a hidden/AppleDouble file."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _corrupt(path: Path, err: BaseException, what: str = "image") -> InputError:
    return InputError(
        f"cannot read the {what} file {path}: {type(err).__name__}: {err}. The file is corrupt, truncated or "
        f"not an image despite its name. Fix: re-export or re-copy it, or remove it from the folder."
    )


def image_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """The ``(width, height)`` of an image file, reading only its header.

    Raises:
        InputError: The file is missing or is not an image Pillow can identify.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as err:
        raise InputError(f"the {what} file {path} does not exist. Fix: check the path.") from err
    except _DECODE_ERRORS as err:
        raise _corrupt(path, err, what) from err


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    """Scale 16-bit values (0..65535) to 8-bit (0..255), rounding to nearest."""
    arr = np.clip(arr.astype(np.float64), 0, 65535)
    return np.rint(arr * (255.0 / 65535.0)).astype(np.uint8)


def _float_to_eight(arr: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] are scaled by 255; floats with a value above 1 are taken to be on the 0–255 scale."""
    arr = arr.astype(np.float64)
    if arr.size and np.nanmax(arr) > 1.0:
        return np.rint(np.clip(arr, 0, 255)).astype(np.uint8)
    return np.rint(np.clip(arr, 0, 1) * 255.0).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a Pillow image of any mode to 8-bit ``RGB`` (see the module table)."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I;16") or img.mode == "I":
        return Image.fromarray(_sixteen_to_eight(np.asarray(img)), mode="L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray(_float_to_eight(np.asarray(img)), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return img.convert("RGB")


def array_to_rgb(arr: Any) -> Image.Image:
    """Convert an array-like picture into an 8-bit ``RGB`` Pillow image.

    Args:
        arr: ``(H, W)``, ``(H, W, 1|3|4)`` or channel-first ``(1|3|4, H, W)`` (numpy array or torch tensor).
            ``uint8`` is taken as is, ``uint16`` is scaled from 0–65535, other integers are clipped to
            0–255, floats in [0, 1] are scaled by 255 and floats above 1 are taken on the 0–255 scale.
            A fourth (alpha) channel is dropped.

    Raises:
        InputError: Wrong number of dimensions or channels, NaN/Inf values, or a non-numeric dtype.
    """
    if hasattr(arr, "detach"):  # torch.Tensor without importing torch here
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InputError(
            f"an image array must be (H, W), (H, W, 3) or (H, W, 4) (or channel-first); got shape {arr.shape}. "
            "Fix: pass one image at a time in one of these layouts."
        )
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = _sixteen_to_eight(arr)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(
                f"the image array has {int((~np.isfinite(arr)).sum())} NaN/Inf values. "
                "Fix: replace them (e.g. numpy.nan_to_num) before passing the array."
            )
        arr = _float_to_eight(arr)
    else:
        raise InputError(f"cannot use an image array of dtype {arr.dtype}. Fix: pass uint8, uint16 or float values.")
    arr = np.ascontiguousarray(arr)
    return Image.fromarray(arr, mode="L").convert("RGB") if arr.ndim == 2 else Image.fromarray(arr, mode="RGB")


def read_image(path: str | Path) -> Image.Image:
    """Decode an image file fully and return it as 8-bit ``RGB``.

    Raises:
        InputError: The file is missing, corrupt, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
    except FileNotFoundError as err:
        raise InputError(f"the image file {path} does not exist. Fix: check the path.") from err
    except _DECODE_ERRORS as err:
        raise _corrupt(path, err) from err


def binarize_mask(img: Image.Image) -> np.ndarray:
    """A binary ``(H, W)`` uint8 array (0/1) from a mask image of any mode: a pixel is a defect when > 0."""
    if img.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
        arr = np.asarray(img.convert("RGB"))
        return (arr.max(axis=-1) > 0).astype(np.uint8)
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    return (arr > 0).astype(np.uint8)


def read_mask(path: str | Path) -> np.ndarray:
    """Decode a ground-truth mask file into a binary ``(H, W)`` uint8 array (0/1).

    Raises:
        InputError: The file is missing, corrupt, truncated or not an image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return binarize_mask(img)
    except FileNotFoundError as err:
        raise InputError(f"the mask file {path} does not exist. Fix: check the path.") from err
    except _DECODE_ERRORS as err:
        raise _corrupt(path, err, "mask") from err
