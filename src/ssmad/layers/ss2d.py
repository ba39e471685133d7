"""SS2D: a selective state-space layer that reads a 2-D feature map along several scan directions (spec A.5).

The map is read as K sequences (a scan curve in up to eight directions, :mod:`ssmad.scans.directions`); each
direction has its own input-dependent SSM parameters (``x_proj``, ``dt_proj``, ``A_log``, ``D``), all K sequences
go through ONE grouped selective-scan call, and the K outputs are put back in raster order and summed::

    x (B, H, W, C) ─ in_proj ─┬─ x ─ depthwise conv 3×3 ─ SiLU ─ K-direction scan ─ sum ─ LayerNorm ─┐
                              └─ z ───────────────────────────────────────────────────── SiLU ─────── × ─ out_proj

:class:`HSSBlock` is MambaAD's Hybrid State-Space block: ``y = x + DropPath(SS2D(LayerNorm(x)))`` (no MLP).
The projections, the scan and the merge are the core shared with ACMamba's RSAL
(:class:`ssmad.layers.directional.DirectionalLayer`); SS2D adds its 2-D convolution, curve tables and SiLU gate.

Parameter names follow MambaAD's ``SS2D`` (``in_proj``, ``conv2d``, ``x_proj_weight``, ``dt_projs_weight``,
``dt_projs_bias``, ``A_logs``, ``Ds``, ``out_norm``, ``out_proj``; ``ln_1``/``self_attention`` in the block) so
that checkpoints convert by dropping the stored scan tables (``scans.index_flat*``), which are rebuilt here from the
curve name and the map size. Sizes need not be square: a map of any ``H × W`` is scanned with the curve of its
own size (and of the ``W × H`` size in transposed/rotated directions).
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import InputError
from ..scans import check_scan_name, direction_ids, direction_tables
from .directional import DirectionalLayer, DirectionalSSM, resolve_dt_rank
from .droppath import DropPath

__all__ = ["SS2D", "DirectionalSSM", "HSSBlock", "resolve_dt_rank"]


class SS2D(DirectionalLayer):
    """Multi-direction 2-D selective SSM on channels-last maps (MambaAD's ``SS2D``).

    Args:
        d_model: Input/output channels C.
        num_directions: K = 1, 2, 4 or 8 scan directions (MambaAD configs: 8).
        scan_type: Scan curve: ``sweep``, ``scan``, ``zorder``, ``zigzag`` or ``hilbert``.
        **kwargs: The rest of :class:`~ssmad.layers.directional.DirectionalLayer`'s arguments: ``d_state`` (16),
            ``d_conv`` (3), ``expand`` (2), ``dt_rank`` (``"auto"``), ``dt_min``, ``dt_max``, ``dt_init``,
            ``dt_scale``, ``dt_init_floor``, ``dropout`` (0), ``conv_bias`` (True), ``bias`` (False) and
            ``scan_backend`` (``"auto"``).
    """

    gate = staticmethod(F.silu)

    def __init__(self, d_model: int, *, num_directions: int = 8, scan_type: str = "hilbert", **kwargs: Any) -> None:
        super().__init__(d_model, len(direction_ids(num_directions)), **kwargs)
        self.num_directions = num_directions
        self.scan_type = check_scan_name(scan_type)

    def build_conv(self, d_inner: int, d_conv: int, conv_bias: bool) -> None:
        """``conv2d``: a ``d_conv × d_conv`` depthwise convolution, 'same' padding."""
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias
        )

    def conv(self, x: Tensor) -> Tensor:
        """``(batch, H, W, d_inner)`` → ``(batch, d_inner, H, W)``."""
        return cast(Tensor, self.conv2d(rearrange(x, "b h w d -> b d h w")))

    def build_tables(self, size: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
        """The curve's K direction tables for an ``H × W`` map (:func:`ssmad.scans.direction_tables`)."""
        h, w = size
        return direction_tables(self.scan_type, h, w, self.num_directions, device=device)

    def check_input(self, x: Tensor) -> None:
        """A channels-last map ``(batch, H, W, d_model)``."""
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise InputError(
                f"SS2D expects a channels-last map (batch, H, W, {self.d_model}), got shape {tuple(x.shape)}; "
                "permute (B, C, H, W) inputs with x.permute(0, 2, 3, 1)."
            )

    def describe_scan(self) -> str:
        """The scan settings shown by ``print(module)``."""
        return f"num_directions={self.num_directions}, scan_type={self.scan_type!r}, "


class HSSBlock(nn.Module):
    """MambaAD's Hybrid State-Space block: ``y = x + DropPath(SS2D(LayerNorm(x)))``.

    Args:
        dim: Channels C.
        drop_path: Stochastic-depth probability.
        norm_eps: LayerNorm epsilon (MambaAD: PyTorch's default 1e-5).
        **ss2d_kwargs: Passed to :class:`SS2D` (``d_state``, ``num_directions``, ``scan_type``, ``scan_backend`` …).
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **ss2d_kwargs: Any) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attention = SS2D(d_model=dim, **ss2d_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to a channels-last map ``(batch, H, W, dim)``; same shape out."""
        return x + self.drop_path(self.self_attention(self.ln_1(x)))
