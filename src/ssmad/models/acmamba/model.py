"""ACMamba's network: two RSAL encoders and one shared RSAL decoder over a sequence of spectra (spec C.4).

Consensus learning (CLS) trains two encoders against one decoder::

    s (batch, L, B) ──────────── E1 (RSAL, B → 256) ──┐
                                                      ├─ Dec (RSAL, 256 → B) → R1 = Dec(E1(s))
    s ⊙ M ─────────────────────── E2 (RSAL, B → 256) ──┘                      R2 = Dec(E2(s ⊙ M))

and infers with the average ``R̄ = ½ (Dec(E1(x)) + Dec(E2(x)))``. A sequence is either the regions of a scene
(training, region means at inference) or all its pixels in raster order (pixel-level inference). The module is
pure: no I/O, no device moves; the loss, PCGrad and masking live in :mod:`.detector` and :mod:`.pcgrad`.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...layers.bidirectional import RSALNetwork

__all__ = ["ACMambaNet"]


class ACMambaNet(nn.Module):
    """Encoders E1 (``encoder``), E2 (``region_encoder``, absent with ``dual_encoder=False``) and ``decoder``.

    Args:
        n_bands: Spectral bands B (input channels of the encoders, output channels of the decoder).
        hidden_dim: Encoder width (256 upstream).
        depth: RSAL blocks per network.
        d_state: SSM state size.
        d_conv: Depthwise convolution taps.
        expand: RSAL inner expansion.
        drop_path_rate: Stochastic depth of each network.
        dual_encoder: Build E2 (consensus learning); ``False`` = one encoder (ablation).
        scan_backend: Selective-scan backend of every RSAL layer.
        rsal_directions: Scan directions of every RSAL layer (2 = bidirectional, the paper; 1 = forward only).

    Shapes:
        ``forward``: ``(batch, L, B)`` → ``(batch, L, B)``.
    """

    def __init__(
        self,
        n_bands: int,
        *,
        hidden_dim: int = 256,
        depth: int = 1,
        d_state: int = 16,
        d_conv: int = 3,
        expand: int = 2,
        drop_path_rate: float = 0.1,
        dual_encoder: bool = True,
        scan_backend: str = "auto",
        rsal_directions: int = 2,
    ) -> None:
        super().__init__()
        kw = {
            "directions": rsal_directions,
            "depth": depth,
            "d_state": d_state,
            "drop_path_rate": drop_path_rate,
            "d_conv": d_conv,
            "expand": expand,
            "scan_backend": scan_backend,
        }
        self.n_bands = n_bands
        # construction order as upstream (E1, E2, decoder), so a seed draws the same kind of init
        self.encoder = RSALNetwork(n_bands, hidden_dim, **kw)
        self.region_encoder = RSALNetwork(n_bands, hidden_dim, **kw) if dual_encoder else None
        self.decoder = RSALNetwork(hidden_dim, n_bands, **kw)

    @property
    def dual(self) -> bool:
        """Whether the second encoder E2 exists."""
        return self.region_encoder is not None

    def branches(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Training forward of both branches.

        Args:
            x: Samples, shape ``(batch, L, B)``.
            mask: ``(batch, L, 1)`` with 1 = keep, 0 = masked region (all bands); ``None`` = no mask.

        Returns:
            ``R1 = Dec(E1(x))`` and ``R2 = Dec(E2(x ⊙ mask))`` (``None`` without E2), each ``(batch, L, B)``.
        """
        r1 = self.decoder(self.encoder(x))
        if self.region_encoder is None:
            return r1, None
        xm = x if mask is None else x * mask
        return r1, self.decoder(self.region_encoder(xm))

    def forward(self, x: Tensor) -> Tensor:
        """Inference reconstruction: the mean of both branches on the unmasked input (E1 alone without E2).

        Args:
            x: ``(batch, L, B)``.

        Returns:
            ``(batch, L, B)``.
        """
        r1, r2 = self.branches(x)
        return r1 if r2 is None else (r1 + r2) / 2
