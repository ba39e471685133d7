"""Deployment: ONNX export of trained image detectors and a predictor that needs only onnxruntime, numpy and Pillow.

=====================  ==================================================================================
module                 job
=====================  ==================================================================================
:mod:`.graph`          :class:`ExportGraph`: uint8 RGB images in, normalisation, network, smoothed anomaly
                       maps and image scores out — the module that is traced (torch)
:mod:`.to_onnx`        :func:`export_onnx`: a run folder → ``model.onnx`` with its thresholds, preprocessing and
                       ssmad version in ``metadata_props`` (torch, onnx)
:mod:`.runtime`        :class:`OnnxDetector` and :func:`predict_onnx`: score images with onnxruntime, replaying the
                       run's resize and crop, and write what ``ssmad predict --run`` writes (no torch)
=====================  ==================================================================================

Names are imported on first use, so ``import ssmad.export`` pulls in neither torch nor onnxruntime, and the
runtime half works where torch is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ExportGraph": "graph",
    "export_onnx": "to_onnx",
    "FORMATS": "to_onnx",
    "OnnxDetector": "runtime",
    "OnnxPrediction": "runtime",
    "predict_onnx": "runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmad.export' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
