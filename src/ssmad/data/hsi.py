"""Loading hyperspectral cubes (and their anomaly ground truth) from the files users bring.

:func:`load_cube` returns an :class:`HSICube` — ``(cube, gt, wavelengths)``, which unpacks like a tuple —
with the cube as ``(H, W, B)`` float32, the ground truth as ``(H, W)`` uint8 0/1 (any value > 0 is an
anomaly) or ``None``, and the wavelengths as ``(B,)`` or ``None``.

=====================  ===========================================================================
format                 how it is read
=====================  ===========================================================================
``.mat`` v4–v7         ``scipy.io.loadmat``; the cube under ``data_key`` (default ``data``), the ground truth
                       under ``gt_key`` (default ``map``) — the ABU convention used by ACMamba
``.mat`` v7.3          HDF5, read with ``h5py`` (the ``[hsi]`` extra). MATLAB writes column-major, so the
                       HDF5 arrays hold the axes reversed; they are transposed back to MATLAB's order
``.hdr`` + data        ENVI (:mod:`ssmad.data.envi`): bsq/bil/bip, either byte order, header offset,
                       data types 1, 2, 3, 4, 5, 12, 13, 14, 15, wavelengths from the header
``.npy`` / ``.npz``    numpy; ``.npz`` uses the same keys as ``.mat``
=====================  ===========================================================================

``axes`` says how the stored array is laid out (``"HWB"`` default, ``"BHW"``, ``"WHB"`` …; ``C`` is accepted
for ``B``); it applies to ``.mat``/``.npy``/``.npz`` (ENVI headers say it themselves). Integer data (ABU files
mix int16, uint16 and float64) are cast to float32.

Every problem raises :class:`~ssmad.errors.InputError` naming the file and the fix: a missing key (the
message lists the variables present), NaN/Inf values (how many, and where the first is), a 2-D array, a cube
with one band, a ground truth of another size, sizes that cannot be a scene.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, InputError, MissingDependencyError
from ._mat5 import check_mat5_structure, is_mat5
from .envi import DATA_SUFFIXES, find_header, read_envi
from .imageio import read_mask

logger = logging.getLogger(__name__)

DEFAULT_DATA_KEY = "data"
DEFAULT_GT_KEY = "map"
WAVELENGTH_KEYS: tuple[str, ...] = ("wavelength", "wavelengths", "wl")
#: Suffixes :func:`find_cubes` lists (ENVI data files are reached through their ``.hdr``).
CUBE_SUFFIXES: tuple[str, ...] = (".mat", ".hdr", ".npy", ".npz")
#: Largest cube accepted by default (values, not bytes): 2**31 float32 values are 8 GiB.
MAX_ELEMENTS = 2**31
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class HSICube(NamedTuple):
    """A hyperspectral scene: unpack as ``cube, gt, wavelengths = load_cube(...)``.

    Attributes:
        cube: ``(H, W, B)`` float32.
        gt: ``(H, W)`` uint8 0/1 anomaly mask, or ``None``.
        wavelengths: ``(B,)`` float64, or ``None``.
    """

    cube: np.ndarray
    gt: np.ndarray | None
    wavelengths: np.ndarray | None


def _parse_axes(axes: str) -> tuple[int, int, int]:
    """Positions of H, W and B in the stored array."""
    norm = str(axes).upper().replace("C", "B")
    if len(norm) != 3 or sorted(norm) != ["B", "H", "W"]:
        raise ConfigError(
            f"axes must name the stored array's axes with H, W and B (or C), e.g. 'HWB' or 'BHW'; got {axes!r}"
        )
    return norm.index("H"), norm.index("W"), norm.index("B")


def _is_hdf5(path: Path) -> bool:
    """MATLAB v7.3 files are HDF5 with a 512-byte user block; the signature sits at 0, 512, 1024, …."""
    with open(path, "rb") as f:
        for offset in (0, 512, 1024, 2048):
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
    return False


def _describe(listing: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in listing.items()) or "none"


def _missing_key(path: Path, key: str, role: str, listing: Mapping[str, str], arg: str) -> InputError:
    return InputError(
        f"{path} has no variable {key!r} for the {role}; it holds: {_describe(listing)}. "
        f"Fix: name the right one with {arg}='<name>' (e.g. load_cube(path, {arg}=...); on the command line "
        f"--{arg.replace('_', '-')} NAME)."
    )


def _choose_keys(
    path: Path,
    listing: Mapping[str, str],
    ndims: Mapping[str, int],
    data_key: str | None,
    gt_key: str | None,
) -> tuple[str, str | None]:
    """Pick the cube and ground-truth variable names from a file's listing."""
    if data_key is not None:
        if data_key not in listing:
            raise _missing_key(path, data_key, "cube", listing, "data_key")
        dkey = data_key
    elif DEFAULT_DATA_KEY in listing:
        dkey = DEFAULT_DATA_KEY
    else:
        three_d = [k for k, n in ndims.items() if n == 3]
        if len(three_d) != 1:
            raise InputError(
                f"{path} has no variable {DEFAULT_DATA_KEY!r} for the cube and "
                f"{'no' if not three_d else 'more than one'} 3-D array to fall back on; it holds: "
                f"{_describe(listing)}. Fix: name the cube with data_key='<name>' (and the ground truth with "
                "gt_key='<name>'); on the command line --data-key NAME / --gt-key NAME."
            )
        dkey = three_d[0]
        logger.info("%s: no %r variable; using the only 3-D array %r as the cube", path, DEFAULT_DATA_KEY, dkey)
    if gt_key is not None:
        if gt_key not in listing:
            raise _missing_key(path, gt_key, "ground truth", listing, "gt_key")
        gkey: str | None = gt_key
    else:
        gkey = DEFAULT_GT_KEY if DEFAULT_GT_KEY in listing and DEFAULT_GT_KEY != dkey else None
    return dkey, gkey


