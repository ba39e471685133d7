"""Atomic, no-clobber file writes and PNG encoding shared by the report writers.

A report, a metrics file or an overlay PNG is written to a temporary file in the destination folder first and
only then given its final name, so a crash or a full disk never leaves a half-written file under the real name.
Existing outputs are never replaced unless the caller asks (``overwrite=True``): the final step is a hard link
(which fails if the name exists, atomically), falling back to an existence check + :func:`os.replace` on file
systems without hard links.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError

logger = logging.getLogger(__name__)


class OutputExistsError(InputError, FileExistsError):
    """An output file exists already and ``overwrite`` was not requested (exit code 2 through the CLI)."""


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(
        f"the output file {path} exists already and was left unchanged. Fix: choose another output folder, "
        "delete or rename the file, or pass overwrite=True (--overwrite on the command line)."
    )


def check_writable(path: str | Path, overwrite: bool = False) -> Path:
    """Fail early, before any work, when ``path`` exists and ``overwrite`` is false.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists_error(path)
    return path


def write_bytes_atomic(path: str | Path, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder (created if needed).

    Args:
        path: Destination file.
        data: Complete file content.
        overwrite: Replace an existing file; otherwise an existing file is left untouched.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = check_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never follow or reuse somebody else's file; mode 0o666 lets the umask decide the final permissions.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    logger.debug("wrote %s (%d bytes)", path, len(data))
    return path


def _link_no_clobber(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that name exists (the caller removes ``tmp`` afterwards)."""
    try:
        os.link(tmp, path)
    except FileExistsError as err:
        raise _exists_error(path) from err
    except OSError:  # no hard links here (FAT, some network shares): check, then rename
        if path.exists():
            raise _exists_error(path) from None
        os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str, overwrite: bool = False) -> Path:
    """Write UTF-8 ``text`` atomically (see :func:`write_bytes_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"), overwrite=overwrite)


def png_bytes(rgb: np.ndarray | Image.Image, optimize: bool = False) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 array (or a Pillow image) as PNG bytes."""
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(np.ascontiguousarray(rgb))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=optimize)
    return buf.getvalue()
