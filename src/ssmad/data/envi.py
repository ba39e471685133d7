"""ENVI raster files: a text header (``.hdr``) beside a raw binary data file.

The header is a list of ``key = value`` lines after a first line reading ``ENVI``; values in braces may span
lines (``wavelength = {400.2, 402.7, ...}``). The keys used here:

======================  ===========================================================================
key                     meaning
======================  ===========================================================================
``samples``             columns (W)
``lines``               rows (H)
``bands``               spectral bands (B)
``data type``           1 uint8, 2 int16, 3 int32, 4 float32, 5 float64, 12 uint16, 13 uint32,
                        14 int64, 15 uint64 (6 and 9, complex, are refused)
``interleave``          ``bsq`` (band, row, column), ``bil`` (row, band, column), ``bip`` (row, column, band)
``byte order``          0 little-endian, 1 big-endian
``header offset``       bytes to skip at the start of the data file
``wavelength``          one value per band (optional)
======================  ===========================================================================

The data file is found next to the header: the header's name without ``.hdr`` (``scene.img.hdr`` →
``scene.img``), or the same stem with one of :data:`DATA_SUFFIXES` (or none). A data file given explicitly
wins. Everything is parsed here; the ``spectral`` package is not needed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

logger = logging.getLogger(__name__)

#: ENVI ``data type`` codes → numpy type characters (byte order added from the header).
ENVI_DTYPES: dict[int, str] = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
#: Suffixes tried for the data file next to a header (the empty suffix means no extension).
DATA_SUFFIXES: tuple[str, ...] = ("", ".img", ".dat", ".raw", ".bin", ".bsq", ".bil", ".bip", ".sli", ".cube")
INTERLEAVES: tuple[str, ...] = ("bsq", "bil", "bip")


@dataclass(frozen=True)
class EnviHeader:
    """The parts of an ENVI header needed to read the data.

    Attributes:
        path: The header file.
        lines: Rows (H).
        samples: Columns (W).
        bands: Bands (B).
        dtype: Numpy dtype of the stored values, byte order included.
        interleave: ``bsq``, ``bil`` or ``bip``.
        offset: Header offset in bytes.
        wavelengths: ``(B,)`` float64 or ``None``.
        file_type: The ``file type`` value (``ENVI Standard``, ``ENVI Spectral Library`` …).
        fields: Every key of the header (lower case) with its raw value (a string, or a list for braces).
    """

    path: Path
    lines: int
    samples: int
    bands: int
    dtype: np.dtype
    interleave: str
    offset: int
    wavelengths: np.ndarray | None
    file_type: str
    fields: dict[str, str | list[str]] = field(repr=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(H, W, B)``."""
        return self.lines, self.samples, self.bands

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data after the offset."""
        return self.lines * self.samples * self.bands * self.dtype.itemsize


def parse_header_text(text: str, path: Path) -> dict[str, str | list[str]]:
    """Parse the text of an ENVI header into ``{key: value}`` (keys lower case, brace values split on commas).

    Raises:
        InputError: The text does not start with ``ENVI`` or a brace is never closed.
    """
    lines = text.splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].strip().upper().startswith("ENVI"):
        raise InputError(
            f"{path} is not an ENVI header: its first line must read 'ENVI'. Fix: pass the .hdr file that belongs "
            "to the cube (or the data file, whose header is then found next to it)."
        )
    out: dict[str, str | list[str]] = {}
    pending: list[str] = []
    for raw in lines[1:]:
        if pending:
            pending.append(raw)
            joined = "\n".join(pending)
            if joined.count("{") > joined.count("}"):
                continue
            line, pending = joined, []
        else:
            line = raw
            if not line.strip() or line.lstrip().startswith(";") or "=" not in line:
                continue
            if line.count("{") > line.count("}"):
                pending = [line]
                continue
        key, _, value = line.partition("=")
        key = " ".join(key.strip().lower().split())
        value = value.strip()
        if value.startswith("{") and value.endswith("}"):
            inner = value[1:-1].strip()
            out[key] = inner if key == "description" else [v.strip() for v in inner.split(",") if v.strip()]
        else:
            out[key] = value
    if pending:
        raise InputError(f"the ENVI header {path} has a '{{' that is never closed. Fix: repair the header.")
    return out


def _int_field(fields: dict[str, str | list[str]], key: str, path: Path, default: int | None = None) -> int:
    value = fields.get(key)
    if value is None:
        if default is not None:
            return default
        raise InputError(
            f"the ENVI header {path} has no '{key}' entry. Fix: add it (samples = columns, lines = rows, bands, "
            "data type code)."
        )
    try:
        return int(str(value).strip())
    except ValueError as err:
        raise InputError(
            f"the ENVI header {path}: '{key} = {value}' is not an integer. Fix: correct the header."
        ) from err


def read_header(path: str | Path) -> EnviHeader:
    """Read and validate an ENVI header.

    Raises:
        InputError: Missing file, malformed header, missing or invalid entries, complex data types.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as err:
        raise InputError(f"cannot read the ENVI header {path}: {err}. Fix: check the path.") from err
    fields = parse_header_text(text, path)
    samples = _int_field(fields, "samples", path)
    lines = _int_field(fields, "lines", path)
    bands = _int_field(fields, "bands", path)
    code = _int_field(fields, "data type", path)
    offset = _int_field(fields, "header offset", path, default=0)
    order = _int_field(fields, "byte order", path, default=0)
    if min(samples, lines, bands) <= 0 or offset < 0:
        raise InputError(
            f"the ENVI header {path} gives lines={lines}, samples={samples}, bands={bands}, header offset={offset}; "
            "sizes must be positive and the offset non-negative. Fix: correct the header."
        )
    if code in (6, 9):
        raise InputError(
            f"the ENVI file {path} stores complex values (data type {code}); anomaly detection needs real "
            "reflectance/radiance. Fix: convert to magnitude (or real part) first."
        )
    if code not in ENVI_DTYPES:
        raise InputError(
            f"the ENVI header {path} has an unknown data type code {code}; known codes: "
            f"{', '.join(map(str, sorted(ENVI_DTYPES)))}. Fix: correct the header."
        )
    if order not in (0, 1):
        raise InputError(f"the ENVI header {path}: byte order must be 0 or 1, got {order}. Fix: correct the header.")
    dtype = np.dtype(("<" if order == 0 else ">") + ENVI_DTYPES[code])
    interleave = str(fields.get("interleave", "bsq")).strip().lower()
    if interleave not in INTERLEAVES:
        raise InputError(
            f"the ENVI header {path}: unknown interleave {interleave!r}; expected bsq, bil or bip. "
            "Fix: correct the header."
        )
    wavelengths = None
    wl = fields.get("wavelength")
    if isinstance(wl, list):
        try:
            values = np.asarray([float(v) for v in wl], dtype=np.float64)
        except ValueError:
            logger.warning("%s: ignoring non-numeric wavelength list", path)
        else:
            if values.size == bands:
                wavelengths = values
            else:
                logger.warning("%s: %d wavelengths for %d bands; ignoring them", path, values.size, bands)
    file_type = str(fields.get("file type", "ENVI Standard"))
    return EnviHeader(path, lines, samples, bands, dtype, interleave, offset, wavelengths, file_type, fields)


