"""The data package's lazy exports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ssmad.data


@pytest.mark.parametrize("name", ssmad.data.__all__)
def test_every_export_resolves(name: str) -> None:
    assert getattr(ssmad.data, name) is not None


def test_unknown_name() -> None:
    with pytest.raises(AttributeError):
        ssmad.data.no_such_thing  # noqa: B018


def test_hyperspectral_loader_does_not_import_torch() -> None:
    code = "import sys; from ssmad.data import load_cube; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "False"
