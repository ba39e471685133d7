"""LSS: MambaAD's Locality-enhanced State Space module (spec A.4).

A Mamba decoder sees the whole map through its scans but is weak at local texture, which is what industrial
defects are made of. The LSS module therefore runs, side by side on the same channels-last input ``x``:

* a **global** branch: a cascade of 2 or 3 :class:`~ssmad.layers.ss2d.HSSBlock` (multi-direction selective
  scans, each ``y = x + DropPath(SS2D(LayerNorm(x)))``);
* one **local** branch per kernel size ``k`` (5 and 7 in the paper): ``Conv1×1 → IN → SiLU → depthwise Conv k×k
  (no bias) → IN → SiLU → Conv1×1 → IN → SiLU``, where IN is :class:`torch.nn.InstanceNorm2d` with PyTorch's
  defaults (no affine parameters, no running statistics);

then fuses them with a 1×1 convolution and adds the input::

    y = x + Conv1×1_{(1 + n_k)·C → C}( concat_channels[ HSS…HSS(x), B_5(x), B_7(x) ] )

Parameter names follow the MambaAD repository (``smm_blocks``, ``conv1b5``/``conv55``/``conv1a5``,
``conv1b7``/``conv77``/``conv1a7``, ``finalconv11``) so its checkpoints load after the renaming described in spec
A.4 (ADer's copies call the 7×7 wrappers ``conv1b3``/``conv1a3`` and carry an unused ``conv33``).

Initialisation (as upstream): every ``nn.Conv2d`` inside the module — the branch convolutions, the fusion conv and
the depthwise conv inside each SS2D — gets ``N(0, sqrt(2 / fan_out))`` weights with ``fan_out = k·k·C_out/groups``
and zero bias. (A decoder built of LSS modules later re-initialises its ``nn.Linear`` and ``nn.LayerNorm``.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from ..ssm import is_tracing
from .norm_act import instance_norm_silu, instance_norm_silu_available
from .ss2d import HSSBlock

__all__ = ["LSSModule", "init_conv_fan_out_"]


def init_conv_fan_out_(module: nn.Module) -> None:
    """Initialise every ``nn.Conv2d`` in ``module`` with ``N(0, sqrt(2 / fan_out))`` weights and zero bias.

    ``fan_out = kernel_h · kernel_w · out_channels / groups`` (MambaAD's LSS initialisation).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.zero_()


def _conv_in_silu(dim: int, kernel_size: int, depthwise: bool) -> nn.Sequential:
    """``Conv2d → InstanceNorm2d → SiLU`` (1×1 with bias, or depthwise k×k without bias, 'same' padding)."""
    conv = nn.Conv2d(
        dim,
        dim,
        kernel_size=kernel_size,
        padding=kernel_size // 2,
        groups=dim if depthwise else 1,
        bias=not depthwise,
    )
    return nn.Sequential(conv, nn.InstanceNorm2d(dim), nn.SiLU())


def conv_branch(module: nn.Module, x: Tensor, k: int) -> Tensor:
    """``conv1b{k}`` → ``conv{k}{k}`` → ``conv1a{k}`` of ``module`` on a map ``(batch, C, H, W)``; same shape out.

    Each stage is ``Conv → InstanceNorm2d → SiLU``. On the CPU in float32 the whole branch stays in channels-last
    memory (LSS hands it a channels-last view): the convolutions produce channels-last maps and the norm and SiLU
    run as one compiled kernel on them (:func:`ssmad.layers.norm_act.instance_norm_silu`; 1.8–4.8× faster than
    PyTorch's pair, which converts to channels-first and back). Otherwise the three modules run as they are, with the
    depthwise convolution given channels-last memory on the CPU: PyTorch's gradients of a depthwise convolution are
    about 4× faster there (7×7, 24 channels, 64×64, batch 8: 5.9 against 23.4 ms). The values are the same either way.
    """
    stages = [getattr(module, name) for name in (f"conv1b{k}", f"conv{k}{k}", f"conv1a{k}")]
    channels_last = x.device.type == "cpu" and not is_tracing()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)  # a view for LSS's input: no copy
        if instance_norm_silu_available(x) and all(_is_conv_in_silu(stage) for stage in stages):
            for stage in stages:
                x = instance_norm_silu(stage[0](x), stage[1].eps)
            return x
    x = stages[0](x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x = stages[1](x)
    return cast(Tensor, stages[2](x))


def _is_conv_in_silu(stage: nn.Module) -> bool:
    """Whether ``stage`` is ``Sequential(Conv2d, InstanceNorm2d without affine or running statistics, SiLU)``."""
    return (
        isinstance(stage, nn.Sequential)
        and len(stage) == 3
        and isinstance(stage[0], nn.Conv2d)
        and isinstance(stage[1], nn.InstanceNorm2d)
        and not stage[1].affine
        and not stage[1].track_running_stats
        and isinstance(stage[2], nn.SiLU)
    )


class LSSModule(nn.Module):
    """Locality-enhanced State Space module on channels-last maps.

    Args:
        dim: Channels C.
        depth: Number of HSS blocks in the global branch (MambaAD: 2 or 3).
        drop_path: Stochastic-depth probability shared by the module's HSS blocks.
        kernel_sizes: Kernel sizes of the local depthwise branches (odd; MambaAD: ``(5, 7)``); empty for none.
        norm_eps: LayerNorm epsilon inside the HSS blocks.
        **ss2d_kwargs: Passed to every :class:`~ssmad.layers.ss2d.SS2D` (``d_state``, ``num_directions``,
            ``scan_type``, ``scan_backend`` …).
    """

    def __init__(
        self,
        dim: int,
        depth: int = 3,
        drop_path: float = 0.0,
        kernel_sizes: Sequence[int] = (5, 7),
        norm_eps: float = 1e-5,
        **ss2d_kwargs: object,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ConfigError(f"an LSS module needs at least one HSS block, got depth={depth}")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes) or len(set(kernel_sizes)) != len(kernel_sizes):
            raise ConfigError(f"LSS kernel sizes must be distinct positive odd integers, got {kernel_sizes}")
        self.dim = dim
        self.kernel_sizes = kernel_sizes
        self.smm_blocks = nn.ModuleList(
            HSSBlock(dim, drop_path=drop_path, norm_eps=norm_eps, **ss2d_kwargs) for _ in range(depth)
        )
        for k in kernel_sizes:
            setattr(self, f"conv1b{k}", _conv_in_silu(dim, 1, depthwise=False))
            setattr(self, f"conv{k}{k}", _conv_in_silu(dim, k, depthwise=True))
            setattr(self, f"conv1a{k}", _conv_in_silu(dim, 1, depthwise=False))
        self.finalconv11 = nn.Conv2d((1 + len(kernel_sizes)) * dim, dim, kernel_size=1)
        init_conv_fan_out_(self)

    def local_branch(self, x: Tensor, k: int) -> Tensor:
        """The ``k × k`` local branch on a channels-first map ``(batch, C, H, W)``; same shape out."""
        return conv_branch(self, x, k)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the module.

        Args:
            x: Channels-last map, shape ``(batch, H, W, dim)``.

        Returns:
            Shape ``(batch, H, W, dim)``.
        """
        if x.dim() != 4 or x.shape[-1] != self.dim:
            raise InputError(f"LSSModule expects a channels-last map (batch, H, W, {self.dim}), got {tuple(x.shape)}")
        glob = x
        for blk in self.smm_blocks:
            glob = blk(glob)
        x_cf = rearrange(x, "b h w c -> b c h w")
        branches = [rearrange(glob, "b h w c -> b c h w")]
        branches += [self.local_branch(x_cf, k) for k in self.kernel_sizes]
        fused = self.finalconv11(torch.cat(branches, dim=1))
        return x + rearrange(fused, "b c h w -> b h w c")

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"dim={self.dim}, depth={len(self.smm_blocks)}, kernel_sizes={self.kernel_sizes}"
