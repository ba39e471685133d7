"""Synthetic data for tests, demos and benchmarks, deterministic by seed.

==================  =========================================================================================
module              job
==================  =========================================================================================
:mod:`.textures`    texture categories: CC0 photos from scikit-image (brick, grass, gravel) and procedural
                    weave / wood, colourised per category; random normal crops
:mod:`.defects`     scratch, stain, hole, cut-paste and deformation defects with exact masks
:mod:`.images`      :func:`make_mvtec_like` — an MVTec-AD-style folder of normal and defect images + masks
:mod:`.spectra`     the shipped subset of real reflectance spectra (``earthlib``, MIT) and how it was built
:mod:`.hsi`         :func:`make_hsi_scene` — ABU-like hyperspectral scenes with sub-pixel targets;
                    :func:`write_abu_mat` / :func:`write_hsi_scenes` — ``.mat`` files with keys ``data``/``map``
==================  =========================================================================================

The command line offers the same: ``ssmad data synth mvtec --out DIR`` and ``ssmad data synth hsi --out DIR``.

Example:
    >>> from ssmad.data.synthetic import make_hsi_scene
    >>> cube, gt, wavelengths = make_hsi_scene(32, 32, bands=20, seed=0)
    >>> cube.shape, gt.dtype.name, wavelengths.shape
    ((32, 32, 20), 'uint8', (20,))
"""

from __future__ import annotations

from .defects import DEFECTS, apply_defect
from .hsi import HSIScene, SceneParts, make_hsi_scene, make_hsi_scene_parts, write_abu_mat, write_hsi_scenes
from .images import defect_sample, make_mvtec_like, normal_sample
from .spectra import MATERIALS, SpectralLibrary, build_spectra_subset, load_spectral_library
from .textures import CATEGORIES

__all__ = [
    "CATEGORIES",
    "DEFECTS",
    "MATERIALS",
    "HSIScene",
    "SceneParts",
    "SpectralLibrary",
    "apply_defect",
    "build_spectra_subset",
    "defect_sample",
    "load_spectral_library",
    "make_hsi_scene",
    "make_hsi_scene_parts",
    "make_mvtec_like",
    "normal_sample",
    "write_abu_mat",
    "write_hsi_scenes",
]