def _check_elements(path: Path, shape: tuple[int, ...], max_elements: int) -> None:
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if n > max_elements:
        raise InputError(
            f"the array in {path} has shape {shape} = {n:,} values, more than the limit {max_elements:,}. "
            "Fix: check the file (or its axes), crop the scene, or raise max_elements."
        )


def _wavelength_key(listing: Mapping[str, str]) -> str | None:
    lower = {k.lower(): k for k in listing}
    return next((lower[k] for k in WAVELENGTH_KEYS if k in lower), None)


class _Variables(NamedTuple):
    """The named arrays of a ``.mat``/``.npz`` file: a listing for messages, their shapes, and a reader."""

    listing: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    read: Callable[[str], np.ndarray]

    @property
    def ndims(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.shapes.items()}


def _mat_v5_variables(path: Path) -> _Variables:
    import scipy.io

    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(
            f"cannot read the MATLAB file {path}: {err}. Fix: check the path and its permissions."
        ) from err
    if is_mat5(data):  # scipy's v5 reader segfaults on some damaged tags: check them first
        check_mat5_structure(data, path)
    del data
    try:
        info = scipy.io.whosmat(str(path))
    except Exception as err:  # scipy's parser fails in many ways (MatReadError, IndexError, ...) on a bad file
        raise InputError(
            f"cannot read the MATLAB file {path}: {type(err).__name__}: {err}. Fix: check that the file is a "
            "complete .mat file (re-save it with MATLAB's save or scipy.io.savemat)."
        ) from err

    def read(key: str) -> np.ndarray:
        try:
            return scipy.io.loadmat(str(path), variable_names=[key])[key]
        except Exception as err:  # as above: any parser failure means a damaged file
            raise InputError(
                f"cannot read the variable {key!r} of the MATLAB file {path}: {type(err).__name__}: {err}. "
                "Fix: re-save the file."
            ) from err

    listing = {name: f"{'×'.join(map(str, shape))} {cls}" for name, shape, cls in info}
    return _Variables(listing, {name: tuple(shape) for name, shape, _ in info}, read)


