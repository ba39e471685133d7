"""The MambaAD network: frozen CNN encoder → MFF_OCE fusion → Mamba decoder (spec A.1–A.8).

::

    image (B, 3, H, W)
      └─ encoder (frozen timm CNN)        f1 (c4 @ H/4), f2 (c8 @ H/8), f3 (c16 @ H/16)
      └─ MFF_OCE (trainable)              half-FPN fusion of f1, f2, f3 → one-class embedding (2·c16 @ H/32)
      └─ MambaUPNet decoder               stage 0 at H/32, then PatchExpand ×2 + LSS modules per stage:
                                          d3 (c16 @ H/16), d2 (c8 @ H/8), d1 (c4 @ H/4)
    loss      = 5 · Σ_i MSE(f_i, d_i)                      (or ADer's flattened cosine loss)
    map       = Gaussian_σ=4( Σ_i up(1 − cos(f_i, d_i)) / 9 ),   score = max(map)

With ResNet34 at 256×256 the widths are those of the paper (64/128/256 encoder, 512/256/128/64 decoder) and the
network has 25.62 M parameters (8.17 M frozen encoder + 1.46 M MFF_OCE + 15.99 M decoder; spec A.13).

Blocks, top-down: :class:`MFFOCE` (fusion + one-class embedding), :class:`DecoderStage` (optional
:class:`~ssmad.layers.upsample.PatchExpand` + :class:`~ssmad.layers.lss.LSSModule` list), :class:`MambaUPNet`
(stages, drop-path schedule, initialisation), :class:`MambaAD` (everything, loss, anomaly map).
Module names follow the official code where it helps checkpoint conversion (``mff_oce`` internals,
``layers_up.{i}.upsample`` / ``.blocks``); the encoder is ``encoder`` and the decoder ``decoder``
(upstream: ``net_t`` and ``net_s``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from timm.models.resnet import Bottleneck
from torch import Tensor, nn

from ...encoders import TimmEncoder
from ...layers.lss import LSSModule
from ...layers.upsample import PatchExpand
from .._necks import conv3x3, init_resnet_, one_class_embedding
from .._recon import FeatureReconstructionNet, flat_cosine_loss, mse_loss
from .config import MambaADConfig

__all__ = ["MFFOCE", "DecoderStage", "MambaAD", "MambaUPNet", "decoder_dims", "drop_path_schedule", "lss_split"]


def decoder_dims(channels: Sequence[int], bottleneck_dim: int | None = None) -> tuple[int, int, int, int]:
    """Decoder widths ``(bottleneck, c16, c8, c4)`` for encoder channels ``(c4, c8, c16)``.

    The bottleneck defaults to ``2 · c16`` (ResNet34: 512).
    """
    c4, c8, c16 = (int(c) for c in channels)
    return (int(bottleneck_dim) if bottleneck_dim else 2 * c16, c16, c8, c4)


def lss_split(depth: int) -> tuple[int, int]:
    """``(number of LSS modules, HSS blocks per module)`` for a stage of ``depth`` HSS blocks (3s first, then 2s)."""
    if depth % 3 == 0:
        return depth // 3, 3
    if depth % 2 == 0:
        return depth // 2, 2
    raise ValueError(f"stage depth {depth} is divisible by neither 3 nor 2")


def drop_path_schedule(depths: Sequence[int], rate: float) -> list[list[float]]:
    """Drop-path rate of each LSS module, per stage.

    ``linspace(0, rate, Σ depths)`` is reversed (deepest = first stage = largest rate), cut into per-stage slices of
    length ``depths[i]``, and LSS module ``j`` of a stage takes element ``j`` of its slice (spec A.3).
    """
    total = sum(depths)
    rates = [float(v) for v in torch.linspace(0, rate, total)][::-1]
    out, start = [], 0
    for depth in depths:
        n_modules, _ = lss_split(depth)
        out.append(rates[start : start + n_modules])
        start += depth
    return out


class MFFOCE(nn.Module):
    """Multi-scale feature fusion + one-class embedding (the official ``MFF_OCE``, spec A.2).

    ::

        p0 = ReLU(BN(conv3×3/2(f1)))                                   c8 @ H/8
        p1 = ReLU(BN(conv1×1(f2))) + p0                                c8 @ H/8
        s  = ReLU(BN(conv3×3/2(p1))) + ReLU(BN(conv1×1(f3)))           c16 @ H/16
        s  = ReLU(BN(conv1×1(s)))
        out = Bottleneck×n(s), first with stride 2                    out_dim @ H/32

    Args:
        channels: Encoder channels ``(c4, c8, c16)``.
        out_dim: Output width (a multiple of 4; the bottleneck blocks have ``out_dim / 4`` planes).
        num_blocks: Bottleneck blocks of the one-class embedding.
    """

    def __init__(self, channels: Sequence[int], out_dim: int, num_blocks: int = 3) -> None:
        super().__init__()
        c4, c8, c16 = (int(c) for c in channels)
        self.conv1 = conv3x3(c4, c8, 2)
        self.bn1 = nn.BatchNorm2d(c8)
        self.conv21 = nn.Conv2d(c8, c8, kernel_size=1)
        self.bn21 = nn.BatchNorm2d(c8)
        self.conv2 = conv3x3(c8, c16, 2)
        self.bn2 = nn.BatchNorm2d(c16)
        self.conv31 = nn.Conv2d(c16, c16, kernel_size=1)
        self.bn31 = nn.BatchNorm2d(c16)
        self.convf = nn.Conv2d(c16, c16, kernel_size=1)
        self.bnf = nn.BatchNorm2d(c16)
        self.relu = nn.ReLU(inplace=True)
        self.bn_layer = one_class_embedding(Bottleneck, c16, out_dim, out_dim // Bottleneck.expansion, num_blocks)
        init_resnet_(self)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Fuse ``[f1 (B, c4, H/4, W/4), f2, f3]`` into the embedding ``(B, out_dim, H/32, W/32)``."""
        f1, f2, f3 = feats
        p0 = self.relu(self.bn1(self.conv1(f1)))
        p1 = self.relu(self.bn21(self.conv21(f2))) + p0
        s = self.relu(self.bn2(self.conv2(p1))) + self.relu(self.bn31(self.conv31(f3)))
        s = self.relu(self.bnf(self.convf(s)))
        return self.bn_layer(s)


