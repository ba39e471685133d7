"""Run folders and atomic file writes.

Every ``ssmad train`` writes into a fresh, versioned folder (anomalib's convention, ecosystem §1.3)::

    results/<model>/<dataset>/<category|all>/v1/
    results/<model>/<dataset>/<category|all>/v2/
    results/<model>/<dataset>/<category|all>/latest -> v2

A version folder is claimed with :func:`os.mkdir`, which fails when the name exists, so two processes starting at
once never share a folder and an existing run is never overwritten. ``latest`` is a relative symbolic link
replaced atomically (a small text file naming the version on file systems without symbolic links).

Files are written through a temporary file in the destination folder and :func:`os.replace`, so a crash never
leaves a half-written file under its real name; :func:`atomic_write_bytes` refuses to replace an existing file
unless asked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "LATEST",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_write_yaml",
    "create_run_dir",
    "list_versions",
    "plain_data",
    "resolve_run",
    "run_parent",
    "safe_name",
    "update_latest",
]

LATEST = "latest"
_VERSION = re.compile(r"^v(\d+)$")


def _exists_error(path: Path) -> InputError:
    return InputError(
        f"the output file {path} exists already and was left unchanged. Fix: write to another folder, delete or "
        "rename the file, or pass overwrite=True (--overwrite on the command line)."
    )


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    Args:
        path: Destination file; its folder is created when missing.
        data: The complete content.
        overwrite: Replace an existing file; otherwise an existing file is an error and stays untouched.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists_error(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not overwrite and (path.exists() or path.is_symlink()):
            raise _exists_error(path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = False) -> Path:
    """UTF-8 text through :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def plain_data(value: Any) -> Any:
    """JSON/YAML-friendly copy of ``value``: mappings with str keys, tuples → lists, paths → str, numpy → Python."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [plain_data(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _standard_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (strict JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _standard_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_standard_json(v) for v in value]
    return value


def atomic_write_json(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    """Pretty, standard JSON (sorted keys, trailing newline, NaN/Inf written as ``null``), written atomically."""
    text = json.dumps(_standard_json(data), indent=2, sort_keys=True, default=str, allow_nan=False)
    return atomic_write_text(path, text + "\n", overwrite=overwrite)


def atomic_write_yaml(path: str | Path, data: Any, *, overwrite: bool = False) -> Path:
    """Block-style YAML (insertion order kept) through :func:`atomic_write_bytes`."""
    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None), overwrite=overwrite)


def safe_name(value: str) -> str:
    """A folder-name-safe version of ``value`` (letters, digits, ``-``, ``_``, ``.``; others become ``_``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("._")
    return name or "unnamed"


def run_parent(root: str | Path, model: str, dataset: str, category: str | None = None) -> Path:
    """``<root>/<model>/<dataset>/<category|all>`` (the folder holding the ``v<N>`` runs)."""
    return Path(root) / safe_name(model) / safe_name(dataset) / safe_name(category or "all")


def list_versions(parent: str | Path) -> list[int]:
    """Version numbers of the ``v<N>`` folders in ``parent``, ascending."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    out = []
    for entry in parent.iterdir():
        m = _VERSION.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink():
            out.append(int(m.group(1)))
    return sorted(out)


def update_latest(run_dir: str | Path) -> None:
    """Point ``<parent>/latest`` at ``run_dir`` (atomically replaced; a text file where symlinks fail)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{secrets.token_hex(6)}.tmp"
    try:
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if link.is_dir() and not link.is_symlink():
            logger.warning("%s is a real folder, not a link; left unchanged", link)
            return
        atomic_write_text(link, run_dir.name + "\n", overwrite=True)


def create_run_dir(root: str | Path, model: str, dataset: str, category: str | None = None) -> Path:
    """Claim the next free ``v<N>`` folder under :func:`run_parent` and point ``latest`` at it.

    Never reuses or overwrites an existing folder: the version is taken with :func:`os.mkdir`, which fails if the
    name exists (a concurrent run), and the next number is tried.

    Returns:
        The new, empty run folder.
    """
    parent = run_parent(root, model, dataset, category)
    parent.mkdir(parents=True, exist_ok=True)
    n = (list_versions(parent) or [0])[-1] + 1
    while True:
        candidate = parent / f"v{n}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            n += 1
            continue
        break
    update_latest(candidate)
    logger.info("run folder: %s", candidate)
    return candidate


def resolve_run(path: str | Path) -> Path:
    """The real run folder behind ``path`` (a ``v<N>`` folder, a ``latest`` link or a ``latest`` text file).

    Raises:
        InputError: ``path`` does not exist or holds no ``metadata.json``.
    """
    path = Path(path)
    if path.is_file() and path.name == LATEST:
        path = path.parent / path.read_text().strip()
    if not path.exists():
        raise InputError(
            f"the run folder {path} does not exist. Fix: pass a folder written by `ssmad train` "
            "(results/<model>/<dataset>/<category|all>/v<N> or .../latest) or by det.save(...)."
        )
    path = path.resolve()
    if not (path / "metadata.json").is_file():
        raise InputError(
            f"{path} holds no metadata.json, so it is not a finished ssmad run (an interrupted training keeps its "
            "state in checkpoints/ until it is resumed). Fix: pass a folder written by `ssmad train` or det.save(...)."
        )
    return path
