"""The MATLAB v5 tag check: damaged tags that crash scipy's reader become InputError; real files pass."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy
import scipy.io
import scipy.sparse

from ssmad.data import load_cube
from ssmad.data._mat5 import check_mat5_structure, is_mat5
from ssmad.errors import InputError

SCIPY_MATS = Path(scipy.__file__).parent / "io" / "matlab" / "tests" / "data"


def _mat(variables: dict, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=compress)
    return buf.getvalue()


def _cube_file() -> tuple[bytes, int]:
    """An uncompressed v5 file of one 4×5×3 float32 ``data`` and the offset of its data part's type code."""
    data = _mat({"data": np.arange(60, dtype=np.float32).reshape(4, 5, 3)})
    # 128 header + 8 matrix tag + 16 flags + 8+16 dims (3 × int32, padded) + 8 small name element = 184
    assert data[180:184] == b"data" and data[184] == 7  # miSINGLE
    return data, 184


@pytest.mark.parametrize("code", [0, 8, 10, 11, 14, 15, 19, 99])
def test_bad_data_type_codes_are_input_errors(tmp_path: Path, code: int) -> None:
    # Found by benchmarks/fuzz_inputs.py: scipy 1.17's loadmat segfaults on these codes in a numeric array.
    data, at = _cube_file()
    damaged = bytearray(data)
    damaged[at] = code
    path = tmp_path / "scene.mat"
    path.write_bytes(bytes(damaged))
    with pytest.raises(InputError, match=rf"type .*{code}.*damaged"):
        load_cube(path)


def test_cut_off_and_overlong_elements_are_input_errors(tmp_path: Path) -> None:
    data, _ = _cube_file()
    with pytest.raises(InputError, match="claims"):
        check_mat5_structure(data[:-8], tmp_path / "cut.mat")
    longer = bytearray(data)
    longer[132:136] = (10**6).to_bytes(4, "little")  # the matrix claims a megabyte
    with pytest.raises(InputError, match="past the end"):
        check_mat5_structure(bytes(longer), tmp_path / "long.mat")


def test_broken_compressed_stream_is_an_input_error(tmp_path: Path) -> None:
    data = bytearray(_mat({"data": np.ones((4, 5, 3))}, compress=True))
    data[140:150] = b"\xff" * 10
    with pytest.raises(InputError, match="decompress"):
        check_mat5_structure(bytes(data), tmp_path / "z.mat")


def test_every_kind_of_variable_scipy_writes_passes() -> None:
    variables = {
        "data": np.ones((4, 5, 3), np.float32),
        "ints": np.arange(6, dtype=np.int64).reshape(2, 3),
        "flags": np.array([True, False]),
        "z": np.array([1 + 2j]),
        "name": "text",
        "empty": np.empty((0, 0)),
        "cell": np.array([1, "a", np.ones(3)], dtype=object),
        "nested": {"a": {"b": np.arange(3)}, "c": "x"},
        "sparse": scipy.sparse.csc_matrix(np.eye(3)),
    }
    for compress in (False, True):
        data = _mat(variables, compress)
        assert is_mat5(data)
        check_mat5_structure(data, "all.mat")


@pytest.mark.skipif(not SCIPY_MATS.is_dir(), reason="scipy's test files are not installed")
def test_matlab_written_files_that_scipy_reads_pass() -> None:
    # MATLAB 4.2c–7.4 files from Solaris (big-endian) and Linux: no false alarm on any file scipy can read.
    checked = 0
    for path in sorted(SCIPY_MATS.glob("*.mat")):
        data = path.read_bytes()
        if not is_mat5(data):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scipy.io.loadmat(path)
        except Exception:  # files scipy refuses on purpose (its own bad-file tests)
            continue
        check_mat5_structure(data, path)
        checked += 1
    assert checked >= 50