class DecoderStage(nn.Module):
    """One decoder stage: optional 2× :class:`PatchExpand`, then LSS modules (channels-last in and out).

    Args:
        in_dim: Input channels (the previous stage's width).
        dim: Width of this stage.
        depth: HSS blocks in the stage (split into LSS modules by :func:`lss_split`).
        drop_paths: Drop-path rate of each LSS module.
        upsample: Put a PatchExpand before the modules (all stages but the first).
        kernel_sizes: LSS local-branch kernels.
        **ss2d_kwargs: Passed to every SS2D.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        drop_paths: Sequence[float],
        upsample: bool,
        kernel_sizes: Sequence[int] = (5, 7),
        **ss2d_kwargs: object,
    ) -> None:
        super().__init__()
        n_modules, per_module = lss_split(depth)
        self.upsample = PatchExpand(in_dim, dim) if upsample else None
        self.blocks = nn.ModuleList(
            LSSModule(dim, per_module, drop_path=drop_paths[j], kernel_sizes=kernel_sizes, **ss2d_kwargs)
            for j in range(n_modules)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, h, w, in_dim)`` → ``(B, 2h, 2w, dim)`` (or same size without upsampling)."""
        if self.upsample is not None:
            x = self.upsample(x)
        for blk in self.blocks:
            x = blk(x)
        return x


