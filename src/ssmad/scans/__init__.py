"""The scans room: 2-D scan curves (any H × W) and K-direction gather tables (spec A.6).

Only numpy and torch are needed here; nothing in this package imports a higher room of ssmad.
"""

from __future__ import annotations

from .directions import (
    DIRECTION_SETS,
    direction_arrays,
    direction_ids,
    direction_tables,
    gather_directions,
    merge_directions,
    transform_frame,
)
from .orders import SCAN_NAMES, check_scan_name, inverse, order

__all__ = [
    "DIRECTION_SETS",
    "SCAN_NAMES",
    "check_scan_name",
    "direction_arrays",
    "direction_ids",
    "direction_tables",
    "gather_directions",
    "inverse",
    "merge_directions",
    "order",
    "transform_frame",
]