def _mat_v73_variables(path: Path) -> _Variables:
    try:
        import h5py
    except ImportError as err:
        raise MissingDependencyError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which needs h5py: pip install 'ssmad[hsi]' (or h5py)"
        ) from err
    listing: dict[str, str] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with h5py.File(path, "r") as f:
            for name, obj in f.items():
                if name.startswith("#"):
                    continue
                if isinstance(obj, h5py.Dataset):
                    mshape = tuple(reversed(obj.shape))  # MATLAB's order
                    cls = obj.attrs.get("MATLAB_class", b"")
                    cls = cls.decode() if isinstance(cls, bytes) else str(cls)
                    listing[name] = f"{'×'.join(map(str, mshape))} {cls or obj.dtype}"
                    shapes[name] = mshape
                else:
                    listing[name] = "(struct/cell)"
                    shapes[name] = ()
    except Exception as err:  # a damaged HDF5 file fails in h5py as OSError, RuntimeError, KeyError, ...
        raise InputError(
            f"cannot read the MATLAB v7.3 file {path}: {type(err).__name__}: {err}. Fix: check that the file is "
            "complete, or re-save it."
        ) from err

    def read(key: str) -> np.ndarray:
        try:
            with h5py.File(path, "r") as f:
                obj = f[key]
                if not isinstance(obj, h5py.Dataset):
                    raise InputError(
                        f"the variable {key!r} of {path} is a MATLAB struct/cell, not a numeric array. "
                        "Fix: save the array itself (or name another variable)."
                    )
                if obj.dtype.names is not None:
                    raise InputError(
                        f"the variable {key!r} of {path} is complex or compound ({obj.dtype}); a real array is "
                        "needed. Fix: save abs() or real() of it."
                    )
                # HDF5 holds MATLAB's column-major array with its axes reversed: transposing gives MATLAB's view.
                return np.asarray(obj[()]).T
        except InputError:
            raise
        except Exception as err:  # as above: the listing worked but the data are damaged
            raise InputError(
                f"cannot read the variable {key!r} of the MATLAB v7.3 file {path}: {type(err).__name__}: {err}. "
                "Fix: re-save the file."
            ) from err

    return _Variables(listing, shapes, read)


def _npz_variables(path: Path) -> _Variables:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"cannot read the numpy archive {path}: {err}. Fix: re-save it with numpy.savez.") from err
    listing = {k: f"{'×'.join(map(str, a.shape))} {a.dtype}" for k, a in arrays.items()}
    return _Variables(listing, {k: a.shape for k, a in arrays.items()}, arrays.__getitem__)


def _variables(path: Path) -> _Variables:
    if path.suffix.lower() == ".npz":
        return _npz_variables(path)
    return _mat_v73_variables(path) if _is_hdf5(path) else _mat_v5_variables(path)


def _read_checked(path: Path, variables: _Variables, key: str, max_elements: int) -> np.ndarray:
    _check_elements(path, variables.shapes[key], max_elements)
    return np.asarray(variables.read(key))


def _read_npy(path: Path, max_elements: int) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"cannot read the numpy file {path}: {err}. Fix: re-save it with numpy.save.") from err
    _check_elements(path, arr.shape, max_elements)
    return np.asarray(arr)


def _to_float32(arr: np.ndarray, path: Path, role: str) -> np.ndarray:
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating):
        with np.errstate(over="ignore"):  # values beyond float32 become Inf, reported by the validation
            return np.ascontiguousarray(arr, dtype=np.float32)
    raise InputError(
        f"the {role} in {path} has dtype {arr.dtype}; a real numeric array is needed. "
        "Fix: save it as integers or floats (abs()/real() for complex data)."
    )


def _validate_cube(cube: np.ndarray, path: Path, axes: str) -> None:
    if cube.ndim != 3:
        hint = (
            "a 2-D array is one band or a (pixels, bands) matrix; reshape it to (H, W, B) first"
            if cube.ndim == 2
            else "pass one (H, W, B) cube (squeeze or select extra axes first)"
        )
        raise InputError(f"the cube in {path} has shape {cube.shape}; a 3-D (H, W, B) cube is needed. Fix: {hint}.")
    h, w, b = cube.shape
    if min(h, w, b) == 0:
        raise InputError(f"the cube in {path} is empty, shape (H, W, B) = {cube.shape}. Fix: check the file.")
    if b == 1:
        raise InputError(
            f"the cube in {path} has one band (H, W, B) = {cube.shape} with axes={axes!r}: that is a grayscale "
            "image, not a hyperspectral cube. Fix: if the bands are on another axis pass e.g. axes='BHW'; for "
            "grayscale images use an image model."
        )
    if h < 2 or w < 2:
        raise InputError(
            f"the cube in {path} is {h}×{w} pixels with {b} bands (axes={axes!r}), not a scene. Fix: check the "
            "axes (e.g. axes='BHW' or 'HBW') or reshape a (pixels, bands) matrix to (H, W, B)."
        )
    if b > h * w:
        logger.warning("%s: %d bands but only %d pixels — check axes=%r", path, b, h * w, axes)
    finite = np.isfinite(cube)
    if not finite.all():
        bad = ~finite
        n_nan = int(np.isnan(cube).sum())
        n_inf = int(bad.sum()) - n_nan
        r, c, k = (int(i) for i in np.unravel_index(int(np.argmax(bad)), cube.shape))
        raise InputError(
            f"the cube in {path} has {n_nan} NaN and {n_inf} Inf values (after conversion to float32); the first "
            f"is at row {r}, column {c}, band {k}. Fix: replace them (e.g. numpy.nan_to_num, interpolation from "
            "neighbours) or drop the bad bands before detection."
        )


