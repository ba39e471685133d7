"""K-direction gather tables, checked against torch.rot90 / transpose / flip of a 2-D index map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ssmad.errors import ConfigError
from ssmad.scans import (
    SCAN_NAMES,
    direction_arrays,
    direction_ids,
    direction_tables,
    gather_directions,
    merge_directions,
    order,
)


def _torch_frame(grid: torch.Tensor, k: int) -> torch.Tensor:
    """Spatial transform of direction k, written with torch ops exactly as spec A.6 lists them."""
    k %= 4
    if k == 0:
        return grid
    if k == 1:
        return grid.transpose(0, 1)
    rotated = torch.rot90(grid, k=1, dims=(0, 1))
    return rotated if k == 2 else rotated.transpose(0, 1)


def _expected_index(name: str, h: int, w: int, k: int) -> torch.Tensor:
    frame = _torch_frame(torch.arange(h * w).view(h, w), k)
    seq = frame.reshape(-1)[torch.from_numpy(order(name, *frame.shape))]
    return torch.flip(seq, dims=[0]) if k >= 4 else seq


def test_direction_sets_follow_mambaad() -> None:
    assert direction_ids(1) == (0,)
    assert direction_ids(2) == (0, 4)
    assert direction_ids(4) == (0, 1, 4, 5)
    assert direction_ids(8) == tuple(range(8))
    for bad in (0, 3, 6, 16):
        with pytest.raises(ConfigError):
            direction_ids(bad)


def test_hand_computed_sweep_tables_on_2x3() -> None:
    # map [[0, 1, 2], [3, 4, 5]]; rot90 (counter-clockwise) = [[2, 5], [1, 4], [0, 3]]
    index, inverse = direction_tables("sweep", 2, 3, 8)
    expected = [
        [0, 1, 2, 3, 4, 5],  # identity
        [0, 3, 1, 4, 2, 5],  # transpose
        [2, 5, 1, 4, 0, 3],  # rot90
        [2, 1, 0, 5, 4, 3],  # transpose of rot90 = left-right mirror
    ]
    expected += [row[::-1] for row in expected]
    assert index.tolist() == expected
    assert index.dtype == torch.int64 and inverse.dtype == torch.int64


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(SCAN_NAMES),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    num_directions=st.sampled_from([1, 2, 4, 8]),
)
def test_tables_match_torch_transforms(name: str, h: int, w: int, num_directions: int) -> None:
    index, inverse = direction_tables(name, h, w, num_directions)
    assert index.shape == inverse.shape == (num_directions, h * w)
    for slot, k in enumerate(direction_ids(num_directions)):
        torch.testing.assert_close(index[slot], _expected_index(name, h, w, k), rtol=0, atol=0)
        torch.testing.assert_close(index[slot][inverse[slot]], torch.arange(h * w), rtol=0, atol=0)


@pytest.mark.parametrize(("h", "w"), [(4, 4), (3, 5), (6, 2), (1, 7)])
@pytest.mark.parametrize("name", SCAN_NAMES)
def test_gather_reads_the_transformed_frames_and_merge_undoes_them(name: str, h: int, w: int) -> None:
    x = torch.randn(2, 3, h, w)
    index, inverse = direction_tables(name, h, w, 8)
    seqs = gather_directions(x.flatten(2), index)
    assert seqs.shape == (2, 8, 3, h * w)
    for k in range(8):
        frame = _torch_frame(x.permute(2, 3, 0, 1), k).permute(2, 3, 0, 1)  # transform the spatial dims
        expected = frame.flatten(2)[..., torch.from_numpy(order(name, *frame.shape[-2:]))]
        if k >= 4:
            expected = expected.flip(-1)
        torch.testing.assert_close(seqs[:, k], expected, rtol=0, atol=0)
    # each direction decodes to the original map, so the merged sum is K times the map
    torch.testing.assert_close(merge_directions(seqs, inverse), 8 * x.flatten(2))


def test_merge_puts_each_direction_back_before_summing() -> None:
    h, w = 3, 4
    index, inverse = direction_tables("hilbert", h, w, 4)
    y = torch.randn(1, 4, 2, h * w)
    expected = torch.zeros(1, 2, h * w)
    for k in range(4):
        expected[..., index[k]] += y[:, k]  # sequence position j of direction k lands on raster cell index[k, j]
    torch.testing.assert_close(merge_directions(y, inverse), expected)


def test_gather_and_merge_are_adjoint() -> None:
    """Values and both backwards against plain indexing loops written here (not the functions under test)."""
    index, inverse = direction_tables("zigzag", 5, 3, 8)
    x = torch.randn(2, 4, 15, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 8, 4, 15, dtype=torch.float64, requires_grad=True)
    gathered_ref = torch.stack([x.detach()[:, :, index[k]] for k in range(8)], dim=1)
    merged_ref = sum(y.detach()[:, k][:, :, inverse[k]] for k in range(8))
    torch.testing.assert_close(gather_directions(x, index), gathered_ref)
    torch.testing.assert_close(merge_directions(y, inverse), merged_ref)
    g = torch.randn_like(gathered_ref)
    (gather_directions(x, index) * g).sum().backward()
    m = torch.randn_like(merged_ref)
    (merge_directions(y, inverse) * m).sum().backward()
    grad_x_ref = torch.zeros_like(merged_ref)
    for k in range(8):
        grad_x_ref[:, :, index[k]] += g[:, k]
    torch.testing.assert_close(x.grad, grad_x_ref)
    torch.testing.assert_close(y.grad, torch.stack([m[:, :, index[k]] for k in range(8)], dim=1))


def test_numpy_tables_are_cached_read_only_and_tensors_are_fresh() -> None:
    index_np, inverse_np = direction_arrays("hilbert", 5, 6, 8)
    assert not index_np.flags.writeable and not inverse_np.flags.writeable
    assert direction_arrays("hilbert", 5, 6, 8)[0] is index_np
    index, _ = direction_tables("hilbert", 5, 6, 8)
    index.zero_()
    np.testing.assert_array_equal(direction_tables("hilbert", 5, 6, 8)[0].numpy(), index_np)
    with pytest.raises(ConfigError):
        direction_tables("hilbert", 5, 6, 3)
