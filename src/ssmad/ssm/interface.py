"""``selective_scan``: one entry point, several interchangeable backends.

=============  ====================================================================  =================
backend        what it is                                                            devices
=============  ====================================================================  =================
``reference``  the sequential oracle (:mod:`ssmad.ssm.reference`)                   any
``cpu``        C++ kernel compiled on first use and cached (:mod:`.cpu`)             CPU
``torch``      pure-PyTorch chunked scan with its own backward (:mod:`.chunked`)    any
``export``     blocked scan in plain tensor operations, traceable (:mod:`.blocked`)   any
``cuda``       mamba-ssm's ``selective_scan_fn`` (:mod:`.cuda`), when installed      CUDA
``triton``     Triton kernels, forward and backward (:mod:`.triton_scan`)            CUDA (CPU: interpreter)
``auto``       the fastest available for the tensors' device                         any
=============  ====================================================================  =================

``auto`` resolves to ``cpu`` then ``torch`` on a CPU, and to ``cuda`` (mamba-ssm importable) then ``triton`` (Triton
installed) then ``torch`` on a GPU. The ``triton`` backend takes CPU tensors only under ``TRITON_INTERPRET=1``
(Triton's interpreter, for tests); ``auto`` never picks it on a CPU. The environment variable ``SSMAD_SCAN_BACKEND``
replaces ``auto`` by a fixed choice (an explicit ``backend=`` argument wins over it). The first resolution per
device type is logged once, with the reason; :func:`explain_backends` gives every backend's reason.

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

Backend = Literal["auto", "reference", "cpu", "torch", "export", "cuda", "triton"]
BACKENDS: tuple[str, ...] = ("reference", "cpu", "torch", "export", "cuda", "triton")
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


def is_tracing() -> bool:
    """Whether any graph is being recorded: :func:`is_exporting`, ``torch.compile`` or TorchScript.

    The fast paths that call compiled libraries through ``ctypes`` (or choose an operator by speed) step aside then,
    so the trace holds plain torch operators.
    """
    compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)  # torch >= 2.3
    return (
        is_exporting()
        or (compiling is not None and bool(compiling()))
        or torch.jit.is_tracing()
        or torch.jit.is_scripting()
    )


def backend_status(name: str, device: torch.device | str = "cpu") -> tuple[bool, str]:
    """Whether backend ``name`` can run on ``device`` in this environment, and why (one line).

    Compiles the CPU kernel if needed; imports mamba-ssm (never triton) to check it.
    """
    device = torch.device(device)
    if name == "reference":
        return True, "pure PyTorch, sequential (the oracle)"
    if name == "torch":
        return True, "pure PyTorch, chunked parallel scan"
    if name == "export":
        return True, "plain tensor operators, blocked scan (chosen while exporting a model)"
    if name == "cpu":
        if device.type != "cpu":
            return False, "C++ kernel for CPU tensors only"
        from . import cpu

        if cpu.is_available():
            return True, "C++ kernel compiled and loaded"
        return False, f"C++ kernel unavailable ({cpu._load_failed or 'not loaded'})"
    if name == "cuda":
        if device.type != "cuda":
            return False, "mamba-ssm kernel for CUDA tensors only"
        from . import cuda

        return cuda.status()
    if name == "triton":
        from . import triton_scan

        return triton_scan.status(device)
    raise ValueError(f"unknown selective-scan backend {name!r}; choose one of {', '.join(('auto', *BACKENDS))}")


def backend_available(name: str, device: torch.device | str = "cpu") -> bool:
    """Whether backend ``name`` can run on ``device`` in this environment (compiles the CPU kernel if needed)."""
    return backend_status(name, device)[0]


def _auto_order(device: torch.device) -> tuple[str, ...]:
    # ``export`` never comes first (``torch`` always runs); it is listed so that tests and ``ssmad info`` see it
    if device.type == "cuda":
        return ("cuda", "triton", "torch", "export", "reference")
    return ("cpu", "torch", "export", "reference")


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that ``auto`` may pick on ``device`` here, fastest first (``reference`` last).

    ``triton`` is listed for CUDA devices only: on a CPU it runs in Triton's interpreter, a testing aid.
    """
    device = torch.device(device)
    return [name for name in _auto_order(device) if backend_available(name, device)]


def explain_backends(device: torch.device | str = "cpu") -> tuple[str, list[tuple[str, bool, str]]]:
    """What ``auto`` picks on ``device`` (ignoring ``SSMAD_SCAN_BACKEND``) and every candidate's status.

    Returns:
        The chosen backend and ``(name, available, reason)`` for each candidate in ``auto``'s order of preference.
    """
    device = torch.device(device)
    rows = [(name, *backend_status(name, device)) for name in _auto_order(device)]
    chosen = next(name for name, ok, _ in rows if ok)
    return chosen, rows


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
        key = f"auto:{device.type}"
        if key not in _logged:
            _logged.add(key)
            name, rows = explain_backends(device)
            skipped = "; ".join(f"{n}: {why}" for n, ok, why in rows if not ok and n != name)
            logger.info(
                "selective_scan: backend 'auto' on %s uses %r%s (set %s to force one)",
                device.type,
                name,
                f" ({skipped})" if skipped else "",
                ENV_VAR,
            )
            return name
        return available_backends(device)[0]
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown selective-scan backend {backend!r}"
            + (f" (from ${ENV_VAR})" if requested == "auto" else "")
            + f"; choose one of {', '.join(('auto', *BACKENDS))}"
        )
    ok, why = backend_status(backend, device)
    if not ok:
        hint = {
            "cpu": "the C++ kernel needs a C++ compiler (g++/clang++) and tensors on the CPU; "
            "use backend='torch' otherwise",
            "cuda": "install the optional extra `pip install ssmad[cuda]` (mamba-ssm) and put the tensors on a GPU",
            "triton": "install triton (it comes with PyTorch's CUDA wheels) and put the tensors on a GPU, or set "
            "TRITON_INTERPRET=1 to run it on CPU tensors in Triton's interpreter",
        }[backend]
        raise MissingDependencyError(f"selective-scan backend {backend!r} is not available on {device} ({why}): {hint}")
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
        backend: ``auto``, ``reference``, ``cpu``, ``torch``, ``export``, ``cuda`` or ``triton`` (see the module
            docstring).

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
    if name == "triton":
        from . import triton_scan

        return scan_with_core(triton_scan.core, *args)
    if name == "export":
        from . import blocked

        return scan_with_core(blocked.core, *args)
    from . import chunked

    return scan_with_core(chunked.core, *args)
