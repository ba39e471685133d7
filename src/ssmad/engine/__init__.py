"""The engine room: training, evaluation and prediction loops, checkpoints, seeding and run folders.

=====================  =========================================================================================
module                 job
=====================  =========================================================================================
:mod:`.config`         the run configuration (model / data / trainer / threshold / metrics / output), YAML presets
:mod:`.optim`          AdamW with MambaAD's weight-decay groups, batch-scaled lr, the ×0.1 step at 80 %
:mod:`.seed`           one seed for everything, the deterministic switch, random states for resuming
:mod:`.data`           devices, loaders that skip unreadable files, in-memory and prediction datasets
:mod:`.train`          the training loop (grad clip, progress, periodic evaluation, resume)
:mod:`.evaluate`       maps and scores over data sets, metrics, label-free and F1-optimal thresholds
:mod:`.predict`        prediction on new images, maps back at the input resolution
:mod:`.checkpoint`     safetensors + JSON checkpoints (never pickle), environment record
:mod:`.runs`           ``results/<model>/<dataset>/<category|all>/v<N>`` + ``latest``, atomic writes
:mod:`.progress`       rich progress bar on a terminal, plain log lines elsewhere
:mod:`.distributed`    several processes: launcher, process group, shards, gathers, global batch norm
:mod:`.runner`         whole runs behind ``ssmad train`` / ``test`` / ``predict``
=====================  =========================================================================================

The models stay pure ``nn.Module``s; everything with a side effect (files, devices, random state) lives here.
Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "RunConfig": "config",
    "TrainerConfig": "config",
    "DataConfig": "config",
    "ThresholdConfig": "config",
    "MetricsConfig": "config",
    "OutputConfig": "config",
    "build_optimizer": "optim",
    "build_scheduler": "optim",
    "param_groups": "optim",
    "seed_everything": "seed",
    "set_deterministic": "seed",
    "train_network": "train",
    "collect": "evaluate",
    "compute_metrics": "evaluate",
    "predict_images": "predict",
    "ImagePrediction": "predict",
    "create_run_dir": "runs",
    "resolve_run": "runs",
    "train_run": "runner",
    "evaluate_run": "runner",
    "predict_run": "runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ssmad.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
