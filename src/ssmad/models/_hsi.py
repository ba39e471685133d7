"""Shared plumbing of the hyperspectral detectors (RX, local RX, ACMamba).

Hyperspectral anomaly detection (HAD) is *transductive*: a detector is fitted on the very scene it scores, one
scene at a time, and returns an ``(H, W)`` map in which **higher means more anomalous**. This module holds what
every such detector shares:

* :func:`as_cube` — turn a raw array of any numeric dtype (ABU ``.mat`` files mix int16, uint16 and float64)
  into a validated float64 ``(H, W, B)`` cube, with one-paragraph :class:`~ssmad.errors.InputError` messages for
  the usual mistakes (2-D array, one band, NaN/Inf, bands-first layout);
* :func:`check_ground_truth` and :func:`minmax_per_band` (sklearn ``MinMaxScaler`` over pixels, band by band);
* :class:`HyperspectralDetector` — the PyOD/scikit-learn style contract (``fit``, ``decision_function``,
  ``fit_predict``, ``predict``, ``predict_maps``, ``save``/``load``) built on a frozen config dataclass.

Models must not import :mod:`ssmad.data` (rooms import one way), so validation of in-memory arrays lives here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

#: Version of the on-disk layout written by :meth:`HyperspectralDetector.save`.
FORMAT_VERSION = 1


def as_cube(cube: Any, *, name: str = "cube", min_pixels: int = 2) -> np.ndarray:
    """Validate a raw hyperspectral cube and return it as float64.

    Args:
        cube: Array-like ``(H, W, B)`` of any real numeric dtype (int16, uint16, float32, float64, ...). Torch
            tensors are accepted and copied to the CPU.
        name: How the cube is called in error messages (a file name when there is one).
        min_pixels: Smallest accepted number of pixels ``H * W``.

    Returns:
        The cube, shape ``(H, W, B)``, dtype float64 (a new array).

    Raises:
        InputError: Not numeric, not 3-D, fewer than two bands, too few pixels, or NaN/Inf values.
    """
    if hasattr(cube, "detach") and hasattr(cube, "cpu"):  # torch tensor, without importing torch here
        cube = cube.detach().cpu().numpy()
    try:
        arr = np.asarray(cube)
    except Exception as err:  # ragged lists and other non-arrays
        raise InputError(f"{name}: cannot be read as an array ({err}); pass a numpy array of shape (H, W, B)") from err
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(
            f"{name}: dtype {arr.dtype} is not a real number type; a hyperspectral cube must hold integer or float "
            "radiance/reflectance values of shape (H, W, B) — convert it with np.asarray(cube, dtype=float)"
        )
    if arr.ndim != 3:
        hint = (
            "a 2-D array is one band or a flattened (pixels, bands) matrix; reshape it to (H, W, B)"
            if arr.ndim == 2
            else "reshape it to (H, W, B)"
        )
        raise InputError(f"{name}: expected a 3-D cube (H, W, B) but got {arr.ndim}-D shape {arr.shape}; {hint}")
    h, w, b = arr.shape
    if b < 2:
        raise InputError(
            f"{name}: shape {arr.shape} has {b} band(s); hyperspectral detectors need at least 2 bands in the last "
            "axis. If the bands are in the first axis (B, H, W), move them with np.moveaxis(cube, 0, -1)"
        )
    if h * w < min_pixels:
        raise InputError(
            f"{name}: shape {arr.shape} has {h * w} pixel(s) but this detector needs at least {min_pixels}; if the "
            "bands are in the first axis (B, H, W), move them with np.moveaxis(cube, 0, -1), otherwise use a larger "
            "scene"
        )
    out = arr.astype(np.float64, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        bad = int((~finite).sum())
        bands = np.flatnonzero(~finite.all(axis=(0, 1)))
        shown = ", ".join(str(i) for i in bands[:8]) + (", ..." if bands.size > 8 else "")
        raise InputError(
            f"{name}: {bad} value(s) are NaN or infinite (bands {shown}); remove those bands or replace the values "
            "(e.g. np.nan_to_num or interpolation from neighbours) before detection"
        )
    return out


def check_ground_truth(gt: Any, shape: tuple[int, int], *, name: str = "ground truth") -> np.ndarray:
    """Validate a ground-truth map against a scene's spatial shape.

    Args:
        gt: Array-like ``(H, W)``; values ``> 0`` are anomalous.
        shape: The scene's ``(H, W)``.
        name: How the map is called in error messages.

    Returns:
        Boolean map ``(H, W)``.

    Raises:
        InputError: Wrong shape or non-numeric values.
    """
    arr = np.asarray(gt)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.shape != tuple(shape):
        raise InputError(
            f"{name}: shape {arr.shape} does not match the scene's spatial shape {tuple(shape)}; the map must be "
            "(H, W) with the cube's first two axes (check the .mat key and whether one of them is transposed)"
        )
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise InputError(f"{name}: dtype {arr.dtype} is not numeric; pass a 0/1 (or >0 = anomaly) map")
    return np.asarray(arr > 0)


def minmax_per_band(cube: np.ndarray) -> np.ndarray:
    """Scale every band to ``[0, 1]`` over all pixels (scikit-learn ``MinMaxScaler`` on ``(H·W, B)``).

    A constant band maps to 0 (as ``MinMaxScaler`` does).

    Args:
        cube: ``(H, W, B)`` float array.

    Returns:
        ``(H, W, B)`` float32.
    """
    lo = cube.min(axis=(0, 1), keepdims=True)
    span = cube.max(axis=(0, 1), keepdims=True) - lo
    span[span == 0] = 1.0
    return ((cube - lo) / span).astype(np.float32)


def build_config(config_cls: type, overrides: Mapping[str, Any], model: str) -> Any:
    """Build a frozen config dataclass from keyword overrides, rejecting unknown keys.

    Raises:
        ConfigError: An unknown key, or a value the dataclass' ``__post_init__`` rejects.
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{model}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}")
    try:
        return config_cls(**overrides)
    except (TypeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{model}: {err}") from err


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class HSIPrediction:
    """One scored scene, with anomalib's field names.

    Attributes:
        anomaly_map: ``(H, W)`` scores, higher = more anomalous.
        pred_score: Scene-level score (the map's maximum).
        pred_mask: ``(H, W)`` boolean map ``anomaly_map > threshold``.
        pred_label: Whether any pixel is above the threshold.
        image_path: The scene's file, when known.
    """

    anomaly_map: np.ndarray
    pred_score: float
    pred_mask: np.ndarray
    pred_label: bool
    image_path: str | None = None


class HyperspectralDetector:
    """Base class of transductive hyperspectral detectors: one ``(H, W, B)`` scene in, one ``(H, W)`` map out.

    Subclasses set :attr:`model_name` and :attr:`config_class`, and implement :meth:`_fit` and :meth:`_score`.
    The constructor only stores the configuration (scikit-learn discipline); fitted state ends in ``_``:
    ``decision_scores_`` (the fitted scene's map), ``threshold_`` (its ``threshold_quantile`` quantile, a
    label-free threshold), ``n_bands_``, ``scene_shape_``.

    Sign convention: **higher score = more anomalous**, everywhere.
    """

    model_name: ClassVar[str] = ""
    config_class: ClassVar[type] = object

    def __init__(self, **config: Any) -> None:
        self.config = build_config(self.config_class, config, self.model_name)

    # -- scikit-learn style parameters -------------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The configuration as a plain dict (``deep`` is accepted for scikit-learn compatibility)."""
        return dataclasses.asdict(self.config)

    def __repr__(self) -> str:
        defaults = dataclasses.asdict(self.config_class())
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # -- the contract ------------------------------------------------------------------------------------------
    def fit(self, cube: Any, y: Any = None) -> HyperspectralDetector:
        """Fit on one scene (unsupervised: ``y`` is ignored) and score it.

        Args:
            cube: Raw ``(H, W, B)`` array of any real numeric dtype.
            y: Ignored; present for API compatibility.

        Returns:
            ``self``, with ``decision_scores_`` ``(H, W)`` set.
        """
        x = as_cube(cube, min_pixels=self._min_pixels())
        self.n_bands_ = int(x.shape[-1])
        self.scene_shape_ = (int(x.shape[0]), int(x.shape[1]))
        scores = self._fit(x)
        self.decision_scores_ = np.asarray(scores, dtype=np.float64)
        self.threshold_ = float(np.quantile(self.decision_scores_, self.config.threshold_quantile))
        return self

    def decision_function(self, cube: Any = None) -> np.ndarray:
        """Anomaly scores of a scene, higher = more anomalous.

        Args:
            cube: ``(H, W, B)`` scene with the fitted band count, or ``None`` for the fitted scene.

        Returns:
            ``(H, W)`` float64 map.
        """
        self._check_fitted()
        if cube is None:
            return self.decision_scores_.copy()
        x = as_cube(cube, min_pixels=self._min_pixels())
        if x.shape[-1] != self.n_bands_:
            raise InputError(
                f"cube: has {x.shape[-1]} bands but the detector was fitted on {self.n_bands_}; fit a new detector "
                "on this scene (fit_predict) — hyperspectral detectors are fitted per scene"
            )
        return np.asarray(self._score(x), dtype=np.float64)

    def fit_predict(self, cube: Any, y: Any = None) -> np.ndarray:
        """Fit on ``cube`` and return its ``(H, W)`` anomaly map (higher = more anomalous)."""
        return self.fit(cube, y).decision_scores_.copy()

    def predict(self, cube: Any = None) -> np.ndarray:
        """Binary ``(H, W)`` map: ``decision_function(cube) > threshold_``."""
        return self.decision_function(cube) > self.threshold_

    def predict_maps(self, cube: Any = None, image_path: str | None = None) -> list[HSIPrediction]:
        """One :class:`HSIPrediction` for the scene (a list, like the image detectors' ``predict_maps``)."""
        amap = self.decision_function(cube)
        mask = amap > self.threshold_
        return [HSIPrediction(amap, float(amap.max()), mask, bool(mask.any()), image_path)]

    # -- persistence -------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write ``metadata.json`` (model name, config, fitted scalars) and the fitted arrays to a folder.

        Raises:
            InputError: The folder already holds a saved detector and ``overwrite`` is false.
        """
        from safetensors.numpy import save as st_save

        from .. import __version__

        folder = Path(path)
        meta_path = folder / "metadata.json"
        if meta_path.exists() and not overwrite:
            raise InputError(f"{folder}: already holds a saved detector; choose another folder or pass overwrite=True")
        meta: dict[str, Any] = {
            "model": self.model_name,
            "format_version": FORMAT_VERSION,
            "ssmad_version": __version__,
            "config": _jsonable(dataclasses.asdict(self.config)),
        }
        for key in ("n_bands_", "scene_shape_", "threshold_"):
            if hasattr(self, key):
                meta[key] = _jsonable(getattr(self, key))
        arrays = {k: np.ascontiguousarray(v) for k, v in self._state_arrays().items()}
        if hasattr(self, "decision_scores_"):
            arrays["decision_scores_"] = np.ascontiguousarray(self.decision_scores_)
        atomic_write_bytes(folder / "state.safetensors", st_save(arrays))
        atomic_write_bytes(meta_path, json.dumps(meta, indent=2).encode())
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HyperspectralDetector:
        """Load a detector written by :meth:`save`.

        Raises:
            InputError: Missing files or a metadata file of another model.
        """
        from safetensors.numpy import load_file

        folder = Path(path)
        meta_path = folder / "metadata.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise InputError(
                f"{meta_path}: cannot read the detector metadata ({err}); pass a folder written by save()"
            ) from err
        if meta.get("model") != cls.model_name:
            raise InputError(f"{meta_path}: holds a {meta.get('model')!r} detector, not {cls.model_name!r}")
        det = cls(**_config_from_json(cls.config_class, meta.get("config", {})))
        for key in ("n_bands_", "threshold_"):
            if key in meta:
                setattr(det, key, meta[key])
        if "scene_shape_" in meta:
            det.scene_shape_ = tuple(meta["scene_shape_"])
        state_path = folder / "state.safetensors"
        arrays = load_file(str(state_path)) if state_path.exists() else {}
        if "decision_scores_" in arrays:
            det.decision_scores_ = arrays.pop("decision_scores_")
        det._load_state_arrays(arrays)
        return det

    # -- hooks -------------------------------------------------------------------------------------------------
    def _min_pixels(self) -> int:
        return 2

    def _fit(self, cube: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(self, cube: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_bands_"):
            raise InputError(f"{type(self).__name__} is not fitted yet; call fit(cube) or fit_predict(cube) first")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _config_from_json(config_cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn JSON lists back into tuples where the dataclass default is a tuple."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
    return {k: tuple(v) if isinstance(defaults.get(k), tuple) and isinstance(v, list) else v for k, v in data.items()}
