"""DSS module and the frequency-enhanced convolution: the Fourier filter against a direct DFT, the fallback to
MambaAD's branches, residual structure, shapes at other sizes and bad configurations."""

from __future__ import annotations

import pytest
import torch

from ssmad.errors import ConfigError, InputError
from ssmad.layers.dss import DSSModule
from ssmad.layers.freqconv import FrequencyConv, GlobalFilter

SSD = dict(d_state=4, headdim=4, num_directions=2, scan_backend="reference")


def test_global_filter_is_a_per_channel_circular_convolution() -> None:
    """Multiplying the rfft2 by W equals circular convolution with the kernel irfft2(W), written as a double loop."""
    torch.manual_seed(0)
    f = GlobalFilter(2, (4, 6))
    with torch.no_grad():
        f.weight.normal_()
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64)
    got = f(x)
    w = f.filter_for(4, 6).to(torch.complex128)
    # the filter's kernel in space: irfft2 of W with the plain 1/(HW) inverse (the two ortho factors cancel)
    kernel = torch.fft.irfft2(w, s=(4, 6))
    ref = torch.zeros_like(x)
    for c in range(2):
        for i in range(4):
            for j in range(6):
                for u in range(4):
                    for v in range(6):
                        ref[0, c, i, j] += x[0, c, u, v] * kernel[c, (i - u) % 4, (j - v) % 6]
    assert torch.allclose(got, ref, atol=1e-5)


def test_global_filter_resizes_to_other_map_sizes() -> None:
    f = GlobalFilter(3, (8, 8))
    assert f(torch.randn(2, 3, 12, 10)).shape == (2, 3, 12, 10)
    assert f.filter_for(12, 10).shape == (3, 12, 6)


def test_initial_filter_is_a_scaled_identity() -> None:
    f = GlobalFilter(2, (5, 7), init=0.02)
    x = torch.randn(1, 2, 5, 7)
    assert torch.allclose(f(x), 0.02 * x, atol=1e-6)


def test_dss_switch_falls_back_to_mambaad_branches() -> None:
    torch.manual_seed(0)
    freq = DSSModule(8, 2, (4, 4), freq_conv=True, **SSD)
    lss = DSSModule(8, 2, (4, 4), freq_conv=False, kernel_sizes=(5, 7), **SSD)
    assert isinstance(freq.freq, FrequencyConv) and not hasattr(freq, "conv55")
    assert lss.freq is None and hasattr(lss, "conv55") and hasattr(lss, "conv77")
    assert freq.finalconv11.in_channels == 16 and lss.finalconv11.in_channels == 24
    x = torch.randn(2, 4, 4, 8)
    for m in (freq, lss):
        y = m(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        with torch.no_grad():
            m.finalconv11.weight.zero_()
            m.finalconv11.bias.zero_()
        assert torch.equal(m(x), x)  # y = x + fuse(...)


def test_dss_passes_the_direction_count_to_its_blocks() -> None:
    torch.manual_seed(0)
    m = DSSModule(8, 1, (4, 4), **SSD)
    x = torch.randn(1, 4, 4, 8)
    assert not torch.allclose(m(x, 1), m(x, 8), atol=1e-6)


def test_dss_bad_config_and_input() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        DSSModule(8, 0, (4, 4), **SSD)
    with pytest.raises(InputError, match="channels-last"):
        DSSModule(8, 1, (4, 4), **SSD)(torch.randn(1, 8, 4, 4))
