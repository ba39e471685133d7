"""Model names → detector classes, and the top-level factory ``ssmad.create_model``.

Entries are ``"module:attribute"`` strings resolved on first use, so ``import ssmad`` stays cheap and a
detector whose optional dependencies are missing only fails when it is asked for.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError

#: Detector classes by model name. Every class takes its configuration as keyword arguments.
DETECTORS: dict[str, str] = {
    "mambaad": "ssmad.detectors:MambaADDetector",
    "mambaadv2": "ssmad.detectors:MambaADv2Detector",
    "rd4ad": "ssmad.detectors:RD4ADDetector",
    "acmamba": "ssmad.models.acmamba:ACMambaDetector",
    "rx": "ssmad.models.rx:RXDetector",
    "lrx": "ssmad.models.rx:LocalRXDetector",
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(DETECTORS)


def detector_class(name: str) -> type:
    """Import and return the detector class registered under ``name``.

    Raises:
        ConfigError: ``name`` is not a registered model.
    """
    key = name.lower().replace("-", "_")
    if key not in DETECTORS:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    module, _, attr = DETECTORS[key].partition(":")
    return getattr(importlib.import_module(module), attr)


def create_model(name: str, **config: Any) -> Any:
    """Create an unfitted detector, e.g. ``ssmad.create_model("mambaad", encoder="resnet34")``.

    Args:
        name: A registered model name (see :func:`list_models`).
        **config: Configuration overrides; unknown keys raise :class:`~ssmad.errors.ConfigError`.

    Returns:
        The detector (``fit`` / ``decision_function`` / ``predict`` / ``predict_maps`` / ``save``; hyperspectral
        detectors also ``fit_predict``).
    """
    return detector_class(name)(**config)


def load(path: str | Path) -> Any:
    """Load a detector saved with ``det.save(path)`` (a run folder or the folder given to ``save``).

    Raises:
        InputError: The folder does not exist or holds no ``metadata.json`` naming the model.
    """
    folder = Path(path)
    meta = folder / "metadata.json"
    if not meta.is_file():
        raise InputError(
            f"{folder}: no metadata.json here, so this is not a saved ssmad detector; pass the folder written by "
            "det.save(...) or a run folder results/<model>/<dataset>/<category>/v<N>"
        )
    name = json.loads(meta.read_text()).get("model")
    if not name:
        raise InputError(f"{meta}: the key 'model' is missing; the file is damaged or not written by ssmad")
    cls = detector_class(name)
    return cls.load(folder)