def _prepare_gt(gt: np.ndarray, hw: tuple[int, int], path: Path | str) -> np.ndarray:
    arr = np.asarray(gt)
    if arr.ndim > 2:
        arr = arr.squeeze()
    if arr.ndim != 2 or arr.shape != hw:
        hint = ""
        if arr.ndim == 2 and arr.shape == hw[::-1]:
            hint = " It looks transposed (W, H): save it as (H, W) or transpose it."
        raise InputError(
            f"the ground truth in {path} has shape {arr.shape} but the cube is {hw[0]}×{hw[1]} (H×W).{hint} "
            "Fix: give a ground-truth map with the cube's height and width."
        )
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number)):
        raise InputError(f"the ground truth in {path} has dtype {arr.dtype}. Fix: save it as a numeric 0/1 map.")
    return (np.nan_to_num(arr.astype(np.float64), nan=0.0) > 0).astype(np.uint8)


def _prepare_wavelengths(wl: np.ndarray | None, bands: int, path: Path) -> np.ndarray | None:
    if wl is None:
        return None
    values = np.asarray(wl, dtype=np.float64).ravel()
    if values.size != bands:
        logger.warning("%s: %d wavelengths for %d bands; ignoring them", path, values.size, bands)
        return None
    return values


def load_ground_truth(path: str | Path, shape: tuple[int, int], gt_key: str | None = None) -> np.ndarray:
    """Load a separate ground-truth map.

    Image files, ``.npy``, ``.npz``/``.mat`` (``gt_key``, default ``map``, else the only 2-D array) and one-band
    ENVI files are read; any value > 0 is an anomaly.

    Args:
        path: The ground-truth file.
        shape: ``(H, W)`` of the cube it belongs to.
        gt_key: Variable name inside ``.mat``/``.npz`` files.

    Returns:
        ``(H, W)`` uint8 0/1.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"the ground-truth file {path} does not exist. Fix: check gt_path.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(path, MAX_ELEMENTS)
    elif suffix in (".mat", ".npz"):
        variables = _variables(path)
        key = gt_key
        if key is None:
            two_d = [k for k, n in variables.ndims.items() if n == 2]
            key = DEFAULT_GT_KEY if DEFAULT_GT_KEY in variables.listing else (two_d[0] if len(two_d) == 1 else None)
        if key is None or key not in variables.listing:
            raise _missing_key(path, key or DEFAULT_GT_KEY, "ground truth", variables.listing, "gt_key")
        arr = _read_checked(path, variables, key, MAX_ELEMENTS)
    elif (header := path if suffix == ".hdr" else find_header(path)) is not None:
        cube, _ = read_envi(header, None if header == path else path)
        arr = cube[..., 0] if cube.shape[-1] == 1 else cube
    else:
        arr = read_mask(path)
    return _prepare_gt(arr, shape, path)


def load_cube(
    path: str | Path,
    data_key: str | None = None,
    gt_key: str | None = None,
    axes: str = "HWB",
    *,
    gt_path: str | Path | None = None,
    data_file: str | Path | None = None,
    max_elements: int = MAX_ELEMENTS,
) -> HSICube:
    """Load a hyperspectral cube, its ground truth and wavelengths.

    Args:
        path: A ``.mat`` (v4–v7.3), ``.npy``, ``.npz``, ENVI ``.hdr`` file, or an ENVI data file whose header
            sits next to it.
        data_key: Variable holding the cube in ``.mat``/``.npz`` files (default ``data``; when absent the only
            3-D array is used).
        gt_key: Variable holding the ground truth (default ``map``; none when absent).
        axes: Layout of the stored array (``HWB`` default; e.g. ``BHW`` for band-first arrays). Ignored for
            ENVI files, whose header states the interleave.
        gt_path: A separate ground-truth file (image, ``.npy``, ``.npz``, ``.mat`` or ENVI); ``gt_key`` then names
            the variable inside it.
        data_file: ENVI only: the raw data file, when it is not next to the header under a usual name.
        max_elements: Largest cube accepted, in values.

    Returns:
        :class:`HSICube` ``(cube (H, W, B) float32, gt (H, W) uint8 or None, wavelengths (B,) or None)``.

    Raises:
        InputError: Unreadable file, missing variable, NaN/Inf, a 2-D or one-band array, a ground truth of
            another size, absurd sizes.
        MissingDependencyError: A v7.3 ``.mat`` file without ``h5py`` installed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"the cube file {path} does not exist. Fix: check the path.")
    if path.is_dir():
        raise InputError(
            f"{path} is a folder; load_cube reads one file. Fix: pass a file, or list a folder with find_cubes()."
        )
    ipos = _parse_axes(axes)
    suffix = path.suffix.lower()
    wl: np.ndarray | None
    gt: np.ndarray | None = None
    header = path if suffix == ".hdr" else (None if suffix in (".mat", ".npy", ".npz") else find_header(path))
    if header is not None:
        if axes.upper().replace("C", "B") != "HWB":
            logger.warning("%s: axes=%r ignored, the ENVI header gives the interleave", path, axes)
        if data_file is None and suffix != ".hdr":
            data_file = path
        raw, hdr = read_envi(header, data_file, max_elements=max_elements)
        cube = _to_float32(raw, path, "cube")
        wl = hdr.wavelengths
    else:
        if suffix in (".mat", ".npz"):
            variables = _variables(path)
            cube_gt_key = None if gt_path is not None else gt_key  # with gt_path, gt_key names a variable there
            dkey, gkey = _choose_keys(path, variables.listing, variables.ndims, data_key, cube_gt_key)
            raw = _read_checked(path, variables, dkey, max_elements)
            gt = None if gkey is None or gt_path is not None else _read_checked(path, variables, gkey, max_elements)
            wkey = _wavelength_key(variables.listing)
            wl = None if wkey is None else _read_checked(path, variables, wkey, max_elements)
        elif suffix == ".npy":
            if data_key is not None or gt_key is not None:
                logger.warning("%s: data_key/gt_key are ignored for .npy files (one array per file)", path)
            raw, wl = _read_npy(path, max_elements), None
        elif suffix in DATA_SUFFIXES:
            raise InputError(
                f"{path} looks like an ENVI data file but no header was found next to it (tried "
                f"{path.name}.hdr and {path.stem}.hdr). Fix: put the .hdr file beside it, or pass the header path "
                "with data_file=<this file>."
            )
        else:
            raise InputError(
                f"cannot load {path}: unknown cube format {suffix!r}. Supported: .mat (v4–v7.3), .npy, .npz, "
                "ENVI (.hdr + data file). Fix: convert the cube to one of these (e.g. numpy.save)."
            )
        raw = np.asarray(raw)
        if raw.ndim != 3:
            _validate_cube(_to_float32(raw, path, "cube"), path, axes)
        cube = _to_float32(np.transpose(raw, ipos), path, "cube")
    _validate_cube(cube, path, axes)
    hw = (cube.shape[0], cube.shape[1])
    if gt_path is not None:
        gt_arr: np.ndarray | None = load_ground_truth(gt_path, hw, gt_key)
    else:
        gt_arr = None if gt is None else _prepare_gt(gt, hw, path)
    return HSICube(cube, gt_arr, _prepare_wavelengths(wl, cube.shape[-1], path))


def find_cubes(folder: str | Path) -> list[Path]:
    """Cube files in ``folder`` (``.mat``, ``.npy``, ``.npz``, ENVI ``.hdr``), sorted by name — a job list.

    Raises:
        InputError: ``folder`` is not a folder or holds no cube files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"the folder {folder} does not exist. Fix: check the path.")
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CUBE_SUFFIXES and p.name[0] != "."),
        key=lambda p: p.name,
    )
    if not files:
        raise InputError(
            f"the folder {folder} holds no cube files ({', '.join(CUBE_SUFFIXES)}). Fix: point to the scenes' folder."
        )
    return files
