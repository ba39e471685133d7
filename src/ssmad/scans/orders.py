"""Scan curves: the order in which a 2-D map of ``h × w`` cells is read into a 1-D sequence.

A scan order is a permutation ``perm`` of the raster indices ``row * w + col``: ``perm[j]`` is the cell visited
at sequence position ``j``. Encoding a channels-first map is ``seq = x_flat[..., perm]`` and decoding is
``x_flat = seq[..., inverse(perm)]``. Five curves are provided (MambaAD's hybrid scanning, spec A.6); every one
is defined for any ``h, w >= 1`` (square or not, power of two or not, single rows and columns).

=============  ==========================================================================================
name           curve
=============  ==========================================================================================
``sweep``      raster order (row after row, left to right); the identity permutation.
``scan``       snake / boustrophedon: even rows left to right, odd rows right to left.
``zorder``     Morton order: cells sorted by the bit-interleaved code of ``(row, col)`` with the column bits
               in the even (lower) positions, i.e. the Morton curve of the enclosing ``2^n × 2^n`` grid
               restricted to the cells inside the map. Equals ``pyzorder`` as used by MambaAD on
               power-of-two squares.
``zigzag``     JPEG zig-zag over anti-diagonals ``d = row + col = 0 .. h + w - 2``: even ``d`` walks up and to
               the right (row decreasing), odd ``d`` walks down and to the left (row increasing).
``hilbert``    generalised Hilbert curve ("gilbert" recursive splitting of a rectangle into two or three
               sub-rectangles). On ``2^n × 2^n`` maps it is exactly the classic Hilbert curve in the orientation
               of ``numpy-hilbert-curve`` as used by MambaAD (starts at the top-left cell, ends at the top-right
               cell; the first step goes right for even ``n`` and down for odd ``n``).
=============  ==========================================================================================

Neighbourhood of consecutive cells (useful for tests and for reasoning about locality):

* ``hilbert``: every step is between 4-neighbours, for every ``h × w``. A path that covers a grid and joins two
  corners on the same side can only exist with 4-neighbour steps when the side length along that edge and the
  cell count have compatible parities (colour the grid like a chess board). The curve runs along the *major*
  axis, from the top-left cell to the far end of that edge: the major axis is the longer side, except when the
  longer side has odd length and the shorter side even length, where the shorter (even) side is taken instead.
  With ``h == w`` the major axis is the columns (curve ends at ``(0, w - 1)``); with rows as the major axis it ends
  at ``(h - 1, 0)``. The plain gilbert rule (always the longer side) would need one diagonal step in the odd/even
  case; this choice never does (checked exhaustively for all ``h, w <= 96`` and by property tests).
* ``sweep``: steps between the end of one row and the start of the next jump back across the map.
* ``scan``: always 4-neighbours.
* ``zorder``: jumps of any length (the curve is not continuous).
* ``zigzag``: steps inside an anti-diagonal are diagonal neighbours; steps from one diagonal to the next are always
  4-neighbours (the walk turns at the map border), on square and non-square maps alike.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ConfigError, InputError

SCAN_NAMES: tuple[str, ...] = ("sweep", "scan", "zorder", "zigzag", "hilbert")

__all__ = ["SCAN_NAMES", "check_scan_name", "inverse", "order"]


def check_scan_name(name: str) -> str:
    """Return ``name`` if it is a known scan curve.

    Raises:
        ConfigError: Unknown curve name.
    """
    if name not in SCAN_NAMES:
        raise ConfigError(
            f"unknown scan curve {name!r}: choose one of {', '.join(SCAN_NAMES)} (MambaAD uses 'hilbert' by default)."
        )
    return name


def _check_size(h: int, w: int) -> tuple[int, int]:
    if isinstance(h, bool) or isinstance(w, bool) or int(h) != h or int(w) != w or h < 1 or w < 1:
        raise InputError(f"a scan order needs a map of at least 1 × 1 cells with integer sizes, got h={h!r}, w={w!r}.")
    return int(h), int(w)


def _sweep(h: int, w: int) -> np.ndarray:
    return np.arange(h * w, dtype=np.int64)


def _snake(h: int, w: int) -> np.ndarray:
    grid = np.arange(h * w, dtype=np.int64).reshape(h, w)
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def _interleave_bits(row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Morton code with column bits at even positions and row bits at odd positions."""
    code = np.zeros_like(row)
    nbits = int(max(int(row.max()), int(col.max()), 1)).bit_length()
    for bit in range(nbits):
        code |= ((col >> bit) & 1) << (2 * bit)
        code |= ((row >> bit) & 1) << (2 * bit + 1)
    return code


def _zorder(h: int, w: int) -> np.ndarray:
    row, col = np.divmod(np.arange(h * w, dtype=np.int64), w)
    return np.argsort(_interleave_bits(row, col), kind="stable").astype(np.int64)


def _zigzag(h: int, w: int) -> np.ndarray:
    row, col = np.divmod(np.arange(h * w, dtype=np.int64), w)
    diagonal = row + col
    # Inside an even diagonal the walk goes up-right (column increasing); inside an odd one down-left (row increasing).
    within = np.where(diagonal % 2 == 0, col, row)
    return np.lexsort((within, diagonal)).astype(np.int64)


