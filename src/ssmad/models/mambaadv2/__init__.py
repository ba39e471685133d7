"""MambaADv2 (*inspired-by* Hu et al., arXiv 2606.23126): MambaAD with DSS modules and progressive scanning.

DSS modules hold SSD/Mamba-3 HSS-v2 blocks and frequency-enhanced convolutions.

Only the paper's abstract is known (no code, no numbers); every interpretation is listed in the README section
"MambaADv2: interpretations" and in the docstrings of :mod:`ssmad.layers.hss2`, :mod:`ssmad.layers.dss`,
:mod:`ssmad.layers.freqconv` and :mod:`ssmad.models.mambaadv2.scanning`.

Example:
    >>> from ssmad.models.mambaadv2 import MambaADv2, MambaADv2Config
    >>> net = MambaADv2(MambaADv2Config(encoder="resnet18", pretrained=False, image_size=64))  # doctest: +SKIP
"""

from __future__ import annotations

from .config import MambaADv2Config
from .model import DSSDecoder, DSSStage, MambaADv2
from .scanning import local_redundancy, progressive_plan, stage_features

__all__ = [
    "DSSDecoder",
    "DSSStage",
    "MambaADv2",
    "MambaADv2Config",
    "local_redundancy",
    "progressive_plan",
    "stage_features",
]
