"""ACMamba (Wang et al., ACM MM 2025): hyperspectral anomaly detection with region-level Mamba learning.

SLIC regions → representative samples → two bidirectional RSAL encoders and a shared decoder trained by
consensus learning with PCGrad and difficulty-aware masking → pixel reconstruction error × RX of region
residuals. See :mod:`.detector` for the pipeline and :mod:`.config` for the options and ablation switches.
"""

from __future__ import annotations

from .config import ACMambaConfig
from .detector import ACMambaDetector
from .model import ACMambaNet

__all__ = ["ACMambaConfig", "ACMambaDetector", "ACMambaNet"]
