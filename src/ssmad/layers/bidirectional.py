"""ACMamba's RSAL: a bidirectional selective SSM over a 1-D sequence of region descriptors (spec C.3).

ACMamba turns a hyperspectral cube into a sequence of ``N_r`` superpixel regions, each described by a spectrum.
RSAL ("Regional Spectral Attribute Learning") is SS2D reduced to one dimension and two directions::

    x (B, L, C) ─ in_proj ─┬─ x ─ depthwise conv (3 taps along L) ─ SiLU ─┬─ forward scan ─────────┐
                           │                                              └─ reversed scan ─ flip ─┴─ + ─ LN ─┐
                           └─ z ────────────────────────────────────────────────────────────── GELU ────── × ─ out_proj

Both directions have their own ``x_proj`` / ``dt_proj`` / ``A_log`` / ``D`` and run in one grouped selective
scan (the core shared with SS2D, :class:`ssmad.layers.directional.DirectionalLayer`); the gate is GELU (not SiLU
as in SS2D).

Convolution: the official code runs a ``d_conv × d_conv`` depthwise ``Conv2d`` with padding ``(d_conv - 1) / 2``
on the ``N_r × 1`` map, where every column of the kernel except the middle one only meets zero padding. Here it is
the equivalent ``d_conv``-tap depthwise ``Conv1d`` along the sequence (odd ``d_conv``; a converted 2-D kernel maps
to its middle column). Its weights and bias are drawn ``U(-1/d_conv, 1/d_conv)``, which is PyTorch's default for the
original ``d_conv × d_conv`` kernel (fan-in ``d_conv²``), so the initial distribution matches the official code.

:class:`RSALNetwork` is the encoder ACMamba builds from it: a per-region patch embedding (``Linear(in_chans →
dim)`` ≡ a 1×1 convolution, GELU, LayerNorm) followed by ``depth`` blocks ``x ← DropPath(RSAL(LayerNorm(x)))`` —
with NO residual connection, as in the official code.

Shapes: every module here maps ``(batch, L, channels_in)`` to ``(batch, L, channels_out)``; ``L`` is the number of
regions (any ``L >= 1``), batch first, channels last.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..errors import InputError
from .directional import DirectionalLayer
from .droppath import DropPath

__all__ = ["RSAL", "PatchEmbed", "RSALBlock", "RSALNetwork"]


def _check_sequence(x: Tensor, channels: int, who: str) -> None:
    if x.dim() != 3 or x.shape[-1] != channels:
        raise InputError(
            f"{who} expects a batch of region sequences shaped (batch, L, {channels}), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) for a single sequence."
        )


class RSAL(DirectionalLayer):
    """Bidirectional selective SSM on sequences (ACMamba's ``RSAL``): K = 2 orders, forwards and backwards.

    Args:
        d_model: Input/output channels C.
        directions: 2 = forward and reversed scans (ACMamba), 1 = the forward scan only (an ablation); each
            direction has its own SSM parameters.
        **kwargs: The rest of :class:`~ssmad.layers.directional.DirectionalLayer`'s arguments: ``d_state`` (16),
            ``d_conv`` (3 taps along the sequence, odd), ``expand`` (2), ``dt_rank`` (``"auto"``), ``dt_min``,
            ``dt_max``, ``dt_init``, ``dt_scale``, ``dt_init_floor``, ``dropout`` (0), ``conv_bias`` (True),
            ``bias`` (False) and ``scan_backend`` (``"auto"``).
    """

    gate = staticmethod(F.gelu)

    def __init__(self, d_model: int, *, directions: int = 2, **kwargs: Any) -> None:
        if directions not in (1, 2):
            raise ValueError(f"RSAL scans in 1 or 2 directions, got directions={directions!r}")
        super().__init__(d_model, directions, **kwargs)

    def build_conv(self, d_inner: int, d_conv: int, conv_bias: bool) -> None:
        """``conv1d``: ``d_conv`` depthwise taps along the sequence, drawn as the official 2-D kernel's default."""
        self.conv1d = nn.Conv1d(
            d_inner, d_inner, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias
        )
        with torch.no_grad():
            bound = 1.0 / d_conv  # default init of the official d_conv × d_conv kernel (fan-in d_conv²)
            self.conv1d.weight.uniform_(-bound, bound)
            if self.conv1d.bias is not None:
                self.conv1d.bias.uniform_(-bound, bound)

    def conv(self, x: Tensor) -> Tensor:
        """``(batch, L, d_inner)`` → ``(batch, d_inner, L)``."""
        return cast(Tensor, self.conv1d(rearrange(x, "b l d -> b d l")))

    def build_tables(self, size: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
        """Forwards and backwards, ``[0 … L-1, L-1 … 0]``, its own inverse (only the first row with one direction)."""
        forward = torch.arange(size[0], device=device)
        index = torch.stack([forward, forward.flip(0)][: self.num_sequences])
        return index, index

    def check_input(self, x: Tensor) -> None:
        """Region sequences ``(batch, L, d_model)``."""
        _check_sequence(x, self.d_model, "RSAL")

    def describe_scan(self) -> str:
        """The number of scan directions, for :meth:`extra_repr`."""
        return f"directions={self.num_sequences}, "


class RSALBlock(nn.Module):
    """``y = DropPath(RSAL(LayerNorm(x)))`` — no residual connection (official ACMamba code).

    Args:
        dim: Channels C.
        drop_path: Stochastic-depth probability.
        norm_eps: LayerNorm epsilon (official code: PyTorch's default 1e-5).
        **rsal_kwargs: Passed to :class:`RSAL`.
    """

    def __init__(self, dim: int, drop_path: float = 0.0, norm_eps: float = 1e-5, **rsal_kwargs: Any) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim, eps=norm_eps)
        self.rsal = RSAL(d_model=dim, **rsal_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, L, dim)`` to ``(batch, L, dim)``."""
        return self.drop_path(self.rsal(self.ln(x)))


class PatchEmbed(nn.Module):
    """Per-region embedding: ``Linear(in_chans → dim)`` (a 1×1 convolution), GELU, LayerNorm.

    Args:
        in_chans: Input channels (spectral bands).
        dim: Embedding channels.
    """

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.proj = nn.Linear(in_chans, dim)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, L, in_chans)`` to ``(batch, L, dim)``."""
        return self.norm(self.act(self.proj(x)))


class RSALNetwork(nn.Module):
    """ACMamba's encoder: patch embedding and ``depth`` RSAL blocks on a sequence of regions.

    Initialisation as in the official code: every ``nn.Linear`` of the blocks ``trunc_normal(std=0.02)`` with zero
    bias, LayerNorms weight 1 / bias 0, the SSM parameters keep Mamba's init, and the patch embedding keeps
    PyTorch's default (it is a 1×1 ``Conv2d`` upstream, which the truncated-normal rule does not touch).

    Args:
        in_chans: Input channels per region (spectral bands).
        dim: Hidden channels.
        depth: Number of RSAL blocks.
        d_state: State size N.
        drop_path_rate: Stochastic depth, increasing linearly from 0 to this value over the blocks.
        **rsal_kwargs: Passed to every :class:`RSAL` (``expand``, ``d_conv``, ``scan_backend`` …).

    Shapes:
        ``forward``: ``(batch, L, in_chans)`` → ``(batch, L, dim)``.
    """

    def __init__(
        self,
        in_chans: int,
        dim: int,
        depth: int = 1,
        d_state: int = 16,
        drop_path_rate: float = 0.0,
        **rsal_kwargs: Any,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.dim = dim
        self.patch_embed = PatchEmbed(in_chans, dim)
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
        self.blocks = nn.ModuleList(RSALBlock(dim, drop_path=rate, d_state=d_state, **rsal_kwargs) for rate in rates)
        self.apply(self._init_weights)
        self.patch_embed.proj.reset_parameters()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Encode region sequences.

        Args:
            x: Shape ``(batch, L, in_chans)``.

        Returns:
            Shape ``(batch, L, dim)``.
        """
        _check_sequence(x, self.in_chans, "RSALNetwork")
        x = self.patch_embed(x)
        for block in self.blocks:
            x = block(x)
        return x
