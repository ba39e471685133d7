"""A structural check of MATLAB v5 files before scipy reads them.

``scipy.io.loadmat`` (1.17) crashes the interpreter with a segmentation fault when a numeric array's data element
carries an unknown type code (0, 8, 10, 11, > 18) or a matrix/compressed code (14, 15) where numbers belong: a
damaged file then kills the whole process instead of raising. :func:`check_mat5_structure` walks the element tags
of the file (no pixel data is converted) and raises :class:`~ssmad.errors.InputError` on any tag scipy cannot
read, so the caller can hand only well-formed files to scipy.

Layout (MathWorks, "MAT-File Format"): a 128-byte header whose bytes 126–127 read ``IM`` (little-endian) or ``MI``
(big-endian), then data elements. Each element has an 8-byte tag ``(type: u32, size: u32)`` followed by ``size``
bytes padded to 8, or a 4-byte *small* tag ``(type: u16, size: u16)`` with up to 4 bytes of data in the same 8
bytes. Top-level elements are ``miMATRIX`` (14) or ``miCOMPRESSED`` (15, a zlib stream holding one element). A
matrix holds sub-elements: array flags (its class in the low byte), dimensions, name, then its data — numeric
parts for numeric, char and sparse classes, nested matrices for cells, structs and objects.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ..errors import InputError

__all__ = ["NUMERIC_TYPES", "VALID_TYPES", "check_mat5_structure", "is_mat5"]

MI_MATRIX = 14
MI_COMPRESSED = 15
#: Data-element type codes of the format (8, 10 and 11 are reserved).
VALID_TYPES = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17, 18})
#: Types that may hold the numbers of a numeric, char or sparse array.
NUMERIC_TYPES = VALID_TYPES - {MI_MATRIX, MI_COMPRESSED}
#: Array classes whose sub-elements after flags/dimensions/name are nested matrices (cell, struct, object).
CONTAINER_CLASSES = frozenset({1, 2, 3})
#: Array classes whose data are numbers (char, sparse, double … uint64).
NUMERIC_CLASSES = frozenset(range(4, 16))
#: Deepest nesting of cells/structs walked (MATLAB files of real data nest a few levels).
MAX_DEPTH = 64


def is_mat5(head: bytes) -> bool:
    """Whether the first 128 bytes of a file are a MATLAB v5 header (``IM``/``MI`` endian mark)."""
    return len(head) >= 128 and head[126:128] in (b"IM", b"MI")


def _damaged(path: Path, what: str) -> InputError:
    return InputError(
        f"cannot read the MATLAB file {path}: {what}, so the file is damaged. Fix: check that the file is "
        "complete (re-copy it), or re-save it with MATLAB's save or scipy.io.savemat."
    )


def _elements(buf: bytes, start: int, end: int, order: str, path: Path, pad: bool) -> list[tuple[int, int, int]]:
    """``(type, data start, data end)`` of the consecutive elements in ``buf[start:end]``."""
    out = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise _damaged(path, f"a data element tag at byte {pos} is cut off")
        word, size = struct.unpack_from(order + "II", buf, pos)
        if word >> 16:  # small element: type and size share the first word, data in the second
            mtype, size = word & 0xFFFF, word >> 16
            if size > 4:
                raise _damaged(path, f"a small data element at byte {pos} claims {size} bytes (at most 4)")
            out.append((mtype, pos + 4, pos + 4 + size))
            pos += 8
            continue
        data_end = pos + 8 + size
        if data_end > end:
            raise _damaged(path, f"a data element at byte {pos} claims {size:,} bytes, past the end of its container")
        out.append((word, pos + 8, data_end))
        pos = data_end + ((-size) % 8 if pad else 0)
    return out


def _check_matrix(buf: bytes, start: int, end: int, order: str, path: Path, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _damaged(path, f"arrays are nested more than {MAX_DEPTH} levels deep")
    subs = _elements(buf, start, end, order, path, pad=True)
    if not subs:
        return  # an empty matrix element (MATLAB writes these for empty cells)
    mtype, a, b = subs[0]
    if mtype not in (5, 6) or b - a < 4:  # array flags: miUINT32 (scipy also accepts miINT32)
        raise _damaged(path, f"a matrix at byte {start - 8} does not start with its array flags (type {mtype})")
    mclass = struct.unpack_from(order + "I", buf, a)[0] & 0xFF
    for mtype, a, b in subs[1:]:
        if mtype not in VALID_TYPES:
            raise _damaged(path, f"a data element at byte {a} has the unknown type code {mtype}")
        if mtype == MI_MATRIX and mclass in CONTAINER_CLASSES:
            _check_matrix(buf, a, b, order, path, depth + 1)
        elif mclass in NUMERIC_CLASSES and mtype not in NUMERIC_TYPES:
            raise _damaged(path, f"numeric data at byte {a} are tagged with the container type {mtype}")
        elif mtype == MI_COMPRESSED:
            raise _damaged(path, f"a compressed element at byte {a} sits inside an array")


def _check_top(buf: bytes, start: int, order: str, path: Path) -> None:
    for mtype, a, b in _elements(buf, start, len(buf), order, path, pad=False):
        if mtype == MI_MATRIX:
            _check_matrix(buf, a, b, order, path, 0)
        elif mtype == MI_COMPRESSED:
            try:
                inner = zlib.decompressobj().decompress(buf[a:b])
            except zlib.error as err:
                raise _damaged(path, f"the compressed variable at byte {a} does not decompress ({err})") from err
            _check_top(inner, 0, order, path)
        else:
            raise _damaged(path, f"a top-level data element at byte {a - 8} has type {mtype} (14 or 15 expected)")


def check_mat5_structure(data: bytes, path: str | Path) -> None:
    """Walk every element tag of a MATLAB v5 file; raise on anything scipy's reader cannot take.

    Args:
        data: The whole file (``is_mat5(data)`` must hold).
        path: The file, for messages.

    Raises:
        InputError: An unknown type code, a numeric array holding matrix elements, an element longer than its
            container, a cut-off tag or a broken compressed stream.
    """
    path = Path(path)
    order = "<" if data[126:128] == b"IM" else ">"
    _check_top(data, 128, order, path)
