"""The ``cuda`` backend: mamba-ssm's fused ``selective_scan_fn``, when it is installed.

mamba-ssm is optional (``pip install ssmad[cuda]``) and only used for CUDA tensors. Its kernel computes in
float32 and does not take float64 inputs: those go to the pure-PyTorch backend instead (logged once).
"""

from __future__ import annotations

import logging
from typing import Any

from torch import Tensor

logger = logging.getLogger(__name__)

_fn: Any = None
_checked = False
_load_error = ""
_warned_f64 = False


def _load() -> Any:
    global _fn, _checked, _load_error
    if not _checked:
        _checked = True
        try:
            from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        except Exception as err:  # ImportError, or a broken CUDA build raising at import time
            logger.debug("mamba-ssm is not usable here: %s", err)
            _fn = None
            _load_error = f"{type(err).__name__}: {err}"
        else:
            _fn = selective_scan_fn
    return _fn


def status() -> tuple[bool, str]:
    """Whether mamba-ssm imports and a CUDA device is present, and why (one line)."""
    import torch

    if not torch.cuda.is_available():
        return False, "no CUDA device"
    if _load() is None:
        return False, f"mamba-ssm is not importable ({_load_error})"
    return True, "mamba-ssm imports and a CUDA device is present"


def is_available() -> bool:
    """Whether mamba-ssm imports and a CUDA device is present."""
    return status()[0]


def selective_scan_cuda(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None,
    z: Tensor | None,
    delta_bias: Tensor | None,
    delta_softplus: bool,
    return_last_state: bool,
) -> Tensor | tuple[Tensor, Tensor]:
    """Full selective scan on mamba-ssm's kernel (arguments as :func:`ssmad.ssm.selective_scan`)."""
    import torch

    global _warned_f64
    if any(t is not None and t.dtype == torch.float64 for t in (u, delta, A, B, C, D, z, delta_bias)):
        if not _warned_f64:
            _warned_f64 = True
            logger.info("selective_scan: mamba-ssm has no float64 kernel; float64 inputs use the torch backend")
        from . import chunked
        from ._core import scan_with_core

        return scan_with_core(chunked.core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    fn = _load()
    A = A.float()
    D = None if D is None else D.float()
    delta_bias = None if delta_bias is None else delta_bias.float()
    return fn(
        u.contiguous(),
        delta.contiguous(),
        A.contiguous(),
        B.contiguous(),
        C.contiguous(),
        D,
        None if z is None else z.contiguous(),
        delta_bias,
        delta_softplus,
        return_last_state,
    )
