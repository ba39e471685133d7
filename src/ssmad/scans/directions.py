"""K-direction scan tables: read one 2-D map as K sequences and sum the K results back onto the map.

MambaAD's hybrid scanning (spec A.6) reads a map through up to eight *directions*. Direction ``k`` first applies a
spatial transform ``T_{k mod 4}`` to the ``(H, W)`` map, then flattens the transformed frame with the scan curve of
that frame's own size, and directions 4–7 reverse the sequences of directions 0–3:

===  ==================================================  ==============
k    transform of the (H, W) map                          frame size
===  ==================================================  ==============
0    identity                                             (H, W)
1    transpose                                            (W, H)
2    ``torch.rot90(k=1)`` over (H, W)  (counter-clockwise)  (W, H)
3    transpose of ``rot90(k=1)``  (= a left-right mirror)  (H, W)
4–7  directions 0–3 read backwards along the sequence     as 0–3
===  ==================================================  ==============

The same curve (``hilbert``, ``zorder``, …) is used in every frame; on a non-square map the transposed and
rotated frames are ``W × H``, so they use the curve of a ``W × H`` grid. The direction sets follow MambaAD's code
(sequences stacked first, then their reverses appended):

* ``K = 1``: ``(0,)`` (a single forward scan; MambaAD itself needs ``K >= 2``),
* ``K = 2``: ``(0, 4)`` — the map and its reverse,
* ``K = 4``: ``(0, 1, 4, 5)`` — map, transpose, reverse of the map, reverse of the transpose (VMamba's CrossScan),
* ``K = 8``: ``(0, 1, 2, 3, 4, 5, 6, 7)``.

Everything is expressed as gather tables over the raster-flattened map ``x_flat`` (``(..., H * W)``, index
``row * W + col``): ``index[k, j]`` is the raster cell read at step ``j`` of direction ``k``, so
``seq_k = x_flat[..., index[k]]``; ``inverse[k]`` is its inverse permutation, so the output of direction ``k``
lands back in raster order as ``y_k = seq_out_k[..., inverse[k]]``. The K raster outputs are summed (not averaged).
"""

from __future__ import annotations

import functools
from typing import cast

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from .orders import check_scan_name, order

DIRECTION_SETS: dict[int, tuple[int, ...]] = {
    1: (0,),
    2: (0, 4),
    4: (0, 1, 4, 5),
    8: (0, 1, 2, 3, 4, 5, 6, 7),
}

__all__ = [
    "DIRECTION_SETS",
    "direction_arrays",
    "direction_ids",
    "direction_tables",
    "gather_directions",
    "merge_directions",
    "transform_frame",
]


def direction_ids(num_directions: int) -> tuple[int, ...]:
    """Direction numbers (0–7, see the module docstring) used for ``num_directions`` sequences.

    Raises:
        ConfigError: ``num_directions`` is not 1, 2, 4 or 8.
    """
    if num_directions not in DIRECTION_SETS:
        raise ConfigError(f"num_directions={num_directions!r} is not supported: choose 1, 2, 4 or 8 (MambaAD uses 8).")
    return DIRECTION_SETS[num_directions]


def transform_frame(grid: np.ndarray, direction: int) -> np.ndarray:
    """Apply the spatial transform of ``direction`` (only ``direction % 4`` matters) to a 2-D array.

    Args:
        grid: Array of shape ``(H, W)``.
        direction: Direction number 0–7.

    Returns:
        The transformed frame, shape ``(H, W)`` for directions 0 and 3, ``(W, H)`` for 1 and 2.
    """
    spatial = direction % 4
    if spatial == 0:
        return grid
    if spatial == 1:
        return grid.T
    rotated = np.rot90(grid, k=1, axes=(0, 1))  # same rotation as torch.rot90(k=1, dims=(0, 1))
    return rotated if spatial == 2 else rotated.T


def _direction_index(name: str, h: int, w: int, direction: int) -> np.ndarray:
    frame = transform_frame(np.arange(h * w, dtype=np.int64).reshape(h, w), direction)
    seq = frame.reshape(-1)[order(name, *frame.shape)]
    return seq[::-1] if direction >= 4 else seq


