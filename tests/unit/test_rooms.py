"""One-way rooms (design.md): the lower rooms never import the engine, the facade, the converters or the CLI,
and no module carries team-role comments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "ssmad"
LOWER = ("ssm", "scans", "layers", "encoders", "models")
HIGHER = ("engine", "detectors", "cli", "converters", "export", "bench", "viz")


def _imported_modules(path: Path) -> list[str]:
    """Absolute ``ssmad.…`` names imported by one file, relative imports resolved against its package."""
    package = path.relative_to(SRC.parent).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


def test_import_resolution_sees_relative_imports() -> None:
    names = _imported_modules(SRC / "converters" / "mambaad_official.py")
    assert {"ssmad.engine.checkpoint", "ssmad.detectors", "ssmad.errors"} <= set(names)


@pytest.mark.parametrize("room", LOWER)
def test_lower_rooms_never_import_higher_ones(room: str) -> None:
    bad = []
    for path in sorted((SRC / room).rglob("*.py")):
        for name in _imported_modules(path):
            parts = name.split(".")
            if parts[0] == "ssmad" and len(parts) > 1 and parts[1] in HIGHER:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)


def test_no_role_comments() -> None:
    bad = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(w in p.read_text(encoding="utf-8") for w in ("Owned by the", "ask the lead", "do not edit —"))
    ]
    assert not bad, bad
