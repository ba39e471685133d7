"""Prediction on new images: anomaly maps at the resolution of the user's images, scores, labels and masks.

The network sees every image after the recorded preprocessing (resize → optional centre crop → normalise).
Its map ``(h, w)`` is brought back to the input image's own ``(H, W)``: a crop is undone by placing the map in the
cropped window of the resized frame (the cut-off border gets the map's minimum), then the frame is resized
bilinearly to ``(H, W)``. The image score is the maximum of the map at the model's resolution — the value the
evaluation uses — so ``pred_score`` does not depend on the size of the input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import Preprocessing
from ..errors import InputError
from .data import PredictionDataset, make_loader
from .evaluate import batch_maps

logger = logging.getLogger(__name__)

__all__ = ["ImagePrediction", "map_to_input", "predict_images"]


@dataclass
class ImagePrediction:
    """One scored image, with anomalib's field names.

    Attributes:
        pred_score: Image score (maximum of the map at model resolution); higher = more anomalous.
        anomaly_map: ``(H, W)`` float32 map at the input image's resolution.
        pred_label: ``pred_score > threshold`` (``None`` when no threshold is set).
        pred_mask: ``(H, W)`` bool, ``anomaly_map > pixel_threshold`` (``None`` when no threshold is set).
        image_path: The file, or ``array[i]`` for in-memory images.
    """

    pred_score: float
    anomaly_map: np.ndarray
    pred_label: bool | None
    pred_mask: np.ndarray | None
    image_path: str


def _crop_box(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of a centre crop, offsets rounded as torchvision's ``CenterCrop``."""
    top = round((in_hw[0] - out_hw[0]) / 2.0)
    left = round((in_hw[1] - out_hw[1]) / 2.0)
    return left, top, left + out_hw[1], top + out_hw[0]


def map_to_input(amap: np.ndarray, orig_hw: tuple[int, int], pre: Preprocessing) -> np.ndarray:
    """Bring a ``(h, w)`` map at model resolution back to the input image's ``(H, W)`` (see module docstring)."""
    rh, rw = pre.resize_hw
    out = amap
    if pre.crop_size is not None and pre.output_hw != (rh, rw):
        frame = np.full((rh, rw), amap.min(), dtype=np.float32)
        left, top, right, bottom = _crop_box((rh, rw), pre.output_hw)
        frame[top:bottom, left:right] = amap
        out = frame
    if out.shape != tuple(orig_hw):
        t = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))[None, None]
        out = F.interpolate(t, size=tuple(int(v) for v in orig_hw), mode="bilinear", align_corners=False)[0, 0].numpy()
    return out.astype(np.float32, copy=False)


def predict_images(
    net: nn.Module,
    inputs: Any,
    pre: Preprocessing,
    *,
    device: torch.device,
    threshold: float | None = None,
    pixel_threshold: float | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    input_resolution: bool = True,
    skipped: list[str] | None = None,
    shard: bool = False,
) -> list[ImagePrediction]:
    """Score new images.

    Args:
        net: The trained network.
        inputs: An image path, a folder, a list of paths and/or arrays, or an array batch
            (see :class:`~ssmad.data.InferenceDataset`).
        pre: The preprocessing recorded with the model.
        device: Where to run.
        threshold: Image threshold for ``pred_label``.
        pixel_threshold: Pixel threshold for ``pred_mask``.
        batch_size: Images per forward pass.
        num_workers: Loader workers.
        input_resolution: Return maps at each input image's size (else at the model's resolution).
        skipped: When given, unreadable inputs are appended here (with a warning) instead of stopping the run.
        shard: Score only this process's contiguous share of the inputs
            (:func:`~ssmad.engine.distributed.shard_range`) when a process group is active.

    Returns:
        One :class:`ImagePrediction` per readable input (of the share), in input order.

    Raises:
        InputError: An unreadable input (when ``skipped`` is ``None``), or no input at all.
    """
    dataset = PredictionDataset(inputs, pre)
    if len(dataset) == 0:
        raise InputError("no input images were given. Fix: pass an image file, a folder of images or an array batch.")
    net.eval()
    out: list[ImagePrediction] = []
    source: Any = dataset
    if shard:
        from torch.utils.data import Subset

        from .distributed import shard_range

        source = Subset(dataset, list(shard_range(len(dataset), batch_size)))
    loader = make_loader(source, batch_size, num_workers=num_workers)
    for item in loader:
        if item["skipped"]:
            if skipped is None:
                raise InputError(item["skipped"][0])
            skipped += item["skipped"]
        if "image" not in item:
            continue
        maps = batch_maps(net, item["image"].to(device))
        for m, path, hw in zip(maps, item["image_path"], item["orig_hw"].tolist(), strict=True):
            score = float(m.max())
            amap = map_to_input(m, (hw[0], hw[1]), pre) if input_resolution else m
            out.append(
                ImagePrediction(
                    pred_score=score,
                    anomaly_map=amap,
                    pred_label=None if threshold is None else bool(score > threshold),
                    pred_mask=None if pixel_threshold is None else amap > pixel_threshold,
                    image_path=str(path),
                )
            )
    return out