@functools.lru_cache(maxsize=128)
def _cached_arrays(name: str, h: int, w: int, num_directions: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.stack([_direction_index(name, h, w, k) for k in direction_ids(num_directions)])
    inverse = np.empty_like(index)
    rows = np.arange(index.shape[0])[:, None]
    inverse[rows, index] = np.arange(h * w, dtype=np.int64)[None, :]
    index.flags.writeable = False
    inverse.flags.writeable = False
    return index, inverse


def direction_arrays(name: str, h: int, w: int, num_directions: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather tables of the K directions as read-only numpy arrays (cached per ``(name, h, w, K)``).

    Args:
        name: Scan curve (see :func:`ssmad.scans.order`).
        h: Map height.
        w: Map width.
        num_directions: K = 1, 2, 4 or 8.

    Returns:
        ``(index, inverse)``, int64 arrays of shape ``(K, H * W)``, read-only.
    """
    check_scan_name(name)
    direction_ids(num_directions)
    order(name, h, w)  # validates the size
    return _cached_arrays(name, int(h), int(w), int(num_directions))


def direction_tables(
    name: str, h: int, w: int, num_directions: int, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Gather tables of the K directions as torch tensors.

    Args:
        name: Scan curve (see :func:`ssmad.scans.order`).
        h: Map height.
        w: Map width.
        num_directions: K = 1, 2, 4 or 8.
        device: Where to put the tables.

    Returns:
        ``(index, inverse)``, fresh int64 tensors of shape ``(K, H * W)``: ``seqs = x_flat[..., index]`` reads the
        K sequences (``(..., K, L)``) and ``y_k = seq_out_k[..., inverse[k]]`` puts direction ``k`` back in raster
        order.
    """
    index, inverse = direction_arrays(name, h, w, num_directions)
    return (
        torch.tensor(index, dtype=torch.int64, device=device),
        torch.tensor(inverse, dtype=torch.int64, device=device),
    )


def _gather(x: Tensor, index: Tensor) -> Tensor:
    batch, dim, length = x.shape
    k = index.shape[0]
    source = x.unsqueeze(1).expand(batch, k, dim, length)
    return torch.gather(source, 3, index[None, :, None, :].expand(batch, k, dim, length))


def _merge(y: Tensor, inverse: Tensor) -> Tensor:
    # Same sums as torch.gather(y, 3, inverse[None, :, None, :].expand_as(y)).sum(dim=1), one direction at a time,
    # without materialising the gathered (batch, K, D, L) tensor.
    batch, k, dim, length = y.shape
    out = torch.gather(y[:, 0], 2, inverse[0].expand(batch, dim, length))
    for i in range(1, k):
        out = out + torch.gather(y[:, i], 2, inverse[i].expand(batch, dim, length))
    return out


def _invert(table: Tensor) -> Tensor:
    """Row-wise inverse permutation of a ``(K, L)`` table."""
    positions = torch.arange(table.shape[1], device=table.device).expand_as(table)
    return torch.empty_like(table).scatter_(1, table, positions)


class _GatherDirections(torch.autograd.Function):
    """Gather with its adjoint as backward: a merge with the inverse tables.

    Autograd's own backward of the gather would scatter-add into a zero tensor of the expanded
    ``(batch, K, D, L)`` source and then sum it over K.
    """

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        return _gather(x, index)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        return merge_directions(grad, _invert(index)), None


class _MergeDirections(torch.autograd.Function):
    """Merge with its adjoint as backward: a gather with the forward tables.

    Autograd's own backward would build one zero ``(batch, K, D, L)`` tensor per direction (one per ``y[:, k]``)
    and add them up.
    """

    @staticmethod
    def forward(ctx, y: Tensor, inverse: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(inverse)
        return _merge(y, inverse)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:  # type: ignore[override]
        (inverse,) = ctx.saved_tensors
        return gather_directions(grad, _invert(inverse)), None


def gather_directions(x: Tensor, index: Tensor) -> Tensor:
    """Read a raster-flattened map along the K directions.

    ``seqs[b, k, d, j] = x[b, d, index[k, j]]``. The backward is the adjoint map, :func:`merge_directions` with the
    inverse tables, so every row of ``index`` must be a permutation of ``0 … L - 1`` (as :func:`direction_tables`
    makes them).

    Args:
        x: Channels-first flattened map, shape ``(batch, D, L)``.
        index: Gather table from :func:`direction_tables`, shape ``(K, L)``.

    Returns:
        The K sequences, shape ``(batch, K, D, L)``.
    """
    return cast(Tensor, _GatherDirections.apply(x, index))


def merge_directions(y: Tensor, inverse: Tensor) -> Tensor:
    """Put every direction's output back in raster order and sum over the directions.

    ``out[b, d, p] = Σ_k y[b, k, d, inverse[k, p]]``. The backward is the adjoint map, :func:`gather_directions`
    with the forward tables (rows of ``inverse`` must be permutations, as :func:`direction_tables` makes them).

    Args:
        y: Per-direction sequence outputs, shape ``(batch, K, D, L)``.
        inverse: Inverse table from :func:`direction_tables`, shape ``(K, L)``.

    Returns:
        Sum of the K raster-ordered outputs, shape ``(batch, D, L)``.
    """
    return cast(Tensor, _MergeDirections.apply(y, inverse))
