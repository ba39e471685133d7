"""Reading the JSON index files of index-based layouts (ADer ``meta.json``, Real-IAD per-class JSON).

Both layouts list images by path relative to a folder instead of by folder structure. This module reads such a
file into Python objects with an :class:`~ssmad.errors.InputError` that names the file and the position of a
syntax error, and resolves and checks the listed paths, naming the file and the entry that lists a missing one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError


def read_json(path: Path, what: str) -> Any:
    """Parse the JSON file ``path`` (``what`` names it in messages, e.g. ``the ADer index``).

    Raises:
        InputError: The file is missing, unreadable or not valid JSON (line and column named).
    """
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError as err:
        raise InputError(f"{what} {path} does not exist. Fix: check the path.") from err
    except json.JSONDecodeError as err:
        raise InputError(
            f"{what} {path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}. Fix: restore the "
            "file from the download (or regenerate it)."
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read {what} {path}: {err}. Fix: check the file and its permissions.") from err


def type_name(value: Any) -> str:
    """A short JSON type name of ``value`` for messages."""
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def entry_text(entry: Any, limit: int = 160) -> str:
    """``entry`` as compact JSON, shortened to ``limit`` characters, for messages."""
    text = json.dumps(entry, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def existing_file(base: Path, relative: str, what: str, where: str, fix: str) -> Path:
    """``base / relative`` when that file exists.

    Args:
        base: Folder the index's paths are relative to (absolute paths in the index are used as they are).
        relative: The path as written in the index.
        what: ``image`` or ``mask``.
        where: Where the path is written (``<index file>, phase 'test', class 'bottle', entry 7``).
        fix: The fix sentence of the message.

    Raises:
        InputError: The file does not exist (or is a folder).
    """
    path = base / relative
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise InputError(f"{where}: the {what} {path} {state}. Fix: {fix}")
    return path
