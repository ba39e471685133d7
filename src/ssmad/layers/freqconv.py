"""Frequency-enhanced convolution: a learnable global filter in the 2-D Fourier domain beside a depthwise conv.

*Inspired-by* MambaADv2 (spec B): the abstract replaces MambaAD's 5×5/7×7 depthwise branches with
"frequency-enhanced convolution" but does not say which operator; this is our choice (README: "MambaADv2:
interpretations")::

    x (B, C, H, W) ─ Conv1×1 → IN → SiLU ─┬─ depthwise Conv3×3 (local texture) ────────────────┐
                                          └─ irfft2( rfft2(·) ⊙ W_freq ) (global, per channel) ─┴─ + → IN → SiLU
                                                                              → Conv1×1 → IN → SiLU

``W_freq`` is a complex weight per channel and frequency (a GFNet-style global filter), stored as real/imaginary
parts of shape ``(C, h, w // 2 + 1, 2)`` for a reference map size ``h × w``; maps of another size use the weight
bilinearly resized to their own frequency grid. It is initialised to a small constant real filter
(``0.02 + 0j``), i.e. a near-zero scaled identity, so the branch starts as the depthwise convolution.

The 1×1 / InstanceNorm / SiLU wrappers are those of MambaAD's LSS branches (:mod:`ssmad.layers.lss`), so the
switch between the two operators changes only the middle. ONNX: ``torch.fft.rfft2`` / ``irfft2`` export through
the dynamo exporter's DFT op (opset ≥ 17); the legacy TorchScript exporter does not support them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FrequencyConv", "GlobalFilter"]


class GlobalFilter(nn.Module):
    """Per-channel learnable filter applied by multiplication in the 2-D real FFT domain.

    Args:
        dim: Channels C.
        size: Reference map size ``(h, w)`` the weight is stored for.
        init: Initial real value of every frequency coefficient.
    """

    def __init__(self, dim: int, size: tuple[int, int], init: float = 0.02) -> None:
        super().__init__()
        h, w = int(size[0]), int(size[1])
        weight = torch.zeros(dim, h, w // 2 + 1, 2)
        weight[..., 0] = init
        self.weight = nn.Parameter(weight)
        self.size = (h, w)

    def filter_for(self, h: int, w: int) -> Tensor:
        """The complex filter ``(C, h, w // 2 + 1)`` for an ``h × w`` map (resized when not the reference size)."""
        weight: Tensor = self.weight
        if (h, w // 2 + 1) != tuple(weight.shape[1:3]):
            grid = weight.permute(0, 3, 1, 2)  # (C, 2, h0, w0')
            grid = F.interpolate(grid, size=(h, w // 2 + 1), mode="bilinear", align_corners=True)
            weight = grid.permute(0, 2, 3, 1)
        return torch.view_as_complex(weight.float().contiguous())

    def forward(self, x: Tensor) -> Tensor:
        """Filter ``(batch, C, H, W)``; same shape and dtype out."""
        h, w = x.shape[-2:]
        spec = torch.fft.rfft2(x.float(), norm="ortho")
        out = torch.fft.irfft2(spec * self.filter_for(h, w), s=(h, w), norm="ortho")
        return out.to(x.dtype)


class FrequencyConv(nn.Module):
    """Frequency-enhanced convolution branch (module docstring).

    Args:
        dim: Channels C.
        size: Reference map size of the global filter.
        kernel_size: Kernel of the depthwise convolution beside the filter (odd).
    """

    def __init__(self, dim: int, size: tuple[int, int], kernel_size: int = 3) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.InstanceNorm2d(dim), nn.SiLU())
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        self.global_filter = GlobalFilter(dim, size)
        self.mid = nn.Sequential(nn.InstanceNorm2d(dim), nn.SiLU())
        self.post = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.InstanceNorm2d(dim), nn.SiLU())

    def forward(self, x: Tensor) -> Tensor:
        """Apply the branch to a channels-first map ``(batch, C, H, W)``; same shape out."""
        x = self.pre(x)
        x = self.mid(self.dwconv(x) + self.global_filter(x))
        return self.post(x)
