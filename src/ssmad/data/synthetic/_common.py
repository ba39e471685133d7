"""Helpers shared by the synthetic generators: seeded random streams and all-or-nothing output folders.

Every generator draws from :func:`rng_for`, a NumPy generator seeded by the user's seed *and* the names of what is
being drawn (category, split, index …). So a category's images do not depend on which other categories are
generated alongside it, and the same seed always gives the same bytes.

Output folders are written into a temporary sibling folder first and moved into place at the end
(:func:`staged_output`), so an interrupted run never leaves a half-written data set under the requested name, and
an existing non-empty folder is never overwritten unless the caller asks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ...errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_readable(path: Path, directory: bool = False) -> None:
    """Give a temporary file (0600) or folder (0700) the permissions a normal one would get under the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _code(part: int | str) -> int:
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if isinstance(part, (int, np.integer)) and part >= 0:
        return int(part)
    raise InputError(f"random seeds must be non-negative integers, got {part!r}. Fix: pass a seed such as 0.")


def rng_for(seed: int, *parts: int | str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a path of names/indices (stable across runs and platforms)."""
    return np.random.default_rng([_code(seed), *(_code(p) for p in parts)])


def check_seed(seed: object) -> int:
    """Return ``seed`` as an int, or raise :class:`InputError` if it is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"the seed must be a non-negative integer, got {seed!r}. Fix: pass a seed such as 0.")
    return int(seed)


def check_output_root(root: str | Path, overwrite: bool) -> Path:
    """Validate an output folder: it may be missing or empty; non-empty only with ``overwrite``.

    Raises:
        InputError: ``root`` is a file, or a non-empty folder and ``overwrite`` is false.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InputError(f"the output path {root} is a file, not a folder. Fix: choose another --out folder.")
    if root.is_dir() and any(root.iterdir()) and not overwrite:
        raise InputError(
            f"the output folder {root} already exists and is not empty; ssmad never overwrites existing data. "
            "Fix: choose a new or empty folder, or pass overwrite=True (--overwrite on the command line) to "
            "replace the generated entries in it."
        )
    return root


@contextlib.contextmanager
def staged_output(root: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``root``; on success move each of its entries into ``root``.

    Entries of ``root`` with the same names as staged entries are replaced (the caller has checked that this is
    allowed); other entries of ``root`` are left alone. On error the staged folder is deleted and ``root`` is
    unchanged.
    """
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    make_readable(stage, directory=True)
    try:
        yield stage
        if not root.exists() or (root.is_dir() and not any(root.iterdir())):
            if root.exists():
                root.rmdir()
            os.replace(stage, root)
            return
        for entry in sorted(stage.iterdir()):
            target = root / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write an ``(H, W)`` or ``(H, W, 3)`` uint8 array as PNG (no time stamps, so bytes depend on pixels only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """Periodic Gaussian-filtered white noise with zero mean and unit standard deviation, ``shape`` float64.

    Wide filters are applied on a coarser grid (a factor of a quarter of the smaller sigma) and the result is
    interpolated back (periodic cubic spline), which looks the same and costs far less.
    """
    from scipy.ndimage import gaussian_filter, zoom

    sy, sx = (float(sigma), float(sigma)) if np.isscalar(sigma) else (float(sigma[0]), float(sigma[1]))
    factor = max(1, int(min(sy, sx) // 4))
    while factor > 1 and (shape[0] % factor or shape[1] % factor):
        factor -= 1
    coarse = (shape[0] // factor, shape[1] // factor)
    field = gaussian_filter(rng.standard_normal(coarse), (sy / factor, sx / factor), mode="wrap")
    if factor > 1:
        field = zoom(field, factor, order=3, mode="grid-wrap", grid_mode=True)
    field -= field.mean()
    std = field.std()
    return field / std if std > 0 else field
