"""Safe checkpoints: safetensors for tensors, JSON/YAML for everything else, never pickle.

A saved detector (``det.save(dir)``, the run folder of ``ssmad train``) holds

* ``model.safetensors`` — the complete network state dict, the frozen encoder included, so prediction needs
  neither the training data nor the encoder's weight package;
* ``metadata.json`` — ``model`` (the registry name), the model configuration, the recorded preprocessing, the
  thresholds, the metric-definition version, the package version and the environment (:func:`environment`);
* ``config.yaml`` — the resolved configuration of the run.

A training run additionally keeps its resume state in ``checkpoints/``: one folder per saved epoch
(``epoch_0003/`` with ``model.safetensors``, ``optimizer.safetensors`` (AdamW moments and step counts),
``rng.safetensors`` (PyTorch generator states) and ``state.json`` (epoch, iteration, scheduler, Python/NumPy
random states, loss history)), and ``checkpoints/last.json`` naming the newest complete one. The pointer is
written last and atomically, so a run killed while saving resumes from the previous epoch.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..errors import InputError
from .runs import atomic_write_bytes, atomic_write_json
from .seed import get_rng_state

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainingState",
    "environment",
    "latest_training_state",
    "load_state_dict",
    "load_training_state",
    "load_weights",
    "read_json",
    "save_state_dict",
    "save_training_state",
    "state_dict_mismatch",
]

#: Version of the files written here; bumped when their layout changes.
CHECKPOINT_FORMAT = 1
LAST_POINTER = "last.json"


def _cpu_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies (safetensors refuses tensors that share memory)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_state_dict(
    state: Mapping[str, torch.Tensor] | nn.Module,
    path: str | Path,
    *,
    metadata: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a state dict (or a module's) as one safetensors file, atomically.

    Args:
        state: Tensors by name, or a module whose ``state_dict()`` is saved.
        path: Destination ``.safetensors`` file.
        metadata: Optional string metadata stored in the file header.
        overwrite: Replace an existing file.
    """
    if isinstance(state, nn.Module):
        state = state.state_dict()
    data = st_save(_cpu_tensors(state), metadata=dict(metadata) if metadata else None)
    return atomic_write_bytes(path, data, overwrite=overwrite)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into CPU tensors.

    Raises:
        InputError: The file is missing or not a valid safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"the weights file {path} does not exist. Fix: pass the folder written by det.save(...) or "
            "`ssmad train` (it holds model.safetensors, metadata.json and config.yaml)."
        )
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as err:
        raise InputError(
            f"{path}: not a readable safetensors file ({err}). The file is damaged or incomplete; re-run the "
            "training or restore the file from a backup."
        ) from err


