"""One seed for everything, a deterministic switch, and random states that survive a restart.

* :func:`seed_everything` seeds Python's :mod:`random`, NumPy's global generator and PyTorch (CPU and CUDA).
* :func:`set_deterministic` asks PyTorch for deterministic kernels (``torch.use_deterministic_algorithms``,
  cuDNN deterministic without benchmarking, ``CUBLAS_WORKSPACE_CONFIG``). On a CPU training is already
  reproducible run to run for a fixed thread count; the switch matters on GPUs.
* :func:`epoch_generator` gives the data loader of every epoch its own generator derived from the seed and the
  epoch number, so the shuffle order of epoch ``e`` does not depend on what ran before — which is what lets a
  resumed run replay exactly the epochs an uninterrupted run would have seen.
* :func:`get_rng_state` / :func:`set_rng_state` capture and restore the global generators (drop-path masks use
  PyTorch's global generator) as tensors and JSON, without pickle, for the resume checkpoint.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "epoch_generator",
    "get_rng_state",
    "seed_everything",
    "set_deterministic",
    "set_rng_state",
    "worker_init_fn",
]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) with ``seed``."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is what other code draws from
    torch.manual_seed(seed)
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        torch.cuda.manual_seed_all(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Switch PyTorch's deterministic mode on or off.

    Operations without a deterministic implementation log a warning instead of failing (``warn_only``), so a
    model never becomes unusable because of the switch.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # torch.use_deterministic_algorithms imports torch._inductor (several seconds on a CPU); skip it when the
    # switch is already where it should be (the default "off" of every non-deterministic run)
    if torch.are_deterministic_algorithms_enabled() != enabled or (
        enabled and not torch.is_deterministic_algorithms_warn_only_enabled()
    ):
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False
    logger.debug("deterministic algorithms %s", "on" if enabled else "off")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator for the data order of ``epoch``, independent of every other epoch."""
    g = torch.Generator()
    g.manual_seed((int(seed) * 1_000_003 + int(epoch)) % 2**63)
    return g


def worker_init_fn(worker_id: int) -> None:
    """Seed NumPy and :mod:`random` inside a data-loader worker from PyTorch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002
    random.seed(seed)


def get_rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global random states.

    Returns:
        ``(tensors, json_state)``: the PyTorch CPU (and CUDA) states as uint8 tensors, and the Python/NumPy states
        as JSON-serialisable data.
    """
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    json_state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
    }
    return tensors, json_state


def set_rng_state(tensors: dict[str, torch.Tensor], json_state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned (CUDA states only where the devices exist)."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8).cpu())
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in states])
    py = json_state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = json_state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