def _gilbert_segments(h: int, w: int) -> list[tuple[int, int, int, int, int]]:
    """Straight runs ``(x, y, dx, dy, n)`` of the generalised Hilbert curve, in visiting order (x = col, y = row).

    The rectangle is described by its corner ``(x, y)``, a major vector ``a`` and a minor vector ``b``. A long,
    thin rectangle is cut in two halves along ``a``; otherwise it is cut into three: a first block spanning half
    of ``b`` (walked with the roles of ``a`` and ``b`` swapped), a main block, and a last block walked back
    towards the far corner. Half lengths are nudged to even values so that the sub-curves join as neighbours.
    """
    if w >= h:
        along_cols = not (w % 2 == 1 and h % 2 == 0)
    else:
        along_cols = h % 2 == 1 and w % 2 == 0
    segments: list[tuple[int, int, int, int, int]] = []
    start = (0, 0, w, 0, 0, h) if along_cols else (0, 0, 0, h, w, 0)
    stack = [start]
    while stack:
        x, y, ax, ay, bx, by = stack.pop()
        major = abs(ax + ay)
        minor = abs(bx + by)
        dax, day = int(np.sign(ax)), int(np.sign(ay))
        dbx, dby = int(np.sign(bx)), int(np.sign(by))
        if minor == 1:
            segments.append((x, y, dax, day, major))
            continue
        if major == 1:
            segments.append((x, y, dbx, dby, minor))
            continue
        ax2, ay2 = ax // 2, ay // 2
        bx2, by2 = bx // 2, by // 2
        if 2 * major > 3 * minor:
            if abs(ax2 + ay2) % 2 and major > 2:
                ax2, ay2 = ax2 + dax, ay2 + day
            parts = [(x, y, ax2, ay2, bx, by), (x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)]
        else:
            if abs(bx2 + by2) % 2 and minor > 2:
                bx2, by2 = bx2 + dbx, by2 + dby
            parts = [
                (x, y, bx2, by2, ax2, ay2),
                (x + bx2, y + by2, ax, ay, bx - bx2, by - by2),
                (x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby), -bx2, -by2, -(ax - ax2), -(ay - ay2)),
            ]
        stack.extend(reversed(parts))  # last pushed is visited first
    return segments


def _hilbert(h: int, w: int) -> np.ndarray:
    segments = np.array(_gilbert_segments(h, w), dtype=np.int64)
    x0, y0, dx, dy, n = segments.T
    starts = np.repeat(np.cumsum(n) - n, n)
    step = np.arange(h * w, dtype=np.int64) - starts
    seg = np.repeat(np.arange(len(n)), n)
    col = x0[seg] + dx[seg] * step
    row = y0[seg] + dy[seg] * step
    return row * w + col


_BUILDERS = {"sweep": _sweep, "scan": _snake, "zorder": _zorder, "zigzag": _zigzag, "hilbert": _hilbert}


@functools.lru_cache(maxsize=256)
def _cached_order(name: str, h: int, w: int) -> np.ndarray:
    perm = _BUILDERS[name](h, w).astype(np.int64, copy=False)
    perm.flags.writeable = False
    return perm


def order(name: str, h: int, w: int) -> np.ndarray:
    """Visiting order of the ``h × w`` map for scan curve ``name``.

    Args:
        name: ``sweep``, ``scan``, ``zorder``, ``zigzag`` or ``hilbert``.
        h: Number of rows.
        w: Number of columns.

    Returns:
        int64 array of shape ``(h * w,)``: ``perm[j] = row * w + col`` of the cell visited at position ``j``.
        The array is a fresh, writable copy (the cached original is read-only).

    Raises:
        ConfigError: Unknown curve name.
        InputError: ``h`` or ``w`` is not a positive integer.
    """
    check_scan_name(name)
    h, w = _check_size(h, w)
    return _cached_order(name, h, w).copy()


def inverse(perm: np.ndarray) -> np.ndarray:
    """Inverse permutation: ``inverse(perm)[perm[j]] == j``.

    Args:
        perm: A permutation of ``0 .. L - 1``, shape ``(L,)``.

    Returns:
        int64 array of shape ``(L,)``.

    Raises:
        InputError: ``perm`` is not a 1-D permutation of ``0 .. L - 1``.
    """
    perm = np.asarray(perm)
    length = perm.shape[0] if perm.ndim == 1 else -1
    if (
        perm.ndim != 1
        or not np.issubdtype(perm.dtype, np.integer)
        or not np.array_equal(np.sort(perm), np.arange(length))
    ):
        raise InputError(
            f"inverse() needs a 1-D integer permutation of 0..L-1, got an array of shape {perm.shape} and dtype "
            f"{perm.dtype} that is not one; build it with ssmad.scans.order(name, h, w)."
        )
    inv = np.empty(length, dtype=np.int64)
    inv[perm] = np.arange(length, dtype=np.int64)
    return inv
