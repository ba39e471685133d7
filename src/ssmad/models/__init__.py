"""The models room: one sub-package (or module) per detector family.

Each family keeps its frozen config dataclass, its pure ``nn.Module`` network and, for the hyperspectral
detectors, the small amount of numerics around it (superpixels, RX). Nothing here performs file I/O beyond a
detector's own ``save``/``load``; data loading lives in :mod:`ssmad.data`, scoring in :mod:`ssmad.metrics`.
"""
