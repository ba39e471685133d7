"""The layers room: reusable SSM layers built on :mod:`ssmad.ssm` and :mod:`ssmad.scans`.

* :class:`SS2D` / :class:`HSSBlock` — MambaAD's multi-direction 2-D selective SSM and its residual block.
* :class:`RSAL` / :class:`RSALNetwork` — ACMamba's bidirectional 1-D selective SSM and its encoder.
"""

from __future__ import annotations

from .bidirectional import RSAL, PatchEmbed, RSALBlock, RSALNetwork
from .ss2d import SS2D, DirectionalSSM, HSSBlock, resolve_dt_rank

__all__ = ["RSAL", "SS2D", "DirectionalSSM", "HSSBlock", "PatchEmbed", "RSALBlock", "RSALNetwork", "resolve_dt_rank"]
