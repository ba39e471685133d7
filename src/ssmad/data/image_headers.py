"""Image sizes from PNG and JPEG headers without Pillow: the fast path of the ``headers`` check.

Checking a large index (Real-IAD: ~151,000 JPEG images and ~50,000 PNG masks) opens every header once. Pillow's
:func:`PIL.Image.open` does that correctly for every format but spends most of its time building tables a size
check does not need (a JPEG's quantisation tables, a PNG's chunk bookkeeping). :func:`fast_size` reads just the
bytes that hold the size:

* PNG: the 8-byte signature, then the ``IHDR`` chunk, which the format requires first: width and height are the
  two big-endian 32-bit numbers after the chunk name;
* JPEG: the ``SOI`` marker, then segment by segment (each ``FFxx`` marker and its 16-bit length) to the first
  start-of-frame marker (``SOF0``–``SOF15`` except ``DHT``/``JPG``/``DAC``), whose payload holds precision,
  height and width.

Anything else — another format, an unexpected byte, a frame whose height comes later (``DNL``), a short file —
returns ``None`` and :func:`header_size` falls back to Pillow (:func:`ssmad.data.imageio.image_size`, the
reference), which also writes the error message for a broken file. Tests compare both on many files.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from .imageio import image_size

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Start-of-frame markers (their payload holds the size); C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length field: TEM, RST0–RST7 (and SOI, handled first).
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_MAX_SEGMENTS = 1000


def _png_size(head: bytes) -> tuple[int, int] | None:
    if len(head) < 24 or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (width, height) if width and height else None


def _jpeg_size(f: BinaryIO) -> tuple[int, int] | None:
    f.seek(2)  # after SOI
    for _ in range(_MAX_SEGMENTS):
        byte = f.read(1)
        if byte != b"\xff":
            return None
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _STANDALONE:
            continue
        if code in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or scan data before any frame: let Pillow decide
            return None
        raw = f.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if length < 2:
            return None
        if code in _SOF:
            payload = f.read(5)
            if len(payload) < 5:
                return None
            height, width = struct.unpack(">HH", payload[1:5])
            return (width, height) if width and height else None
        f.seek(length - 2, 1)
    return None


def fast_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG or JPEG file from its header bytes, or ``None`` (another format, anything odd).

    Raises:
        OSError: The file cannot be opened (missing, a folder, no permission).
    """
    with open(path, "rb") as f:
        head = f.read(24)
        if head.startswith(_PNG_SIGNATURE):
            return _png_size(head)
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(f)
    return None


def header_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """``(width, height)`` of an image file: :func:`fast_size`, else Pillow's header (:func:`image_size`).

    Raises:
        InputError: The file is missing or is not an image Pillow can identify (Pillow's message, naming it).
    """
    try:
        size = fast_size(path)
    except OSError:
        size = None  # Pillow's reader says what is wrong, in the project's words
    return size if size is not None else image_size(path, what)
