"""Scan curves: spec A.6 test vectors, classic-Hilbert agreement and properties on arbitrary H × W."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmad.errors import ConfigError, InputError
from ssmad.scans import SCAN_NAMES, inverse, order

# Spec A.6, computed with numpy-hilbert-curve 1.0.1 and pyzorder 0.0.2 (the packages MambaAD uses).
A6_VECTORS = {
    ("sweep", 4): list(range(16)),
    ("scan", 4): [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11, 15, 14, 13, 12],
    ("zorder", 4): [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15],
    ("zigzag", 4): [0, 1, 4, 8, 5, 2, 3, 6, 9, 12, 13, 10, 7, 11, 14, 15],
    ("hilbert", 4): [0, 1, 5, 4, 8, 12, 13, 9, 10, 14, 15, 11, 7, 6, 2, 3],
    ("hilbert", 8): [
        0, 8, 9, 1, 2, 3, 11, 10, 18, 19, 27, 26, 25, 17, 16, 24, 32, 33, 41, 40, 48, 56, 57, 49, 50, 58, 59, 51,
        43, 42, 34, 35, 36, 37, 45, 44, 52, 60, 61, 53, 54, 62, 63, 55, 47, 46, 38, 39, 31, 23, 22, 30, 29, 28,
        20, 21, 13, 12, 4, 5, 6, 14, 15, 7,
    ],
    ("zorder", 8): [
        0, 1, 8, 9, 2, 3, 10, 11, 16, 17, 24, 25, 18, 19, 26, 27, 4, 5, 12, 13, 6, 7, 14, 15, 20, 21, 28, 29, 22,
        23, 30, 31, 32, 33, 40, 41, 34, 35, 42, 43, 48, 49, 56, 57, 50, 51, 58, 59, 36, 37, 44, 45, 38, 39, 46, 47,
        52, 53, 60, 61, 54, 55, 62, 63,
    ],
    ("zigzag", 8): [
        0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14,
        21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53,
        60, 61, 54, 47, 55, 62, 63,
    ],
}  # fmt: skip

sizes = st.integers(min_value=1, max_value=40)


@pytest.mark.parametrize(("name", "size"), sorted(A6_VECTORS))
def test_spec_a6_vectors(name: str, size: int) -> None:
    perm = order(name, size, size)
    assert perm.dtype == np.int64
    assert perm.tolist() == A6_VECTORS[(name, size)]


def test_sweep_and_snake_8x8_by_hand() -> None:
    assert order("sweep", 8, 8).tolist() == list(range(64))
    rows = [list(range(8 * r, 8 * r + 8)) for r in range(8)]
    expected = [cell for r, row in enumerate(rows) for cell in (row if r % 2 == 0 else row[::-1])]
    assert order("scan", 8, 8).tolist() == expected


def _classic_hilbert(n: int) -> np.ndarray:
    """Textbook d -> (x, y) Hilbert decoding (Wikipedia's d2xy), mapped with x = column, y = row."""
    out = np.empty(n * n, dtype=np.int64)
    for d in range(n * n):
        x = y = 0
        t, s = d, 1
        while s < n:
            rx = 1 & (t // 2)
            ry = 1 & (t ^ rx)
            if ry == 0:
                if rx == 1:
                    x, y = s - 1 - x, s - 1 - y
                x, y = y, x
            x, y = x + s * rx, y + s * ry
            t //= 4
            s *= 2
        out[d] = y * n + x
    return out


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64])
def test_hilbert_equals_classic_on_power_of_two_squares(n: int) -> None:
    np.testing.assert_array_equal(order("hilbert", n, n), _classic_hilbert(n))


def _morton_square(p: int) -> list[tuple[int, int]]:
    """Z curve of a p × p grid (p a power of two) built by recursive quadrants: TL, TR, BL, BR."""
    if p == 1:
        return [(0, 0)]
    half = p // 2
    inner = _morton_square(half)
    cells = []
    for dr, dc in ((0, 0), (0, half), (half, 0), (half, half)):
        cells += [(r + dr, c + dc) for r, c in inner]
    return cells


