"""MambaAD (He et al., NeurIPS 2024): frozen CNN encoder, MFF_OCE fusion and a Mamba decoder of LSS modules.

* :class:`MambaADConfig` — network, loss and anomaly-map options (defaults: the official code).
* :class:`MambaAD` — the pure ``nn.Module``: ``enc, dec = net(images)``, ``net.loss(enc, dec)``,
  ``net.anomaly_map(enc, dec, size)``, ``maps, scores = net.predict(images)``.

Example:
    >>> from ssmad.models.mambaad import MambaAD, MambaADConfig
    >>> net = MambaAD(MambaADConfig(encoder="resnet34", pretrained=False))  # doctest: +SKIP
"""

from __future__ import annotations

from .config import MambaADConfig
from .model import MFFOCE, DecoderStage, MambaAD, MambaUPNet, decoder_dims, drop_path_schedule, lss_split

__all__ = [
    "MFFOCE",
    "DecoderStage",
    "MambaAD",
    "MambaADConfig",
    "MambaUPNet",
    "decoder_dims",
    "drop_path_schedule",
    "lss_split",
]
