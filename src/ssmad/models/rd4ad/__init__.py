"""RD4AD (Deng & Li, CVPR 2022): reverse distillation, the CNN analogue of MambaAD, as a baseline.

* :class:`RD4ADConfig` — network, loss and anomaly-map options (defaults: the original code).
* :class:`RD4AD` — the pure ``nn.Module``: ``enc, dec = net(images)``, ``net.loss(enc, dec)``,
  ``net.anomaly_map(enc, dec, size)``, ``maps, scores = net.predict(images)``.

Example:
    >>> from ssmad.models.rd4ad import RD4AD, RD4ADConfig
    >>> net = RD4AD(RD4ADConfig(encoder="resnet18", pretrained=False))  # doctest: +SKIP
"""

from __future__ import annotations

from .config import RD4ADConfig
from .model import OCBE, RD4AD, DeBasicBlock, DeBottleneck, Layout, ReverseDecoder, encoder_layout

__all__ = ["OCBE", "RD4AD", "DeBasicBlock", "DeBottleneck", "Layout", "RD4ADConfig", "ReverseDecoder", "encoder_layout"]
