"""Synthetic anomaly maps and masks that look like a reconstruction model's output (for metric tests)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def realistic_batch(rng: np.random.Generator, n: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smoothed-noise maps with elliptic defects on about half of the images.

    Returns:
        ``(maps, masks)``: ``(n, size, size)`` float32 maps in about [0, 1] and bool masks; defects of very
        different sizes, partially detected (the map bump is weaker and blurrier than the mask).
    """
    yy, xx = np.mgrid[0:size, 0:size]
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        if rng.random() < 0.5:
            continue
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(2, size / 6, 2)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    noise = rng.normal(size=(n, size // 4, size // 4)).astype(np.float32)
    base = ndimage.zoom(noise, (1, 4, 4), order=1) * 0.08 + 0.25
    bump = ndimage.gaussian_filter(masks.astype(np.float32), (0, 3, 3)) * rng.uniform(0.05, 0.5, (n, 1, 1))
    maps = base + bump.astype(np.float32)
    return maps.astype(np.float32), masks
