"""PatchExpand against a loop-based pixel shuffle written here, plus shapes, names and bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssmad.errors import ConfigError, InputError
from ssmad.layers.upsample import PatchExpand


def _reference(x, weight, ln_w, ln_b, scale, out_dim, eps=1e-5):
    b, h, w, _ = x.shape
    y = x @ weight.T  # (b, h, w, s*s*out)
    out = torch.empty(b, h * scale, w * scale, out_dim)
    for i in range(h):
        for j in range(w):
            for p1 in range(scale):
                for p2 in range(scale):
                    k = p1 * scale + p2
                    out[:, i * scale + p1, j * scale + p2] = y[:, i, j, k * out_dim : (k + 1) * out_dim]
    return F.layer_norm(out, (out_dim,), ln_w, ln_b, eps)


@pytest.mark.parametrize(("in_dim", "out_dim", "scale"), [(8, None, 2), (6, 5, 2), (4, 3, 3)])
def test_matches_loop_pixel_shuffle(in_dim, out_dim, scale):
    m = PatchExpand(in_dim, out_dim, scale=scale)
    with torch.no_grad():
        m.norm.weight.uniform_(0.5, 1.5)
        m.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 4, in_dim)
    od = in_dim // 2 if out_dim is None else out_dim
    ref = _reference(x, m.expand.weight, m.norm.weight, m.norm.bias, scale, od)
    out = m(x)
    assert out.shape == (2, 3 * scale, 4 * scale, od)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_mambaad_patch_expand_shape_and_names():
    # MambaAD PatchExpand2D(dim=256): Linear(512 -> 1024, no bias) + LayerNorm(256)
    m = PatchExpand(512)
    assert tuple(m.expand.weight.shape) == (1024, 512)
    assert m.expand.bias is None
    assert set(m.state_dict()) == {"expand.weight", "norm.weight", "norm.bias"}
    assert sum(p.numel() for p in m.parameters()) == 512 * 1024 + 2 * 256
    assert m(torch.randn(1, 8, 8, 512)).shape == (1, 16, 16, 256)


def test_bad_input_and_config():
    with pytest.raises(InputError, match="channels-last"):
        PatchExpand(8)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ConfigError):
        PatchExpand(8, 0)
