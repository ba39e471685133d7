"""``selective_scan``: one entry point, several interchangeable backends.

=============  ====================================================================  =================
backend        what it is                                                            devices
=============  ====================================================================  =================
``reference``  the sequential oracle (:mod:`ssmad.ssm.reference`)                   any
``cpu``        C++ kernel compiled on first use and cached (:mod:`.cpu`)             CPU
``torch``      pure-PyTorch chunked scan with its own backward (:mod:`.chunked`)    any
``export``     blocked scan in plain tensor operations, traceable to ONNX (:mod:`.blocked`)  any
``cuda``       mamba-ssm's ``selective_scan_fn`` (:mod:`.cuda`), when installed      CUDA
``auto``       the fastest available for the tensors' device                         any
=============  ====================================================================  =================

``auto`` resolves to ``cpu`` then ``torch`` on a CPU, and to ``cuda`` then ``torch`` on a GPU. The environment
variable ``SSMAD_SCAN_BACKEND`` replaces ``auto`` by a fixed choice (an explicit ``backend=`` argument wins over
it). The first resolution per device type is logged once.

While a model is being exported (inside :func:`export_mode`, ``torch.onnx.export`` or ``torch.export``), every
request, ``auto`` or explicit, resolves to ``export``: the compiled and external kernels cannot be traced, and the
blocked scan is made of standard operators only (see :mod:`.blocked`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from ..errors import MissingDependencyError
from ._core import check_shapes, scan_with_core
from .reference import selective_scan_ref

logger = logging.getLogger(__name__)

Backend = Literal["auto", "reference", "cpu", "torch", "export", "cuda"]
BACKENDS: tuple[str, ...] = ("reference", "cpu", "torch", "export", "cuda")
ENV_VAR = "SSMAD_SCAN_BACKEND"

_logged: set[str] = set()
_export_depth = 0


@contextlib.contextmanager
def export_mode() -> Iterator[None]:
    """Inside this block every selective scan resolves to the traceable ``export`` backend (nestable)."""
    global _export_depth
    _export_depth += 1
    try:
        yield
    finally:
        _export_depth -= 1


def is_exporting() -> bool:
    """Whether a model is being traced for export: :func:`export_mode`, ``torch.onnx`` or ``torch.export``."""
    if _export_depth > 0:
        return True
    onnx = sys.modules.get("torch.onnx")  # not imported: nobody is exporting through it (and no import cost here)
    if onnx is not None and onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_exporting") and compiler.is_exporting())


def backend_available(name: str, device: torch.device | str = "cpu") -> bool:
    """Whether backend ``name`` can run on ``device`` in this environment (compiles the CPU kernel if needed)."""
    device = torch.device(device)
    if name in ("reference", "torch", "export"):
        return True
    if name == "cpu":
        if device.type != "cpu":
            return False
        from . import cpu

        return cpu.is_available()
    if name == "cuda":
        if device.type != "cuda":
            return False
        from . import cuda

        return cuda.is_available()
    raise ValueError(f"unknown selective-scan backend {name!r}; choose one of {', '.join(('auto', *BACKENDS))}")


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on ``device`` here, fastest first (``reference`` last)."""
    fast = ("cuda", "torch") if torch.device(device).type == "cuda" else ("cpu", "torch")
    order = (*fast, "export", "reference")
    return [name for name in order if backend_available(name, device)]


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Turn ``auto`` (or the environment override) into a concrete backend name for ``device``.

    While exporting (:func:`is_exporting`) the answer is always ``export``.

    Raises:
        MissingDependencyError: An explicitly requested backend cannot run here.
        ValueError: Unknown backend name.
    """
    if is_exporting():
        return "export"
    device = torch.device(device)
    requested = backend
    if backend == "auto":
        backend = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if backend == "auto":
        name = available_backends(device)[0]
        key = f"auto:{device.type}"
        if key not in _logged:
            _logged.add(key)
            logger.info(
                "selective_scan: backend 'auto' on %s uses %r (set %s to force one)", device.type, name, ENV_VAR
            )
        return name
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown selective-scan backend {backend!r}"
            + (f" (from ${ENV_VAR})" if requested == "auto" else "")
            + f"; choose one of {', '.join(('auto', *BACKENDS))}"
        )
    if not backend_available(backend, device):
        hint = {
            "cpu": "the C++ kernel needs a C++ compiler (g++/clang++) and tensors on the CPU; "
            "use backend='torch' otherwise",
            "cuda": "install the optional extra `pip install ssmad[cuda]` (mamba-ssm) and put the tensors on a GPU",
        }[backend]
        raise MissingDependencyError(f"selective-scan backend {backend!r} is not available on {device}: {hint}")
    return backend


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    backend: Backend | str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Mamba's selective scan with mamba-ssm ``selective_scan_ref`` semantics (see :mod:`ssmad.ssm.reference`).

    Args:
        u: Input sequence, shape ``(batch, D, L)``.
        delta: Step sizes before bias/softplus, shape ``(batch, D, L)``.
        A: Real state matrix, shape ``(D, N)``.
        B: Input projections ``(batch, N, L)`` or grouped ``(batch, G, N, L)`` (group ``g`` serves ``D / G``
            consecutive channels).
        C: Output projections, same shape rules as ``B``.
        D: Skip term, shape ``(D,)``.
        z: Gate ``(batch, D, L)``: the output is multiplied by ``silu(z)``.
        delta_bias: Added to ``delta``, shape ``(D,)``.
        delta_softplus: Apply softplus to ``delta`` after the bias.
        return_last_state: Also return the final state.
        backend: ``auto``, ``reference``, ``cpu``, ``torch``, ``export`` or ``cuda`` (see the module docstring).

    Returns:
        ``out`` ``(batch, D, L)`` in ``u``'s dtype; with ``return_last_state`` also the last state
        ``(batch, D, N)`` in the recurrence dtype (float32, or float64 for float64 inputs).
    """
    check_shapes(u, delta, A, B, C, D, z, delta_bias)
    name = resolve_backend(backend, u.device)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if name == "reference":
        return selective_scan_ref(*args)
    if name == "cuda":
        from . import cuda

        return cuda.selective_scan_cuda(*args)
    if name == "cpu":
        from . import cpu

        return scan_with_core(cpu.core, *args)
    if name == "export":
        from . import blocked

        return scan_with_core(blocked.core, *args)
    from . import chunked

    return scan_with_core(chunked.core, *args)
