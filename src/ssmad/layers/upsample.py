"""PatchExpand: the learned 2× upsampling between MambaAD's decoder stages (spec A.3).

Each pixel of a channels-last map is projected by a bias-free linear layer to ``scale² · C_out`` channels, which are
then laid out as a ``scale × scale`` patch of ``C_out``-channel pixels (a pixel shuffle), and the result is
layer-normalised::

    (B, H, W, C_in) ─ Linear(C_in → s²·C_out) ─ "b h w (p1 p2 c) -> b (h p1) (w p2) c" ─ LayerNorm(C_out)
                                                                                    → (B, s·H, s·W, C_out)

MambaAD's ``PatchExpand2D(dim=C_out)`` is the case ``C_in = 2 · C_out``, ``s = 2`` (``Linear(2C → 4C)``); parameter
names (``expand``, ``norm``) match it so official checkpoints load unchanged. Sub-pixel order within a patch is
``(p1 p2 c)``: row offset, then column offset, then channel.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .dense import linear

__all__ = ["PatchExpand"]


class PatchExpand(nn.Module):
    """Upsample a channels-last map by ``scale`` with a linear projection and a pixel shuffle.

    Args:
        in_dim: Input channels ``C_in``.
        out_dim: Output channels ``C_out`` (default ``in_dim // 2``, as in MambaAD).
        scale: Upsampling factor ``s``.
        norm_eps: LayerNorm epsilon (MambaAD: PyTorch's default 1e-5).
    """

    def __init__(self, in_dim: int, out_dim: int | None = None, scale: int = 2, norm_eps: float = 1e-5) -> None:
        super().__init__()
        out_dim = in_dim // 2 if out_dim is None else out_dim
        if in_dim < 1 or out_dim < 1 or scale < 1:
            raise ConfigError(f"PatchExpand needs positive in_dim, out_dim and scale, got {in_dim}, {out_dim}, {scale}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.scale = scale
        self.expand = nn.Linear(in_dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim, eps=norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        """Upsample.

        Args:
            x: Channels-last map, shape ``(batch, H, W, in_dim)``.

        Returns:
            Shape ``(batch, scale · H, scale · W, out_dim)``.
        """
        if x.dim() != 4 or x.shape[-1] != self.in_dim:
            raise InputError(
                f"PatchExpand expects a channels-last map (batch, H, W, {self.in_dim}), got shape {tuple(x.shape)}"
            )
        x = linear(x, self.expand.weight)
        x = rearrange(x, "b h w (p1 p2 c) -> b (h p1) (w p2) c", p1=self.scale, p2=self.scale)
        return self.norm(x)

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, scale={self.scale}"
