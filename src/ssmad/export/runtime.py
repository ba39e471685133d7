"""Score images with an exported ``.onnx`` model: onnxruntime, numpy and Pillow only — no PyTorch.

:class:`OnnxDetector` reads a file written by :func:`ssmad.export.export_onnx`, takes the run's preprocessing from
its metadata and replays it exactly as PyTorch prediction does (:mod:`ssmad.engine.predict`): the same Pillow
decoding and RGB conversion (:func:`ssmad.data.transforms.as_rgb_image`) and the same resize and centre crop
(:func:`ssmad.data.transforms.apply_geometry`) give the ``uint8`` picture the graph takes; the graph normalises it
and returns the map at the model's resolution and the score (the maximum of that map, as in evaluation). Maps are
brought back to each input's own size as :func:`ssmad.engine.predict.map_to_input` does — a crop is undone by
placing the map in the cropped window of the resized frame (the border gets the map's minimum), then the frame is
resized bilinearly with PyTorch's ``align_corners=False`` sampling, re-implemented here in numpy
(:func:`resize_bilinear`).

:func:`predict_onnx` writes what ``ssmad predict --run`` writes — ``maps/<name>.npy``, ``overlays/<name>.png`` and
``scores.json`` (same keys; ``onnx`` names the model file where ``run`` names the run folder) — plus
``scores.csv``, one row per image. Overlays need matplotlib's colour maps; without matplotlib they are skipped with
a warning and everything else is written.

This module must not import torch (a test runs it with torch blocked); it imports only the torch-free parts of
ssmad (errors, image reading, the preprocessing record, atomic file writes, overlays).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.transforms import Preprocessing, apply_geometry, as_rgb_image
from ..errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = [
    "OnnxDetector",
    "OnnxPrediction",
    "expand_inputs",
    "map_to_input",
    "predict_onnx",
    "resize_bilinear",
]

_INSTALL = "Fix: pip install 'ssmad[export]' (or just pip install onnxruntime)."


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise MissingDependencyError(
            f"predicting with an ONNX model needs onnxruntime, which is not installed ({err}). {_INSTALL}"
        ) from None
    return onnxruntime


@dataclass
class OnnxPrediction:
    """One scored image, with the fields of :class:`ssmad.engine.predict.ImagePrediction`.

    Attributes:
        pred_score: Image score (maximum of the map at model resolution); higher = more anomalous.
        anomaly_map: ``(H, W)`` float32 map at the input image's resolution (or the model's).
        pred_label: ``pred_score > threshold`` (``None`` when no threshold is set).
        pred_mask: ``(H, W)`` bool, ``anomaly_map > pixel_threshold`` (``None`` when no threshold is set).
        image_path: The file, or ``array[i]`` for in-memory images.
    """

    pred_score: float
    anomaly_map: np.ndarray
    pred_label: bool | None
    pred_mask: np.ndarray | None
    image_path: str


# ------------------------------------------------------------------------------------------------ maps
def _source_index(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's ``align_corners=False`` linear sampling: lower index, upper index, upper weight (float32)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum(scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
    i0 = src.astype(np.int64)
    i1 = np.where(i0 < in_size - 1, i0 + 1, i0)
    lam = np.clip(src - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i1, lam


def resize_bilinear(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``(h, w)`` map to ``(H, W)``, sampling as ``F.interpolate(..., align_corners=False)``.

    Args:
        arr: Map, shape ``(h, w)``.
        size: ``(H, W)``.

    Returns:
        float32 ``(H, W)``.
    """
    x = np.asarray(arr, dtype=np.float32)
    r0, r1, wr = _source_index(x.shape[0], int(size[0]))
    c0, c1, wc = _source_index(x.shape[1], int(size[1]))
    rows = x[r0] * (1 - wr)[:, None] + x[r1] * wr[:, None]
    return (rows[:, c0] * (1 - wc) + rows[:, c1] * wc).astype(np.float32)


