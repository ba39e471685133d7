"""The MambaADv2 network (*inspired-by* arXiv 2606.23126: only its abstract is known; no official code/numbers).

::

    image (B, 3, H, W)
      └─ encoder (frozen timm CNN, as MambaAD)      f1 (c4 @ H/4), f2 (c8 @ H/8), f3 (c16 @ H/16)
      └─ MFF_OCE (MambaAD's, trainable)             → one-class embedding (2·c16 @ H/32)
      └─ DSS decoder                                stage 0 at H/32, then PatchExpand ×2 + DSS modules per stage
                                                    (HSS-v2 cascade ∥ frequency-enhanced conv), stage s scanning in
                                                    K_s directions (the progressive plan)
    loss, anomaly map, image score: MambaAD's (``5 · Σ MSE``; ``Σ_i up(1 − cos)`` / 9, Gaussian σ = 4, max)

What is ours and what comes from MambaAD is listed in the README ("MambaADv2: interpretations"). The decoder keeps
MambaAD's stage layout (widths from the encoder, depths 3/4/6/3 split into modules of 3 or 2 blocks, drop-path
schedule, PatchExpand) and replaces each LSS module by a :class:`~ssmad.layers.dss.DSSModule`.

The scan plan (directions per stage) is the buffer ``decoder.scan_plan``: with ``progressive`` it starts at zeros
and is set from the encoder features of the first batch the network sees
(:func:`~ssmad.models.mambaadv2.scanning.progressive_plan`), then saved with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from einops import rearrange
from timm.layers import trunc_normal_
from torch import Tensor, nn

from ...encoders import TimmEncoder
from ...layers.dss import DSSModule
from ...layers.upsample import PatchExpand
from .._recon import FeatureReconstructionNet, check_divisible, flat_cosine_loss, mse_loss
from ..mambaad.model import MFFOCE, decoder_dims, drop_path_schedule, lss_split
from .config import MambaADv2Config
from .scanning import local_redundancy, progressive_plan, stage_features

__all__ = ["DSSDecoder", "DSSStage", "MambaADv2"]


class DSSStage(nn.Module):
    """One decoder stage: optional 2× PatchExpand, then DSS modules (channels-last in and out).

    Args:
        in_dim: Input channels.
        dim: Width of the stage.
        depth: HSS-v2 blocks in the stage (split into DSS modules by MambaAD's rule).
        size: The stage's map size at the configured input (reference size of the Fourier filters).
        drop_paths: Drop-path rate of each DSS module.
        upsample: Put a PatchExpand before the modules.
        **dss_kwargs: Passed to every :class:`~ssmad.layers.dss.DSSModule`.
    """

    def __init__(
        self,
        in_dim: int,
        dim: int,
        depth: int,
        size: tuple[int, int],
        drop_paths: Sequence[float],
        upsample: bool,
        **dss_kwargs: object,
    ) -> None:
        super().__init__()
        n_modules, per_module = lss_split(depth)
        self.upsample = PatchExpand(in_dim, dim) if upsample else None
        self.blocks = nn.ModuleList(
            DSSModule(dim, per_module, size, drop_path=drop_paths[j], **dss_kwargs)  # type: ignore[arg-type]
            for j in range(n_modules)
        )

    def forward(self, x: Tensor, num_directions: int | None = None) -> Tensor:
        """``(B, h, w, in_dim)`` → ``(B, 2h, 2w, dim)`` (or same size without upsampling)."""
        if self.upsample is not None:
            x = self.upsample(x)
        for blk in self.blocks:
            x = blk(x, num_directions)
        return x


class DSSDecoder(nn.Module):
    """Four stages of DSS modules, the last three supervised; ``scan_plan`` holds the directions per stage.

    Args:
        dims: Stage widths, bottleneck first.
        depths: HSS-v2 blocks per stage.
        sizes: Map size of every stage at the configured input, coarsest first.
        drop_path_rate: Largest stochastic-depth rate (MambaAD's schedule).
        plan: Initial scan plan (directions per stage); zeros mean "set from the first batch".
        **dss_kwargs: Passed to every DSS module (and its HSS-v2 blocks).
    """

    scan_plan: Tensor

    def __init__(
        self,
        dims: Sequence[int],
        depths: Sequence[int],
        sizes: Sequence[tuple[int, int]],
        drop_path_rate: float,
        plan: Sequence[int],
        **dss_kwargs: object,
    ) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        schedule = drop_path_schedule(depths, drop_path_rate)
        self.layers_up = nn.ModuleList(
            DSSStage(
                self.dims[max(i - 1, 0)],
                self.dims[i],
                int(depths[i]),
                sizes[i],
                schedule[i],
                upsample=i > 0,
                **dss_kwargs,
            )
            for i in range(len(self.dims))
        )
        self.register_buffer("scan_plan", torch.tensor([int(k) for k in plan], dtype=torch.long))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Linear: truncated normal (std 0.02), zero bias; LayerNorm: 1, 0 (as MambaAD's decoder)."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def plan_set(self) -> bool:
        """Whether the scan plan has been decided."""
        return bool((self.scan_plan > 0).all())

    def forward(self, x: Tensor) -> list[Tensor]:
        """Decode the channels-first embedding ``(B, dims[0], h, w)``; outputs of stages 3, 2, 1 (finest first)."""
        plan = [int(k) for k in self.scan_plan.tolist()]
        x = rearrange(x, "b c h w -> b h w c")
        outs: list[Tensor] = []
        for i, stage in enumerate(self.layers_up):
            x = stage(x, plan[i] if plan[i] > 0 else None)
            if i > 0:
                outs.insert(0, rearrange(x, "b h w c -> b c h w"))
        return outs


class MambaADv2(FeatureReconstructionNet):
    """The MambaADv2 network (pure ``nn.Module``): ``enc, dec = net(images)``, ``net.loss``, ``net.anomaly_map``.

    Args:
        config: The model configuration.
        encoder: A ready encoder to use instead of building ``config.encoder``.
    """

    decoder: DSSDecoder

    def __init__(self, config: MambaADv2Config | None = None, encoder: TimmEncoder | None = None) -> None:
        super().__init__(config or MambaADv2Config(), encoder)
        config = self.config
        dims = decoder_dims(self.encoder.channels, config.bottleneck_dim)
        self.mff_oce = MFFOCE(self.encoder.channels, dims[0], config.oce_blocks)
        h, w = config.image_hw
        sizes = [(h // s, w // s) for s in (32, 16, 8, 4)]
        plan = [0] * 4 if config.progressive else [config.num_directions] * 4
        self.decoder = DSSDecoder(
            dims,
            config.decoder_depths,
            sizes,
            config.drop_path_rate,
            plan,
            freq_conv=config.freq_conv,
            kernel_sizes=config.lss_kernel_sizes,
            d_state=config.d_state,
            headdim=config.headdim,
            expand=config.expand,
            d_conv=config.d_conv,
            num_directions=config.num_directions,
            scan_type=config.scan_type,
            chunk_size=config.chunk_size,
            recurrent_path=config.recurrent_path,
            matrix_path=config.matrix_path,
            trapezoid=config.trapezoid,
            rotary=config.rotary,
            bc_norm=config.bc_norm,
            scan_backend=config.scan_backend,
        )

    @torch.no_grad()
    def set_scan_plan(self, enc: Sequence[Tensor]) -> list[int]:
        """Decide the progressive scan plan from encoder features ``[f4, f8, f16]`` and store it; returns it."""
        rho = [local_redundancy(f) for f in stage_features(enc)]
        plan = progressive_plan(rho, self.config.num_directions, self.config.rho_low, self.config.rho_high)
        self.decoder.scan_plan.copy_(torch.tensor(plan, dtype=torch.long))
        return plan

    def forward(self, images: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Encode and reconstruct; ``(enc, dec)`` as MambaAD (three maps each, strides 4, 8, 16)."""
        check_divisible(tuple(images.shape[-2:]), 32, "MambaADv2")
        return super().forward(images)

    def reconstruct(self, enc: Sequence[Tensor]) -> list[Tensor]:
        """Fuse and decode the encoder maps (finest first); the first call decides the progressive scan plan."""
        if not self.decoder.plan_set:
            self.set_scan_plan(enc)
        return self.decoder(self.mff_oce(enc))

    def loss(self, enc: Sequence[Tensor], dec: Sequence[Tensor]) -> Tensor:
        """Training loss: ``5 · Σ MSE`` (default) or ADer's flattened cosine loss (MambaAD's)."""
        weight = self.config.effective_loss_weight
        if self.config.loss == "cosine":
            return flat_cosine_loss(enc, dec, weight=weight, average=True)
        return mse_loss(enc, dec, weight=weight)
