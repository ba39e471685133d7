"""Model names → detector classes, and the top-level factory ``ssmad.create_model``.

Entries are ``"module:attribute"`` strings resolved on first use, so ``import ssmad`` stays cheap and a
detector whose optional dependencies are missing only fails when it is asked for.

Detectors of your own (subclasses of :class:`~ssmad.detectors.ImageDetector`) reach the command line — and the
worker processes that ``--devices N`` starts — through the environment variable ``SSMAD_MODELS``:
``SSMAD_MODELS="mynet=mypackage.detectors:MyNetDetector,other=pkg.mod:Other"``.
"""

from __future__ import annotations

import importlib
import json
import os
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


#: Environment variable with extra ``name=module:attribute`` entries, comma-separated.
ENV_MODELS = "SSMAD_MODELS"


def _entries() -> dict[str, str]:
    """:data:`DETECTORS` plus the entries of ``$SSMAD_MODELS`` (which may not replace a built-in name)."""
    out = dict(DETECTORS)
    for item in filter(None, (x.strip() for x in os.environ.get(ENV_MODELS, "").split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise ConfigError(
                f"${ENV_MODELS} entry {item!r} is not name=module:attribute. Fix: e.g. "
                f"{ENV_MODELS}=mynet=mypackage.detectors:MyNetDetector"
            )
        out.setdefault(name.strip().lower().replace("-", "_"), target.strip())
    return out


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_entries())


def detector_class(name: str) -> type:
    """Import and return the detector class registered under ``name``.

    Raises:
        ConfigError: ``name`` is not a registered model.
    """
    key = name.lower().replace("-", "_")
    entries = _entries()
    if key not in entries:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}")
    module, _, attr = entries[key].partition(":")
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