def _crop_box(in_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of a centre crop, offsets rounded as torchvision's ``CenterCrop``."""
    top = round((in_hw[0] - out_hw[0]) / 2.0)
    left = round((in_hw[1] - out_hw[1]) / 2.0)
    return left, top, left + out_hw[1], top + out_hw[0]


def map_to_input(amap: np.ndarray, orig_hw: tuple[int, int], pre: Preprocessing) -> np.ndarray:
    """Bring a ``(h, w)`` map at model resolution back to the input image's ``(H, W)`` (see the module docstring)."""
    rh, rw = pre.resize_hw
    out = np.asarray(amap, dtype=np.float32)
    if pre.crop_size is not None and pre.output_hw != (rh, rw):
        frame = np.full((rh, rw), out.min(), dtype=np.float32)
        left, top, right, bottom = _crop_box((rh, rw), pre.output_hw)
        frame[top:bottom, left:right] = out
        out = frame
    if out.shape != tuple(orig_hw):
        out = resize_bilinear(out, (int(orig_hw[0]), int(orig_hw[1])))
    return out.astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------------ inputs
def expand_inputs(inputs: Any) -> list[tuple[Any, str]]:
    """``(source, name)`` pairs from a path, a folder, a list of paths/arrays or a stacked array.

    The same rules and names as PyTorch prediction (:class:`ssmad.data.InferenceDataset`): a folder gives its
    images sorted by name, arrays are called ``array[i]``, a 4-D array (or a 3-D stack without a channel axis) is
    a batch of images.

    Raises:
        InputError: A missing path, a file that is not an image by its name, or a folder without images.
    """
    from ..data.imageio import is_image_file
    from ..data.layout import list_images

    if isinstance(inputs, str | Path):
        path = Path(inputs)
        if path.is_dir():
            files = list_images(path)
            if not files:
                raise InputError(f"the folder {path} holds no image files. Fix: point to a folder of images.")
            return [(p, str(p)) for p in files]
        if not path.exists():
            raise InputError(f"the input {path} does not exist. Fix: check the path.")
        if not is_image_file(path):
            raise InputError(
                f"the input {path} is not an image file by its name (suffix {path.suffix!r}). "
                "Fix: pass an image (.png, .jpg, .bmp, .tif …) or a folder of images."
            )
        return [(path, str(path))]
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 4 or (
            inputs.ndim == 3 and inputs.shape[-1] not in (1, 3, 4) and inputs.shape[0] not in (1, 3, 4)
        ):
            return [(inputs[i], f"array[{i}]") for i in range(inputs.shape[0])]
        return [(inputs, "array[0]")]
    if isinstance(inputs, Sequence):
        out: list[tuple[Any, str]] = []
        for i, item in enumerate(inputs):
            if isinstance(item, str | Path):
                out += expand_inputs(item)
            else:
                out.append((item, f"array[{i}]"))
        return out
    return [(inputs, "array[0]")]


def _meta_json(meta: dict[str, str], key: str, path: Path) -> Any:
    try:
        return json.loads(meta[key])
    except (KeyError, ValueError) as err:
        raise InputError(
            f"{path}: the ssmad metadata entry {key!r} is missing or damaged ({err}). Fix: export the model again "
            "with `ssmad export --run RUN --format onnx --out FILE`."
        ) from None


def _threshold(value: Any) -> float:
    return math.nan if value is None else float(value)


class OnnxDetector:
    """An exported ssmad image detector run by onnxruntime.

    Args:
        path: A ``.onnx`` file written by ``ssmad export``.
        threads: onnxruntime intra-op threads (``None``: onnxruntime's default, all cores).
        providers: onnxruntime execution providers (default: CPU).

    Attributes:
        model_name: The exported model (``mambaad``, ``rd4ad`` …).
        preprocessing_: The run's preprocessing (resize, crop, mean, std, interpolation).
        input_hw: ``(H, W)`` of the graph input.
        threshold_: Image threshold (NaN when unset).
        pixel_threshold_: Pixel threshold (NaN when unset).
        metadata: The file's ``metadata_props``.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        InputError: The file is missing, unreadable, or not written by ``ssmad export``.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, providers: Sequence[str] | None = None):
        ort = _onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(
                f"the ONNX model {self.path} does not exist. Fix: check the path, or write it with "
                "`ssmad export --run RUN --format onnx --out FILE`."
            )
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile …)
            raise InputError(
                f"cannot read the ONNX model {self.path}: {type(err).__name__}: {str(err).strip()[:300]}. The file is "
                "damaged, truncated or not an ONNX model. Fix: export it again with "
                "`ssmad export --run RUN --format onnx --out FILE`."
            ) from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        if "ssmad_onnx_format" not in meta:
            raise InputError(
                f"{self.path} is an ONNX model but was not written by `ssmad export` (no ssmad metadata: "
                "preprocessing, thresholds, image size). Fix: export the run with "
                "`ssmad export --run RUN --format onnx --out FILE`."
            )
        self.metadata = meta
        self.model_name = meta.get("model", "")
        self.preprocessing_ = Preprocessing.from_dict(_meta_json(meta, "preprocessing", self.path))
        self.input_hw = tuple(int(v) for v in _meta_json(meta, "image_size", self.path))
        self.threshold_ = _threshold(_meta_json(meta, "threshold", self.path))
        self.pixel_threshold_ = _threshold(_meta_json(meta, "pixel_threshold", self.path))
        self._input = self.session.get_inputs()[0].name

    def __repr__(self) -> str:
        h, w = self.input_hw
        return f"OnnxDetector({str(self.path)!r}, model={self.model_name!r}, input={h}x{w})"

    def set_threshold(self, value: float | None = None, pixel_value: float | None = None) -> OnnxDetector:
        """Override the exported thresholds (``None`` keeps one)."""
        if value is not None:
            self.threshold_ = float(value)
        if pixel_value is not None:
            self.pixel_threshold_ = float(pixel_value)
        return self

    def prepare(self, source: Any) -> tuple[np.ndarray, tuple[int, int]]:
        """Decode one input and apply the run's resize and crop.

        Args:
            source: A file path, a Pillow image or an array (see :func:`ssmad.data.transforms.as_rgb_image`).

        Returns:
            The graph's input picture, ``uint8 (H, W, 3)``, and the input's own ``(height, width)``.
        """
        img = as_rgb_image(source)
        return np.asarray(apply_geometry(img, self.preprocessing_), dtype=np.uint8), (img.height, img.width)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the graph on prepared pictures.

        Args:
            images: ``uint8 (N, H, W, 3)`` RGB at :attr:`input_hw`.

        Returns:
            ``anomaly_map`` float32 ``(N, H, W)`` and ``pred_score`` float32 ``(N,)``.

        Raises:
            InputError: Wrong type, dtype or shape.
        """
        h, w = self.input_hw
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
            raise InputError(
                f"{self.path} takes uint8 RGB images (N, {h}, {w}, 3); got {kind}. Fix: pass a uint8 numpy array, or "
                "use predict_maps(), which reads, resizes and converts any image."
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != (h, w, 3):
            raise InputError(
                f"{self.path} takes images of shape (N, {h}, {w}, 3) (uint8 RGB at the run's image size); got "
                f"{tuple(images.shape)}. Fix: resize them as the run does (predict_maps() or prepare() does it)."
            )
        maps, scores = self.session.run(None, {self._input: np.ascontiguousarray(images)})
        return np.asarray(maps, dtype=np.float32), np.asarray(scores, dtype=np.float32)

    def predict_maps(
        self,
        inputs: Any,
        *,
        input_resolution: bool = True,
        skipped: list[str] | None = None,
        batch_size: int = 1,
    ) -> list[OnnxPrediction]:
        """Score images as :meth:`ssmad.detectors.ImageDetector.predict_maps` does.

        Args:
            inputs: An image path, a folder, a list of paths and/or arrays, or an array batch.
            input_resolution: Maps at each input image's size (default), else at the model's resolution.
            skipped: When given, unreadable inputs are listed here (with a warning) instead of raising.
            batch_size: Images per onnxruntime call.

        Returns:
            One prediction per readable input, in input order.

        Raises:
            InputError: An unreadable input (when ``skipped`` is ``None``), or no input at all.
        """
        return self.predict_items(
            expand_inputs(inputs), input_resolution=input_resolution, skipped=skipped, batch_size=batch_size
        )

    def predict_items(
        self,
        items: Sequence[tuple[Any, str]],
        *,
        input_resolution: bool = True,
        skipped: list[str] | None = None,
        batch_size: int = 1,
    ) -> list[OnnxPrediction]:
        """:meth:`predict_maps` on ``(source, name)`` pairs from :func:`expand_inputs`."""
        if not items:
            raise InputError("no input images were given. Fix: pass an image file, a folder of images or an array.")
        out: list[OnnxPrediction] = []
        pending: list[tuple[np.ndarray, tuple[int, int], str]] = []

        def flush() -> None:
            maps, scores = self.run(np.stack([p[0] for p in pending]))
            for m, s, (_, hw, name) in zip(maps, scores, pending, strict=True):
                amap = map_to_input(m, hw, self.preprocessing_) if input_resolution else m
                t, pt = self.threshold_, self.pixel_threshold_
                out.append(
                    OnnxPrediction(
                        pred_score=float(s),
                        anomaly_map=amap,
                        pred_label=None if math.isnan(t) else bool(s > t),
                        pred_mask=None if math.isnan(pt) else amap > pt,
                        image_path=name,
                    )
                )
            pending.clear()

        for source, name in items:
            try:
                picture, hw = self.prepare(source)
            except InputError as err:
                if skipped is None:
                    raise
                msg = str(err) if name in str(err) else f"{name}: {err}"
                logger.warning("skipped an unreadable input: %s", msg)
                skipped.append(msg)
                continue
            pending.append((picture, hw, name))
            if len(pending) >= max(1, int(batch_size)):
                flush()
        if pending:
            flush()
        return out

    def decision_function(self, inputs: Any) -> np.ndarray:
        """Image scores ``(n,)`` float64, higher = more anomalous."""
        return np.asarray([p.pred_score for p in self.predict_maps(inputs, input_resolution=False)], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ outputs
def _safe_name(value: str) -> str:
    """A file-name-safe version of ``value`` (as :func:`ssmad.engine.runs.safe_name`, which needs PyYAML)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("._")
    return name or "unnamed"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _array_item(items: list[tuple[Any, str]], name: str) -> Any:
    return next(source for source, n in items if n == name)


def predict_onnx(
    model: str | Path | OnnxDetector,
    inputs: Any,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    threshold: float | None = None,
    pixel_threshold: float | None = None,
    save_maps: bool = True,
    overlays: bool = True,
    batch_size: int = 1,
    threads: int | None = None,
) -> dict[str, Any]:
    """Score images with an exported model and write maps, overlays, ``scores.json`` and ``scores.csv``.

    Args:
        model: The ``.onnx`` file (or a loaded :class:`OnnxDetector`).
        inputs: An image file, a folder of images, a list of paths, or an array batch.
        out_dir: Output folder (created); existing files in it are not replaced unless ``overwrite``.
        overwrite: Replace existing outputs.
        threshold: Override the image threshold.
        pixel_threshold: Override the pixel threshold (default: ``threshold`` when that is given).
        save_maps: Write ``maps/<name>.npy``.
        overlays: Write ``overlays/<name>.png`` (skipped with a warning when matplotlib is missing).
        batch_size: Images per onnxruntime call.
        threads: onnxruntime intra-op threads.

    Returns:
        The content of ``scores.json``.
    """
    from ..viz._io import check_writable, write_bytes_atomic, write_text_atomic

    det = model if isinstance(model, OnnxDetector) else OnnxDetector(model, threads=threads)
    if threshold is not None or pixel_threshold is not None:
        det.set_threshold(threshold, pixel_threshold if pixel_threshold is not None else threshold)
    out = Path(out_dir)
    scores_path = out / "scores.json"
    if scores_path.exists() and not overwrite:
        raise InputError(
            f"{scores_path} exists already; nothing was written. Fix: choose another --out folder or pass --overwrite."
        )
    check_writable(out / "scores.csv", overwrite)
    items = expand_inputs(inputs)
    skipped: list[str] = []
    preds = det.predict_items(items, skipped=skipped, batch_size=batch_size)
    save_overlay: Any = None
    if overlays:
        try:
            import matplotlib  # noqa: F401  (the overlays' colour maps)

            from ..viz.overlays import save_overlay
        except ImportError:
            logger.warning("overlays need matplotlib, which is not installed: overlays/ is not written")
    used: set[str] = set()
    rows = []
    for p in preds:
        image_path = p.image_path
        stem = _safe_name(Path(image_path).stem if not image_path.startswith("array[") else image_path)
        name, k = stem, 1
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        row: dict[str, Any] = {
            "image_path": image_path,
            "pred_score": p.pred_score,
            "pred_label": int(bool(p.pred_label)),
            "anomalous_pixels": int(p.pred_mask.sum()) if p.pred_mask is not None else None,
        }
        if save_maps:
            buf = io.BytesIO()
            np.save(buf, p.anomaly_map.astype(np.float32), allow_pickle=False)
            write_bytes_atomic(out / "maps" / f"{name}.npy", buf.getvalue(), overwrite=overwrite)
            row["map"] = f"maps/{name}.npy"
        if save_overlay is not None:
            image = _array_item(items, image_path) if image_path.startswith("array[") else image_path
            save_overlay(
                out / "overlays" / f"{name}.png",
                image,
                p.anomaly_map,
                pred_mask=p.pred_mask,
                overwrite=overwrite,
                caption=f"score {p.pred_score:.4g} ({'anomalous' if p.pred_label else 'normal'})",
            )
            row["overlay"] = f"overlays/{name}.png"
        rows.append(row)
    summary = {
        "onnx": str(det.path),
        "model": det.model_name,
        "threshold": _finite(det.threshold_),
        "pixel_threshold": _finite(det.pixel_threshold_),
        "map_resolution": "input",
        "n_images": len(rows),
        "n_anomalous": sum(r["pred_label"] for r in rows),
        "images": rows,
        "skipped": skipped,
    }
    fields = ["image_path", "pred_score", "pred_label", "anomalous_pixels", "map", "overlay"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "scores.csv", text.getvalue(), overwrite=overwrite)
    write_text_atomic(scores_path, json.dumps(summary, indent=2, sort_keys=True) + "\n", overwrite=overwrite)
    logger.info("scored %d image(s) (%d anomalous) → %s", len(rows), summary["n_anomalous"], out)
    return summary
