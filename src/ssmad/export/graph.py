"""The module that is exported: uint8 RGB images in, anomaly maps and image scores out.

A deployed model should take pictures as they come off a decoder, so the graph starts from ``uint8`` images in
``(N, H, W, 3)`` RGB layout at the network's input size (the resize and optional crop of the run's preprocessing
happen before, with Pillow, exactly as in PyTorch prediction) and does the rest itself::

    image (N, H, W, 3) uint8 ─ float32 / 255 ─ (x − mean) / std ─ NCHW ─ network ─ map ─┬─ anomaly_map (N, H, W)
                                                                                         └─ max ─ pred_score (N,)

The arithmetic is the one of :func:`ssmad.data.transforms.preprocess_image` (float32 ``/ 255``, then ``− mean``,
``/ std``) and of the engine's :func:`~ssmad.engine.evaluate.batch_maps` (``net(x)`` → ``net.anomaly_map(enc, dec,
(H, W))``, score = maximum of the map), so any network with that interface exports: MambaAD, RD4AD and every other
:class:`~ssmad.models._recon.FeatureReconstructionNet`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ExportGraph"]


class ExportGraph(nn.Module):
    """Normalisation + network + anomaly map + image score, for export.

    Args:
        net: The trained network: ``net(images) -> (enc, dec)`` and ``net.anomaly_map(enc, dec, (H, W))`` giving
            ``(N, 1, H, W)`` or ``(N, H, W)`` maps.
        mean: Per-channel (R, G, B) mean of the normalisation.
        std: Per-channel standard deviation.
        size: ``(H, W)`` of the network input.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float], size: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.size = (int(size[0]), int(size[1]))
        self.register_buffer("mean", torch.tensor([float(v) for v in mean], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([float(v) for v in std], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Score a batch.

        Args:
            image: RGB images, ``uint8`` ``(N, H, W, 3)``.

        Returns:
            ``anomaly_map`` float32 ``(N, H, W)`` and ``pred_score`` float32 ``(N,)`` (the maximum of each map).
        """
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        x = (x - self.mean) / self.std
        net: Any = self.net
        enc, dec = net(x)
        maps = net.anomaly_map(enc, dec, self.size)
        if maps.dim() == 4:
            maps = maps[:, 0]
        maps = maps.to(torch.float32)
        return maps, maps.flatten(1).amax(dim=1)
