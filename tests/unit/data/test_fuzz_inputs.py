"""A bounded fuzzing run of the input parsers (benchmarks/fuzz_inputs.py): only documented errors may come out.

libFuzzer ends its process when it stops, so the run happens in a subprocess; the longer run is the benchmark
script itself (``python benchmarks/fuzz_inputs.py --seconds 600``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import ssmad
from ssmad.errors import InputError

pytest.importorskip("atheris")

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "fuzz_inputs.py"
#: Seconds of fuzzing in the default suite (all three targets, picked by the first byte).
SECONDS = 25


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_inputs_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_callback_lets_documented_errors_pass_and_reports_others(
    harness: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_input = harness.make_callback("mat")

    def raise_(err: Exception):
        def load_cube(*args: object, **kwargs: object) -> None:
            raise err

        return load_cube

    monkeypatch.setattr(harness, "load_cube", raise_(InputError("damaged")))
    one_input(b"anything")  # a clean error: passes
    monkeypatch.setattr(harness, "load_cube", raise_(RuntimeError("h5py internals")))
    with pytest.raises(RuntimeError):
        one_input(b"anything")  # anything else is a finding


def test_seeds_are_valid_inputs(harness: ModuleType, tmp_path: Path) -> None:
    # The corpus starts from files the parsers accept (a fuzzer that only sees rejects explores little).
    envi, mat = harness.envi_seeds()[0], harness.mat_seeds()[0]
    harness.envi_input(envi, tmp_path)
    (tmp_path / "m").mkdir()
    harness.mat_input(mat, tmp_path / "m")


def test_bounded_fuzzing_run_finds_nothing(tmp_path: Path) -> None:
    src = str(Path(ssmad.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, str(SCRIPT), "--target", "all", "--seconds", str(SECONDS), "--seed", "1"]
    proc = subprocess.run(
        [*cmd, "--artifacts", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=SECONDS + 120,
    )
    out = proc.stdout + proc.stderr
    tail = out[-4000:]
    assert proc.returncode == 0, f"the fuzzer found an input that escapes the documented errors:\n{tail}"
    assert not list(tmp_path.glob("crash-*")), tail
    done = re.search(r"Done (\d+) runs", out)
    assert done is not None and int(done.group(1)) >= 100, tail