class MambaUPNet(nn.Module):
    """MambaAD's Mamba decoder: four stages of LSS modules, the last three supervised (spec A.3).

    Args:
        dims: Stage widths, bottleneck first (paper: 512, 256, 128, 64).
        depths: HSS blocks per stage (paper: 3, 4, 6, 3).
        drop_path_rate: Largest stochastic-depth rate (paper: 0.2), scheduled by :func:`drop_path_schedule`.
        kernel_sizes: LSS local-branch kernels.
        **ss2d_kwargs: Passed to every SS2D (``d_state``, ``scan_type``, ``num_directions``, ``scan_backend`` …).
    """

    def __init__(
        self,
        dims: Sequence[int] = (512, 256, 128, 64),
        depths: Sequence[int] = (3, 4, 6, 3),
        drop_path_rate: float = 0.2,
        kernel_sizes: Sequence[int] = (5, 7),
        **ss2d_kwargs: object,
    ) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        self.depths = tuple(int(d) for d in depths)
        schedule = drop_path_schedule(self.depths, drop_path_rate)
        self.layers_up = nn.ModuleList(
            DecoderStage(
                self.dims[max(i - 1, 0)],
                self.dims[i],
                self.depths[i],
                schedule[i],
                upsample=i > 0,
                kernel_sizes=kernel_sizes,
                **ss2d_kwargs,
            )
            for i in range(len(self.dims))
        )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Initialise one module as the official code does.

        Linear: truncated normal (std 0.02), zero bias; LayerNorm: weight 1, bias 0 (raw SSM parameters keep
        their Mamba initialisation, LSS convolutions their fan-out one).
        """
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Decode the embedding.

        Args:
            x: Bottleneck embedding, channels-first ``(B, dims[0], h, w)``.

        Returns:
            Outputs of stages 3, 2, 1 (finest first, the encoder's order), channels-first:
            ``(B, dims[3], 8h, 8w)``, ``(B, dims[2], 4h, 4w)``, ``(B, dims[1], 2h, 2w)``.
        """
        x = rearrange(x, "b c h w -> b h w c")
        outs: list[Tensor] = []
        for i, stage in enumerate(self.layers_up):
            x = stage(x)
            if i > 0:
                outs.insert(0, rearrange(x, "b h w c -> b c h w"))
        return outs


class MambaAD(FeatureReconstructionNet):
    """The MambaAD network: frozen encoder, :class:`MFFOCE` neck, :class:`MambaUPNet` decoder.

    A pure ``nn.Module`` (no I/O, no device moves); ``forward``, :meth:`anomaly_map` and :meth:`predict` come from
    :class:`~ssmad.models._recon.FeatureReconstructionNet`, whose arguments it takes (``config`` defaults to the
    paper's :class:`MambaADConfig`).
    """

    def __init__(self, config: MambaADConfig | None = None, encoder: TimmEncoder | None = None) -> None:
        super().__init__(config or MambaADConfig(), encoder)
        config = self.config
        dims = decoder_dims(self.encoder.channels, config.bottleneck_dim)
        self.mff_oce = MFFOCE(self.encoder.channels, dims[0], config.oce_blocks)
        self.decoder = MambaUPNet(
            dims,
            config.decoder_depths,
            drop_path_rate=config.drop_path_rate,
            kernel_sizes=config.lss_kernel_sizes,
            d_state=config.d_state,
            d_conv=config.d_conv,
            expand=config.expand,
            dt_rank=config.dt_rank,
            num_directions=config.num_directions,
            scan_type=config.scan_type,
            scan_backend=config.scan_backend,
        )

    def reconstruct(self, enc: Sequence[Tensor]) -> list[Tensor]:
        """Fuse the encoder maps (MFF_OCE) and decode them: finest first, the shapes of ``enc``."""
        return self.decoder(self.mff_oce(enc))

    def loss(self, enc: Sequence[Tensor], dec: Sequence[Tensor]) -> Tensor:
        """Training loss: ``5 · Σ MSE`` (default) or ADer's flattened cosine loss (``loss="cosine"``)."""
        weight = self.config.effective_loss_weight
        if self.config.loss == "cosine":
            return flat_cosine_loss(enc, dec, weight=weight, average=True)
        return mse_loss(enc, dec, weight=weight)