def state_dict_mismatch(
    target: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], *, extra: str = "unexpected"
) -> str:
    """How ``state`` fails to fit ``target`` (missing, extra and reshaped keys, with examples); ``""`` when it fits.

    Args:
        target: The model's own ``state_dict()``.
        state: The tensors to load.
        extra: The word for keys of ``state`` the model does not have.
    """
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    wrong = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} {extra} (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)})")
    return "; ".join(parts)


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load ``path`` into ``module`` strictly, with a readable error when the architecture differs.

    Raises:
        InputError: Missing or unexpected keys, or tensors of other shapes.
    """
    state = load_state_dict(path)
    mismatch = state_dict_mismatch(module.state_dict(), state)
    if mismatch:
        raise InputError(
            f"{path}: the weights do not fit the model built from its metadata: {mismatch} tensors. The "
            "file belongs to another architecture or configuration (encoder, image size, decoder settings); load "
            "it with the metadata.json and config.yaml that were saved beside it."
        )
    module.load_state_dict(state, strict=True)


def read_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON object, with an :class:`InputError` naming the file when it is missing or damaged."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise InputError(
            f"{path} does not exist. Fix: pass a folder written by det.save(...) or `ssmad train`."
        ) from err
    except (OSError, ValueError) as err:
        raise InputError(
            f"{path}: not a readable JSON file ({err}); the file is damaged or not written by ssmad."
        ) from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(data).__name__}; the file is damaged.")
    return data


def environment() -> dict[str, Any]:
    """Versions and hardware that produced a result (stored in ``metadata.json``)."""
    from .. import __version__

    env: dict[str, Any] = {
        "ssmad": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
    }
    # versions from the installed distributions' metadata: importing scikit-image or torchvision just to read a
    # version string would cost seconds at the end of every run
    for name, dist in (
        ("numpy", "numpy"),
        ("timm", "timm"),
        ("torchvision", "torchvision"),
        ("safetensors", "safetensors"),
        ("scipy", "scipy"),
        ("sklearn", "scikit-learn"),
        ("skimage", "scikit-image"),
    ):
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "__version__"):
            env[name] = str(mod.__version__)
            continue
        try:
            env[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


# --- resume state ---------------------------------------------------------------------------------------------


class TrainingState(dict):
    """What a resumed run needs, as a plain dict.

    Keys: ``epoch`` (completed epochs), ``iteration``, ``model``, ``optimizer``, ``scheduler``, ``rng_tensors``,
    ``rng_json``, ``history``, ``extra``.
    """


def _optimizer_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_files(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_training_state(
    folder: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    iteration: int,
    history: list[dict[str, Any]],
    extra: Mapping[str, Any] | None = None,
    keep: int = 1,
) -> Path:
    """Save everything needed to resume after ``epoch`` completed epochs into ``folder/epoch_<N>/``.

    The pointer ``folder/last.json`` is updated last; older epoch folders beyond ``keep`` are then removed.

    Returns:
        The new epoch folder.
    """
    folder = Path(folder)
    target = folder / f"epoch_{epoch:04d}"
    if target.exists():
        shutil.rmtree(target)
    opt_tensors, opt_meta = _optimizer_to_files(optimizer)
    rng_tensors, rng_json = get_rng_state()
    save_state_dict(model.state_dict(), target / "model.safetensors")
    atomic_write_bytes(target / "optimizer.safetensors", st_save(_cpu_tensors(opt_tensors)))
    atomic_write_bytes(target / "rng.safetensors", st_save(_cpu_tensors(rng_tensors)))
    atomic_write_json(
        target / "state.json",
        {
            "format": CHECKPOINT_FORMAT,
            "epoch": int(epoch),
            "iteration": int(iteration),
            "optimizer": opt_meta,
            "scheduler": scheduler.state_dict(),
            "rng": rng_json,
            "history": history,
            "extra": dict(extra or {}),
        },
    )
    atomic_write_json(folder / LAST_POINTER, {"epoch": int(epoch), "folder": target.name}, overwrite=True)
    old = sorted(p for p in folder.glob("epoch_*") if p.is_dir() and p != target)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return target


def latest_training_state(folder: str | Path) -> Path | None:
    """The newest complete epoch folder under ``folder`` (from ``last.json``), or ``None``."""
    pointer = Path(folder) / LAST_POINTER
    if not pointer.is_file():
        return None
    data = read_json(pointer)
    target = Path(folder) / str(data.get("folder", ""))
    return target if (target / "state.json").is_file() else None


def load_training_state(target: str | Path) -> TrainingState:
    """Read an epoch folder written by :func:`save_training_state`.

    Raises:
        InputError: Missing or damaged files.
    """
    target = Path(target)
    meta = read_json(target / "state.json")
    opt_tensors = load_state_dict(target / "optimizer.safetensors")
    state = TrainingState(
        epoch=int(meta["epoch"]),
        iteration=int(meta["iteration"]),
        model=load_state_dict(target / "model.safetensors"),
        optimizer=_optimizer_from_files(opt_tensors, meta["optimizer"]),
        scheduler=meta["scheduler"],
        rng_tensors=load_state_dict(target / "rng.safetensors"),
        rng_json=meta["rng"],
        history=list(meta.get("history", [])),
        extra=dict(meta.get("extra", {})),
    )
    return state
