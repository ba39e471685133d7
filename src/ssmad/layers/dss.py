"""DSS: MambaADv2's Duality-enhanced State Space module (*inspired-by*, spec B; interpretation in the README).

The abstract: DSS modules are "parallel-cascaded HSS blocks" plus "frequency-enhanced convolution" operations that
replace MambaAD's multi-kernel depthwise branches. Our reading keeps the LSS topology of MambaAD
(:mod:`ssmad.layers.lss`) — a cascade of state-space blocks in *parallel* with convolution branches, fused by a
1×1 convolution and added to the input — and swaps its parts::

    y = x + Conv1×1( concat_channels[ HSSv2 … HSSv2 (x),  FreqConv(x) ] )          (freq_conv=True)
    y = x + Conv1×1( concat_channels[ HSSv2 … HSSv2 (x),  B_5(x), B_7(x) ] )       (freq_conv=False: MambaAD's branches)

* the global branch is a cascade of :class:`~ssmad.layers.hss2.HSSv2Block` (SSD lineage, recurrent + matrix
  paths, Mamba-3 switches);
* the local branch is one :class:`~ssmad.layers.freqconv.FrequencyConv` (depthwise 3×3 + a learnable global
  Fourier filter) instead of the two 5×5 / 7×7 depthwise branches; ``freq_conv=False`` falls back to MambaAD's
  branches (``kernel_sizes``).

Initialisation as LSS: every ``nn.Conv2d`` gets ``N(0, sqrt(2 / fan_out))`` weights and zero bias.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .freqconv import FrequencyConv
from .hss2 import HSSv2Block
from .lss import _conv_in_silu, conv_branch, init_conv_fan_out_

__all__ = ["DSSModule"]


class DSSModule(nn.Module):
    """Duality-enhanced State Space module on channels-last maps.

    Args:
        dim: Channels C.
        depth: HSS-v2 blocks in the cascade.
        size: Reference map size ``(h, w)`` of the Fourier filter (the stage's size at the configured input).
        drop_path: Stochastic-depth probability shared by the module's blocks.
        freq_conv: Frequency-enhanced convolution branch; ``False`` uses MambaAD's depthwise branches.
        kernel_sizes: Kernels of MambaAD's branches (used when ``freq_conv`` is off).
        norm_eps: LayerNorm epsilon inside the blocks.
        **ssd_kwargs: Passed to every :class:`~ssmad.layers.hss2.SSD2D`.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        size: tuple[int, int],
        drop_path: float = 0.0,
        freq_conv: bool = True,
        kernel_sizes: Sequence[int] = (5, 7),
        norm_eps: float = 1e-5,
        **ssd_kwargs: object,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"a DSS module needs at least one HSS-v2 block, got depth={depth}")
        self.dim = dim
        self.freq_conv = bool(freq_conv)
        self.kernel_sizes = () if freq_conv else tuple(int(k) for k in kernel_sizes)
        self.blocks = nn.ModuleList(
            HSSv2Block(dim, drop_path=drop_path, norm_eps=norm_eps, **ssd_kwargs)  # type: ignore[arg-type]
            for _ in range(depth)
        )
        self.freq = FrequencyConv(dim, size) if freq_conv else None
        for k in self.kernel_sizes:
            setattr(self, f"conv1b{k}", _conv_in_silu(dim, 1, depthwise=False))
            setattr(self, f"conv{k}{k}", _conv_in_silu(dim, k, depthwise=True))
            setattr(self, f"conv1a{k}", _conv_in_silu(dim, 1, depthwise=False))
        n_local = 1 if freq_conv else len(self.kernel_sizes)
        self.finalconv11 = nn.Conv2d((1 + n_local) * dim, dim, kernel_size=1)
        init_conv_fan_out_(self)

    def local_branches(self, x: Tensor) -> list[Tensor]:
        """Convolution branches on a channels-first map ``(batch, C, H, W)``; each the same shape."""
        if self.freq is not None:
            return [self.freq(x)]
        return [conv_branch(self, x, k) for k in self.kernel_sizes]

    def forward(self, x: Tensor, num_directions: int | None = None) -> Tensor:
        """Apply the module.

        Args:
            x: Channels-last map ``(batch, H, W, dim)``.
            num_directions: Scan directions of the blocks for this call (default: theirs).

        Returns:
            Shape ``(batch, H, W, dim)``.
        """
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise InputError(f"DSSModule expects a channels-last map (batch, H, W, {self.dim}), got {tuple(x.shape)}")
        glob = x
        for blk in self.blocks:
            glob = blk(glob, num_directions)
        branches = [rearrange(glob, "b h w c -> b c h w"), *self.local_branches(rearrange(x, "b h w c -> b c h w"))]
        fused = self.finalconv11(torch.cat(branches, dim=1))
        return x + rearrange(fused, "b c h w -> b h w c")

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        local = "frequency-enhanced" if self.freq_conv else f"kernels {self.kernel_sizes}"
        return f"dim={self.dim}, depth={len(self.blocks)}, local={local}"