def find_data_file(header_path: str | Path) -> Path:
    """The data file next to an ENVI header.

    Raises:
        InputError: No candidate exists (the message lists the names tried).
    """
    header_path = Path(header_path)
    base = header_path.with_suffix("")
    candidates = [base.with_name(base.name + s) for s in DATA_SUFFIXES]
    candidates += [base.with_name(base.name + s.upper()) for s in DATA_SUFFIXES if s]
    for c in candidates:
        if c.is_file() and c != header_path:
            return c
    tried = ", ".join(c.name for c in candidates[: len(DATA_SUFFIXES)])
    raise InputError(
        f"no data file found for the ENVI header {header_path}; tried {tried} in {header_path.parent}. "
        "Fix: put the data file next to the header with one of these names, or pass data_file=<path>."
    )


def find_header(data_path: str | Path) -> Path | None:
    """The ENVI header of a data file (``scene.img.hdr`` or ``scene.hdr``), or ``None``."""
    data_path = Path(data_path)
    for c in (
        data_path.with_name(data_path.name + ".hdr"),
        data_path.with_name(data_path.name + ".HDR"),
        data_path.with_suffix(".hdr"),
        data_path.with_suffix(".HDR"),
    ):
        if c.is_file() and c != data_path:
            return c
    return None


def read_envi(
    header_path: str | Path, data_file: str | Path | None = None, *, max_elements: int | None = None
) -> tuple[np.ndarray, EnviHeader]:
    """Read an ENVI cube as ``(H, W, B)`` in its stored dtype (native byte order).

    Args:
        header_path: The ``.hdr`` file.
        data_file: The raw data file; found next to the header when ``None``.
        max_elements: Refuse cubes with more values than this (before reading anything).

    Raises:
        InputError: Header problems, a missing data file, a data file shorter than the header says.
    """
    hdr = read_header(header_path)
    if max_elements is not None and hdr.lines * hdr.samples * hdr.bands > max_elements:
        raise InputError(
            f"the ENVI header {hdr.path} describes {hdr.lines}×{hdr.samples}×{hdr.bands} = "
            f"{hdr.lines * hdr.samples * hdr.bands:,} values, more than the limit {max_elements:,}. Fix: check "
            "lines/samples/bands in the header, crop the scene, or raise max_elements."
        )
    if hdr.file_type.lower().startswith("envi spectral library"):
        raise InputError(
            f"{hdr.path} is an ENVI spectral library ({hdr.lines} spectra of {hdr.samples} bands), not an image "
            "cube. Fix: pass an image cube; read libraries with numpy (rows are spectra)."
        )
    data_path = Path(data_file) if data_file is not None else find_data_file(hdr.path)
    if not data_path.is_file():
        raise InputError(f"the ENVI data file {data_path} does not exist. Fix: check data_file=.")
    size = data_path.stat().st_size
    need = hdr.offset + hdr.nbytes
    if size < need:
        raise InputError(
            f"the ENVI data file {data_path} has {size:,} bytes but its header {hdr.path} needs {need:,} "
            f"(header offset {hdr.offset} + {hdr.lines}×{hdr.samples}×{hdr.bands} values × {hdr.dtype.itemsize} "
            f"bytes of data type {hdr.dtype.name}). Fix: check lines/samples/bands/data type/header offset, or "
            "that the file was copied completely."
        )
    if size > need:
        logger.warning("%s: %d bytes after the cube are ignored", data_path, size - need)
    count = hdr.lines * hdr.samples * hdr.bands
    flat = np.fromfile(data_path, dtype=hdr.dtype, count=count, offset=hdr.offset)
    if hdr.interleave == "bsq":
        cube = flat.reshape(hdr.bands, hdr.lines, hdr.samples).transpose(1, 2, 0)
    elif hdr.interleave == "bil":
        cube = flat.reshape(hdr.lines, hdr.bands, hdr.samples).transpose(0, 2, 1)
    else:
        cube = flat.reshape(hdr.lines, hdr.samples, hdr.bands)
    return cube, hdr
