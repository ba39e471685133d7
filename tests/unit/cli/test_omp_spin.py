"""The CLI package shortens libgomp's busy-wait before torch loads, unless the user chose a wait policy."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import os, sys, ssmad.cli; print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    cmd = [sys.executable, "-c", PROBE]
    run = subprocess.run(cmd, env={**clean, **env}, capture_output=True, text=True, check=True)
    return run.stdout.strip()


def test_sets_spin_count_before_torch_is_imported():
    from ssmad.cli import GOMP_SPIN_COUNT

    # torch not yet loaded when the variable is set: libgomp reads it when torch loads it.
    assert _probe() == f"{GOMP_SPIN_COUNT} False"


@pytest.mark.parametrize(("env", "expected"), [({"GOMP_SPINCOUNT": "7"}, "7"), ({"OMP_WAIT_POLICY": "ACTIVE"}, "None")])
def test_user_choice_is_kept(env, expected):
    assert _probe(**env) == f"{expected} False"
