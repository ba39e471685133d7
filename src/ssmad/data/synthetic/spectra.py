"""A small library of real reflectance spectra for the synthetic hyperspectral scenes.

The spectra are a subset of the global spectral library of ``earthlib`` 1.1.0 (MIT licence, © 2023
Christopher Anderson; see ``ssmad/data/assets/SPECTRA_LICENSE.txt``): 180 bands from 400 to 2450 nm at 10 nm
(the water-absorption ranges 1360–1450 and 1800–1950 nm are left out), reflectance in [0, ~1]. ssmad ships a
few hundred of them in ``ssmad/data/assets/spectra.npz`` so that scenes can be generated without ``earthlib``
installed; :func:`build_spectra_subset` rebuilds that file from an ``earthlib`` installation (the provenance of
the shipped asset, and what its test compares against).

``earthlib`` labels each spectrum with four levels (``LEVEL_1`` pervious/impervious … ``LEVEL_3`` soil, canopy,
road, comp_shingle, paint, metal …). The scenes use coarser *materials*, each a union of ``LEVEL_3`` classes
(:data:`MATERIALS`): ``soil``, ``vegetation``, ``npv`` (dry plant matter), ``road``, ``roof``, ``concrete``,
``paint``, ``metal``, ``glass``.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ...errors import InputError

logger = logging.getLogger(__name__)

#: Material name → the ``earthlib`` ``LEVEL_3`` classes it gathers.
MATERIALS: dict[str, tuple[str, ...]] = {
    "soil": ("soil",),
    "vegetation": ("canopy",),
    "npv": ("litter", "bark", "wood", "npv"),
    "road": ("road", "asphalt", "parking_lot"),
    "roof": ("comp_shingle", "wood_shingle", "concrete_tile", "tile"),
    "concrete": ("sidewalk", "driveway", "bridge"),
    "paint": ("paint",),
    "metal": ("metal",),
    "glass": ("glass",),
}

#: How many spectra of each material the shipped subset keeps (all of them where fewer exist).
SUBSET_SIZES: dict[str, int] = {
    "soil": 60,
    "vegetation": 60,
    "npv": 40,
    "road": 60,
    "roof": 60,
    "concrete": 40,
    "paint": 76,
    "metal": 18,
    "glass": 2,
}

ASSET_NAME = "spectra.npz"
LICENSE_NAME = "SPECTRA_LICENSE.txt"
_SUBSET_SEED = 20240611


@dataclass(frozen=True)
class SpectralLibrary:
    """Reflectance spectra with their labels.

    Attributes:
        spectra: ``(n, B)`` float32 reflectance.
        wavelengths: ``(B,)`` float32 band centres in nanometres.
        materials: ``(n,)`` material of each spectrum (a key of :data:`MATERIALS`).
        names: ``(n,)`` the spectrum names in ``earthlib``.
        levels: ``(n, 4)`` ``earthlib``'s ``LEVEL_1`` … ``LEVEL_4`` labels.
        sources: ``(n,)`` the measurement source recorded by ``earthlib`` (``asd``, ``prosail`` …).
    """

    spectra: np.ndarray
    wavelengths: np.ndarray
    materials: np.ndarray
    names: np.ndarray
    levels: np.ndarray
    sources: np.ndarray

    def of(self, material: str) -> np.ndarray:
        """The ``(k, B)`` spectra of one material.

        Raises:
            InputError: The material is unknown.
        """
        sel = self.materials == material
        if not sel.any():
            known = ", ".join(sorted(set(self.materials.tolist())))
            raise InputError(
                f"unknown material {material!r} for the synthetic hyperspectral scene. Fix: use one of {known}."
            )
        return self.spectra[sel]

    def resample(self, bands: int) -> SpectralLibrary:
        """The library resampled to ``bands`` evenly spaced bands over the same wavelength range.

        Each spectrum is linearly interpolated (``numpy.interp``) at ``linspace(first, last, bands)``.
        """
        new_wl = np.linspace(self.wavelengths[0], self.wavelengths[-1], bands)
        new = np.stack([np.interp(new_wl, self.wavelengths, s) for s in self.spectra]).astype(np.float32)
        return SpectralLibrary(new, new_wl.astype(np.float32), self.materials, self.names, self.levels, self.sources)


_CACHE: dict[str, SpectralLibrary] = {}


def load_spectral_library(path: str | Path | None = None) -> SpectralLibrary:
    """Load the shipped spectra subset (or another ``.npz`` written by :func:`build_spectra_subset`)."""
    key = str(path) if path is not None else ""
    if key in _CACHE:
        return _CACHE[key]
    if path is None:
        with resources.files("ssmad.data").joinpath("assets", ASSET_NAME).open("rb") as fh:
            lib = _from_npz(fh)
    else:
        with open(path, "rb") as fh:
            lib = _from_npz(fh)
    _CACHE[key] = lib
    return lib


def _from_npz(fh: BinaryIO) -> SpectralLibrary:
    with np.load(fh, allow_pickle=False) as z:
        return SpectralLibrary(
            spectra=z["spectra"].astype(np.float32),
            wavelengths=z["wavelength"].astype(np.float32),
            materials=z["material"],
            names=z["name"],
            levels=z["levels"],
            sources=z["source"],
        )


def read_earthlib(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """Read ``earthlib``'s full library from its ``data`` folder with numpy alone.

    Args:
        data_dir: the folder holding ``spectra.sli``, ``spectra.sli.hdr`` and ``spectra.csv``.

    Returns:
        ``(spectra (n, B) float32, wavelengths (B,) in nanometres, rows of spectra.csv)``.
    """
    data_dir = Path(data_dir)
    header = (data_dir / "spectra.sli.hdr").read_text()
    fields = {k: int(v) for k, v in re.findall(r"^(samples|lines|header offset|byte order)\s*=\s*(\d+)", header, re.M)}
    match = re.search(r"wavelength\s*=\s*\{([^}]*)\}", header)
    if match is None:
        raise InputError(f"{data_dir / 'spectra.sli.hdr'} has no wavelength list. Fix: reinstall earthlib==1.1.0.")
    wl_um = np.array([float(v) for v in match.group(1).split(",")], dtype=np.float64)
    dtype = ">f4" if fields.get("byte order", 0) else "<f4"
    raw = np.fromfile(data_dir / "spectra.sli", dtype=dtype, offset=fields.get("header offset", 0))
    spectra = raw.reshape(fields["lines"], fields["samples"]).astype(np.float32)
    with open(data_dir / "spectra.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != spectra.shape[0] or wl_um.size != spectra.shape[1]:
        raise InputError(f"earthlib data in {data_dir} are inconsistent. Fix: reinstall earthlib==1.1.0.")
    return spectra, (wl_um * 1000.0).astype(np.float32), rows


def _usable(spectrum: np.ndarray) -> bool:
    """Reject spectra with dropped-out (zero) bands, which a few field measurements have."""
    return bool(np.all(spectrum > 0) and np.all(np.isfinite(spectrum)))


def build_spectra_subset(data_dir: str | Path, out: str | Path, sizes: dict[str, int] | None = None) -> Path:
    """Write the shipped ``spectra.npz`` from an ``earthlib`` data folder (deterministic).

    For every material, the usable spectra (no zero bands) of its ``LEVEL_3`` classes are listed in file order
    and ``sizes[material]`` of them are drawn without replacement with a fixed seed, then kept in file order.

    Args:
        data_dir: ``earthlib``'s ``data`` folder (``python -c "import earthlib, os; print(os.path.dirname(
            earthlib.__file__))"`` + ``/data``).
        out: the ``.npz`` to write.
        sizes: spectra per material; :data:`SUBSET_SIZES` by default.

    Returns:
        The path written.
    """
    sizes = dict(SUBSET_SIZES if sizes is None else sizes)
    spectra, wl, rows = read_earthlib(data_dir)
    level3 = np.array([r["LEVEL_3"] for r in rows])
    rng = np.random.default_rng(_SUBSET_SEED)
    keep: list[int] = []
    material_of: dict[int, str] = {}
    for material, classes in MATERIALS.items():
        idx = [i for i in np.flatnonzero(np.isin(level3, classes)) if _usable(spectra[i])]
        n = min(sizes.get(material, 0), len(idx))
        chosen = sorted(rng.choice(np.asarray(idx), size=n, replace=False).tolist()) if n else []
        keep.extend(chosen)
        material_of.update(dict.fromkeys(chosen, material))
    keep.sort()
    out = Path(out)
    arrays = {
        "spectra": spectra[keep],
        "wavelength": wl,
        "material": np.array([material_of[i] for i in keep]),
        "name": np.array([rows[i]["NAME"] for i in keep]),
        "levels": np.array([[rows[i][f"LEVEL_{k}"] for k in range(1, 5)] for i in keep]),
        "source": np.array([rows[i]["SOURCE"] for i in keep]),
        "earthlib_index": np.array(keep, dtype=np.int32),
    }
    fd, tmp = tempfile.mkstemp(prefix=".spectra-", suffix=".npz", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d spectra (%s) to %s", len(keep), ", ".join(f"{m} {sizes.get(m, 0)}" for m in MATERIALS), out)
    return out


def material_names(library: SpectralLibrary | None = None) -> Sequence[str]:
    """Materials present in the (shipped) library, in :data:`MATERIALS` order."""
    lib = library or load_spectral_library()
    present = set(lib.materials.tolist())
    return [m for m in MATERIALS if m in present]
