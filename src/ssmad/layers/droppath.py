"""Stochastic depth (``DropPath``): drop a whole residual branch per sample while training.

Written here rather than imported from timm so that the hyperspectral path (which needs no image encoder) does not
pay timm's import time.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["DropPath"]


class DropPath(nn.Module):
    """Zero the input of a random subset of samples (probability ``drop_prob``), scale the rest by ``1 / keep``.

    Identity in eval mode and for ``drop_prob = 0``; ``drop_prob = 1`` drops every sample. Same behaviour as timm's
    ``DropPath`` with ``scale_by_keep=True``.

    Args:
        drop_prob: Probability of dropping a sample's branch, in ``[0, 1]``.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"DropPath: drop_prob must be in [0, 1], got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(batch, ...)`` to the same shape."""
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep) if keep > 0 else x * mask

    def extra_repr(self) -> str:
        """Shown by ``print(module)``."""
        return f"drop_prob={self.drop_prob}"
