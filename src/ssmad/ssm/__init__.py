"""The maths room: Mamba's selective scan (reference oracle and fast backends) and SSM initialisers.

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
    resolve_backend,
    selective_scan,
)
from .reference import selective_scan_ref

__all__ = [
    "BACKENDS",
    "available_backends",
    "backend_available",
    "backend_status",
    "directional_scan",
    "directional_scan_ref",
    "explain_backends",
    "export_mode",
    "is_exporting",
    "resolve_backend",
    "selective_scan",
    "selective_scan_ref",
]
