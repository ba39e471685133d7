"""The maths room: Mamba's selective scan, Mamba-2's SSD scan (oracles and fast paths), SSM initialisers.

Only torch and numpy are needed here; nothing in this package imports a higher room of ssmad.
"""

from __future__ import annotations

from .directional import directional_scan, directional_scan_ref
from .interface import (
    BACKENDS,
    available_backends,
    backend_available,
    backend_status,
    explain_backends,
    export_mode,
    is_exporting,
    is_tracing,
    resolve_backend,
    selective_scan,
)
from .reference import selective_scan_ref
from .softplus import softplus
from .ssd import SSD_BACKENDS, ssd_scan
from .ssd_mamba3 import ssd_rotary
from .ssd_reference import ssd_scan_ref

__all__ = [
    "BACKENDS",
    "SSD_BACKENDS",
    "available_backends",
    "backend_available",
    "backend_status",
    "directional_scan",
    "directional_scan_ref",
    "explain_backends",
    "export_mode",
    "is_exporting",
    "is_tracing",
    "resolve_backend",
    "selective_scan",
    "selective_scan_ref",
    "softplus",
    "ssd_rotary",
    "ssd_scan",
    "ssd_scan_ref",
]
