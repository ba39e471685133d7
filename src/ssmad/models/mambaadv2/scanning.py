"""Semantics-adaptive progressive scanning: how many scan directions each decoder stage uses (*inspired-by*).

The MambaADv2 abstract names a "semantics-adaptive progressive scanning strategy" that reduces scanning cost across
the feature pyramid, without details. Our rule (README: "MambaADv2: interpretations"):

1. **Progressive base budget** — the coarsest stage (stage 0, fewest tokens, most semantic) scans in ``max_k``
   directions; each finer stage halves it (``L`` grows ×4 per stage, so scan cost still grows ×2 per stage)::

       K_base(s) = max(1, max_k / 2^s)            stage s = 0 (stride 32) … 3 (stride 4); max_k = 8: 8, 4, 2, 1

2. **Semantics adaptation** — from feature statistics: the *local redundancy* ``ρ_s`` of the encoder features at the
   stage's resolution, the mean cosine similarity between horizontally and vertically adjacent feature vectors
   after removing each image's per-channel mean (stage 0 uses the stride-16 features average-pooled ×2).
   Redundant maps (``ρ_s ≥ rho_high``: neighbours repeat each other) need fewer views, so ``K`` is halved;
   low-redundancy maps (``ρ_s < rho_low``: every position carries new content) get twice as many::

       K(s) = clip(K_base(s) · (½ if ρ_s ≥ rho_high, 2 if ρ_s < rho_low, else 1), 1, max_k)

3. **Progressive constraint** — a finer stage never scans in more directions than a coarser one
   (``K(s) ≤ K(s − 1)``).

The statistics are taken once, on the first batch the network sees (normally the first training batch), and the
plan is stored in the model's state dict (buffer ``scan_plan``), so saved models replay it. The thresholds
``rho_low = 0.1`` and ``rho_high = 0.3`` were chosen on the synthetic ``ssmad data synth mvtec`` textures with
the EfficientNet-lite0 encoder (ρ between −0.2 and 0.35 there), the only data the defaults were tuned on. The K
directions of a stage share their parameters (:mod:`ssmad.layers.hss2`), so the plan costs no parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["local_redundancy", "progressive_plan", "stage_features"]


def local_redundancy(feat: Tensor) -> float:
    """``ρ``: mean cosine similarity of 4-neighbour feature vectors after removing each map's channel means.

    Args:
        feat: Features ``(batch, C, H, W)``.

    Returns:
        A value in ``[-1, 1]`` (0 for a map with fewer than two positions along both axes).
    """
    f = feat.float() - feat.float().mean(dim=(2, 3), keepdim=True)
    sims = []
    if f.shape[-1] > 1:
        sims.append(F.cosine_similarity(f[..., :, 1:], f[..., :, :-1], dim=1).mean())
    if f.shape[-2] > 1:
        sims.append(F.cosine_similarity(f[..., 1:, :], f[..., :-1, :], dim=1).mean())
    return float(torch.stack(sims).mean()) if sims else 0.0


def stage_features(enc: Sequence[Tensor]) -> list[Tensor]:
    """Encoder maps at the four decoder stages' resolutions: ``[pool2(f16), f16, f8, f4]`` (coarsest first)."""
    f4, f8, f16 = enc
    return [F.avg_pool2d(f16, 2) if min(f16.shape[-2:]) >= 2 else f16, f16, f8, f4]


def progressive_plan(
    redundancy: Sequence[float], max_k: int = 8, rho_low: float = 0.1, rho_high: float = 0.3
) -> list[int]:
    """Scan directions per decoder stage (coarsest first) from the stages' local redundancy (module docstring).

    Args:
        redundancy: ``ρ_s`` per stage, coarsest first.
        max_k: Directions of the coarsest stage (1, 2, 4 or 8).
        rho_low: Below it a stage gets twice the base budget.
        rho_high: At or above it a stage gets half the base budget.

    Returns:
        ``K`` per stage, each in {1, 2, 4, 8}, non-increasing.
    """
    plan: list[int] = []
    for s, rho in enumerate(redundancy):
        k = max(1, max_k >> s)
        if rho >= rho_high:
            k //= 2
        elif rho < rho_low:
            k *= 2
        k = min(max(k, 1), max_k)
        if plan:
            k = min(k, plan[-1])
        plan.append(k)
    return plan