def _zigzag_loops(h: int, w: int) -> list[int]:
    """JPEG zig-zag walked with explicit loops (spec A.6 rule generalised to h × w)."""
    out = []
    for d in range(h + w - 1):
        if d % 2 == 0:
            for col in range(max(0, d - h + 1), min(d, w - 1) + 1):
                out.append((d - col) * w + col)
        else:
            for row in range(max(0, d - w + 1), min(d, h - 1) + 1):
                out.append(row * w + (d - row))
    return out


def _cells(perm: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    return np.divmod(perm, w)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(SCAN_NAMES), h=sizes, w=sizes)
def test_every_curve_is_a_permutation_and_inverse_round_trips(name: str, h: int, w: int) -> None:
    perm = order(name, h, w)
    assert perm.shape == (h * w,) and perm.dtype == np.int64
    np.testing.assert_array_equal(np.sort(perm), np.arange(h * w))
    inv = inverse(perm)
    np.testing.assert_array_equal(inv[perm], np.arange(h * w))
    np.testing.assert_array_equal(perm[inv], np.arange(h * w))
    grid = np.random.default_rng(h * 100 + w).normal(size=h * w)
    np.testing.assert_array_equal(grid[perm][inv], grid)


@settings(max_examples=80, deadline=None)
@given(h=sizes, w=sizes)
def test_hilbert_steps_are_4_neighbours_and_start_top_left(h: int, w: int) -> None:
    perm = order("hilbert", h, w)
    rows, cols = _cells(perm, w)
    steps = np.abs(np.diff(rows)) + np.abs(np.diff(cols))
    assert (steps == 1).all()
    assert perm[0] == 0
    # documented end cell: along the columns unless the rows are the major axis (see the module docstring)
    if w >= h:
        along_cols = not (w % 2 == 1 and h % 2 == 0)
    else:
        along_cols = h % 2 == 1 and w % 2 == 0
    if h * w > 1:
        assert perm[-1] == ((w - 1) if along_cols else (h - 1) * w)


@pytest.mark.parametrize(("h", "w"), [(4, 5), (5, 4), (6, 7), (2, 9), (1, 17), (17, 1), (12, 18), (31, 64), (3, 3)])
def test_hilbert_4_neighbours_on_odd_even_shapes(h: int, w: int) -> None:
    rows, cols = _cells(order("hilbert", h, w), w)
    assert (np.abs(np.diff(rows)) + np.abs(np.diff(cols)) == 1).all()


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes)
def test_snake_steps_are_4_neighbours_and_rows_alternate(h: int, w: int) -> None:
    perm = order("scan", h, w)
    rows, cols = _cells(perm, w)
    assert (np.abs(np.diff(rows)) + np.abs(np.diff(cols)) == 1).all()
    np.testing.assert_array_equal(rows, np.repeat(np.arange(h), w))


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes)
def test_sweep_is_raster(h: int, w: int) -> None:
    np.testing.assert_array_equal(order("sweep", h, w), np.arange(h * w))


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes)
def test_zorder_is_the_enclosing_morton_curve_restricted(h: int, w: int) -> None:
    p = 1
    while p < max(h, w):
        p *= 2
    expected = [r * w + c for r, c in _morton_square(p) if r < h and c < w]
    assert order("zorder", h, w).tolist() == expected


@settings(max_examples=60, deadline=None)
@given(h=sizes, w=sizes)
def test_zigzag_matches_loops_and_moves_to_8_neighbours(h: int, w: int) -> None:
    perm = order("zigzag", h, w)
    assert perm.tolist() == _zigzag_loops(h, w)
    rows, cols = _cells(perm, w)
    assert (np.maximum(np.abs(np.diff(rows)), np.abs(np.diff(cols))) == 1).all()


def test_returned_arrays_are_copies_of_the_cache() -> None:
    first = order("hilbert", 6, 5)
    expected = first.copy()
    first[:] = 0
    np.testing.assert_array_equal(order("hilbert", 6, 5), expected)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="hilbert"):
        order("spiral", 4, 4)
    for h, w in [(0, 4), (4, -1), (2.5, 3)]:
        with pytest.raises(InputError):
            order("sweep", h, w)
    with pytest.raises(InputError):
        inverse(np.array([0, 0, 1]))
    with pytest.raises(InputError):
        inverse(np.arange(4).reshape(2, 2))
