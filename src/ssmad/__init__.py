"""ssmad: State-Space Models for Anomaly Detection.

MambaAD, MambaADv2 and ACMamba, with their baselines, as one library and command-line tool that runs on
a laptop CPU as well as on a GPU. Importing :mod:`ssmad` is cheap: heavy rooms (models, data, metrics)
load on first use.

Example:
    >>> import ssmad
    >>> det = ssmad.create_model("rx")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "create_model", "list_models", "load"]


def __getattr__(name: str) -> Any:
    if name in ("create_model", "list_models", "load"):
        from . import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ssmad' has no attribute {name!r}")
