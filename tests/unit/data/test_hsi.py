"""Hyperspectral loaders: round trips through files the test writes itself, and every bad-input case."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ssmad.data.envi import parse_header_text, read_header
from ssmad.data.hsi import HSICube, find_cubes, load_cube
from ssmad.errors import ConfigError, InputError, MissingDependencyError

H, W, B = 6, 5, 4  # all different, so any axis mix-up shows

ENVI_CODES = {"u1": 1, "i2": 2, "i4": 3, "f4": 4, "f8": 5, "u2": 12, "u4": 13, "i8": 14, "u8": 15}


def _cube(dtype: str = "f8", seed: int = 0, shape: tuple[int, int, int] = (H, W, B)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(100, 30, shape).astype(dt)
    info = np.iinfo(dt)
    lo, hi = max(info.min, -30000), min(info.max, 60000)
    return rng.integers(lo, hi, shape, endpoint=True).astype(dt)


def _gt(seed: int = 1) -> np.ndarray:
    gt = np.zeros((H, W), np.uint8)
    gt[1, 2] = gt[4, 0] = 1
    return gt


def write_envi(
    path_stem: Path,
    cube: np.ndarray,
    *,
    interleave: str = "bsq",
    byte_order: int = 0,
    offset: int = 0,
    data_suffix: str = ".img",
    header_name: str | None = None,
    wavelengths: np.ndarray | None = None,
    file_type: str = "ENVI Standard",
) -> tuple[Path, Path]:
    """Write ``cube`` (H, W, B) as ENVI: header text + raw bytes, written here without any library."""
    h, w, b = cube.shape
    code = ENVI_CODES[cube.dtype.str[1:]]
    lines = [
        "ENVI",
        "description = {written by the ssmad tests,",
        "  a description that spans lines and holds = signs}",
        f"samples = {w}",
        f"lines   = {h}",
        f"bands   = {b}",
        f"header offset = {offset}",
        f"file type = {file_type}",
        f"data type = {code}",
        f"interleave = {interleave}",
        f"byte order = {byte_order}",
    ]
    if wavelengths is not None:
        values = [f"{v:.3f}" for v in wavelengths]
        lines.append("wavelength = {")
        lines += ["  " + ", ".join(values[i : i + 2]) + ("," if i + 2 < len(values) else "") for i in range(0, b, 2)]
        lines.append("}")
        lines.append("wavelength units = Nanometers")
    header = path_stem.parent / (header_name or path_stem.name + ".hdr")
    header.write_text("\n".join(lines) + "\n")
    order = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    stored = np.ascontiguousarray(cube.transpose(order)).astype(cube.dtype.newbyteorder("<>"[byte_order]))
    data = path_stem.with_name(path_stem.name + data_suffix)
    data.write_bytes(b"\xab" * offset + stored.tobytes())
    return header, data


# ------------------------------------------------------------------------------------------------- ENVI


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
@pytest.mark.parametrize("byte_order", [0, 1])
def test_envi_round_trip_interleaves_and_byte_orders(tmp_path: Path, interleave: str, byte_order: int) -> None:
    cube = _cube("i2")
    wl = np.linspace(400.5, 900.25, B)
    hdr, _ = write_envi(
        tmp_path / "scene", cube, interleave=interleave, byte_order=byte_order, offset=128, wavelengths=wl
    )
    out = load_cube(hdr)
    assert isinstance(out, HSICube)
    data, gt, wavelengths = out  # unpacks into three
    assert data.dtype == np.float32 and data.shape == (H, W, B)
    np.testing.assert_array_equal(data, cube.astype(np.float32))
    assert gt is None
    np.testing.assert_allclose(wavelengths, np.round(wl, 3))


@pytest.mark.parametrize("dtype", sorted(ENVI_CODES))
def test_envi_every_data_type(tmp_path: Path, dtype: str) -> None:
    cube = _cube(dtype, seed=3)
    hdr, _ = write_envi(tmp_path / "c", cube, interleave="bil", byte_order=1, offset=7)
    np.testing.assert_array_equal(load_cube(hdr).cube, cube.astype(np.float32))


def test_test_writer_agrees_with_spectral(tmp_path: Path) -> None:
    spectral = pytest.importorskip("spectral")
    cube = _cube("u2", seed=4)
    for interleave in ("bsq", "bil", "bip"):
        hdr, data = write_envi(tmp_path / interleave, cube, interleave=interleave, byte_order=1, offset=32)
        loaded = np.array(spectral.envi.open(str(hdr), str(data)).load(), dtype=np.float32)
        np.testing.assert_array_equal(loaded, cube.astype(np.float32))


def test_files_written_by_spectral(tmp_path: Path) -> None:
    spectral = pytest.importorskip("spectral")
    cube = _cube("f4", seed=5)
    for interleave in ("bsq", "bil", "bip"):
        hdr = tmp_path / f"spy_{interleave}.hdr"
        spectral.envi.save_image(
            str(hdr), cube, interleave=interleave, byteorder=1, metadata={"wavelength": [1.0, 2.0, 3.0, 4.0]}
        )
        data, _, wl = load_cube(hdr)
        np.testing.assert_array_equal(data, cube)
        np.testing.assert_array_equal(wl, [1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("suffix", ["", ".dat", ".raw", ".bin", ".IMG"])
def test_envi_data_file_found_next_to_header(tmp_path: Path, suffix: str) -> None:
    cube = _cube("f4")
    hdr, data = write_envi(tmp_path / "scene", cube, data_suffix=suffix, header_name="scene.hdr")
    np.testing.assert_array_equal(load_cube(hdr).cube, cube)
    np.testing.assert_array_equal(load_cube(data).cube, cube)  # the data file itself works too


def test_envi_header_named_after_data_file_and_explicit_data_file(tmp_path: Path) -> None:
    cube = _cube("u1")
    hdr, data = write_envi(tmp_path / "scene", cube, data_suffix=".img", header_name="scene.img.hdr")
    np.testing.assert_array_equal(load_cube(hdr).cube, cube)
    odd = tmp_path / "pixels.xyz"
    data.rename(odd)
    np.testing.assert_array_equal(load_cube(hdr, data_file=odd).cube, cube)
    with pytest.raises(InputError) as err:
        load_cube(hdr)
    assert str(hdr) in str(err.value) and "data_file=" in str(err.value)


def test_envi_header_parser_details(tmp_path: Path) -> None:
    text = "ENVI\n; a comment\nDescription = {a, b =\n c}\nBands= 3\nband names = {x,\n y, z}\nsamples =2\n"
    fields = parse_header_text(text, tmp_path / "h.hdr")
    assert fields == {"description": "a, b =\n c", "bands": "3", "band names": ["x", "y", "z"], "samples": "2"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("ENVI\n", "NOT ENVI\n", 1), "first line"),
        (lambda t: t.replace("bands   = 4", ""), "'bands'"),
        (lambda t: t.replace("data type = 2", "data type = 6"), "complex"),
        (lambda t: t.replace("data type = 2", "data type = 7"), "unknown data type"),
        (lambda t: t.replace("interleave = bsq", "interleave = bis"), "interleave"),
        (lambda t: t.replace("lines   = 6", "lines = 0"), "positive"),
        (lambda t: t.replace("lines   = 6", "lines = six"), "not an integer"),
        (lambda t: t.replace("byte order = 0", "byte order = 2"), "byte order"),
        (lambda t: t.replace("lines   = 6", "lines = 60"), "bytes"),  # data file too short
        (lambda t: t.replace("file type = ENVI Standard", "file type = ENVI Spectral Library"), "spectral library"),
        (lambda t: t.replace("description = {", "description = {never closed"), None),
    ],
)
def test_envi_bad_headers(tmp_path: Path, edit, message) -> None:
    hdr, _ = write_envi(tmp_path / "scene", _cube("i2"))
    hdr.write_text(edit(hdr.read_text()).replace("holds = signs}", "holds = signs}" if message else "holds"))
    with pytest.raises(InputError) as err:
        load_cube(hdr)
    assert str(hdr) in str(err.value) and "Fix" in str(err.value)
    if message:
        assert message in str(err.value)


def test_envi_size_limit_before_reading(tmp_path: Path) -> None:
    hdr, _ = write_envi(tmp_path / "scene", _cube("i2"))
    hdr.write_text(hdr.read_text().replace("lines   = 6", "lines = 600000"))
    with pytest.raises(InputError, match="more than the limit"):
        load_cube(hdr, max_elements=10**6)


def test_read_header_fields(tmp_path: Path) -> None:
    hdr, _ = write_envi(tmp_path / "scene", _cube("u2"), interleave="bip", byte_order=1, offset=9)
    h = read_header(hdr)
    assert (h.shape, h.interleave, h.offset, h.dtype) == ((H, W, B), "bip", 9, np.dtype(">u2"))


# ----------------------------------------------------------------------------------------------- MATLAB


@pytest.mark.parametrize("dtype", ["i2", "u2", "f8"])
def test_mat_v5_round_trip_abu_keys(tmp_path: Path, dtype: str) -> None:
    cube, gt = _cube(dtype), _gt()
    gt_vals = gt * 3  # any value > 0 is an anomaly
    path = tmp_path / "abu-urban-2.mat"
    scipy.io.savemat(path, {"data": cube, "map": gt_vals, "wavelength": np.arange(B, dtype=float)})
    data, g, wl = load_cube(path)
    assert data.dtype == np.float32
    np.testing.assert_array_equal(data, cube.astype(np.float32))
    np.testing.assert_array_equal(g, gt)
    assert g.dtype == np.uint8
    np.testing.assert_array_equal(wl, np.arange(B))


def _write_mat_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write arrays as MATLAB -v7.3 does: HDF5 after a 512-byte text header, column-major (axes reversed)."""
    h5py = pytest.importorskip("h5py")
    classes = {"f8": "double", "f4": "single", "i2": "int16", "u2": "uint16", "u1": "uint8", "b1": "logical"}
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in variables.items():
            ds = f.create_dataset(name, data=arr.T.astype(np.uint8) if arr.dtype == bool else arr.T)
            ds.attrs["MATLAB_class"] = np.bytes_(classes[arr.dtype.str[1:]])
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:  # 116 bytes of text, 8 of subsystem offset, version 0x0200, endian mark "IM"
        fh.write(text.ljust(116, b" ") + b" " * 8 + b"\x00\x02IM")


@pytest.mark.parametrize("dtype", ["i2", "u2", "f8"])
def test_mat_v73_round_trip_handles_column_major(tmp_path: Path, dtype: str) -> None:
    h5py = pytest.importorskip("h5py")
    cube, gt = _cube(dtype, seed=7), _gt()
    path = tmp_path / "scene73.mat"
    _write_mat_v73(path, {"data": cube, "map": gt.astype(bool)})
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)  # really a v7.3 file: scipy refuses it
    with h5py.File(path, "r") as f:
        # MATLAB's column-major layout: the stored bytes are the cube in Fortran order
        assert f["data"].shape == (B, W, H)
        np.testing.assert_array_equal(np.asarray(f["data"]).ravel(), cube.ravel(order="F"))
    data, g, wl = load_cube(path)
    np.testing.assert_array_equal(data, cube.astype(np.float32))
    np.testing.assert_array_equal(g, gt)
    assert wl is None


def test_mat_v73_without_h5py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "scene73.mat"
    _write_mat_v73(path, {"data": _cube()})
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingDependencyError, match=r"ssmad\[hsi\]"):
        load_cube(path)


def test_mat_v73_damaged_group_table_is_an_input_error(tmp_path: Path) -> None:
    # Found by benchmarks/fuzz_inputs.py: a broken symbol-table node made h5py raise RuntimeError while listing.
    path = tmp_path / "scene73.mat"
    _write_mat_v73(path, {"data": _cube(), "map": _gt()})
    data = path.read_bytes()
    assert data.count(b"SNOD") == 1
    path.write_bytes(data.replace(b"SNOD", b"SNOX"))
    with pytest.raises(InputError, match=r"MATLAB v7\.3 file .*RuntimeError"):
        load_cube(path)


def test_mat_v73_damaged_compressed_data_is_an_input_error(tmp_path: Path) -> None:
    # The listing reads, the variable's gzip stream does not: h5py's OSError must become an InputError too.
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "scene73.mat"
    cube = _cube("f4").T
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("data", data=cube, compression="gzip", chunks=cube.shape)
    with h5py.File(path, "r") as f:
        start = f["data"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[start + 10 : start + 30] = b"\xff" * 20
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"variable 'data' of the MATLAB v7\.3 file"):
        load_cube(path)


def test_mat_missing_key_lists_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "odd.mat"
    scipy.io.savemat(path, {"img_a": _cube(), "img_b": _cube(seed=2), "gtruth": _gt()})
    with pytest.raises(InputError) as err:
        load_cube(path)
    msg = str(err.value)
    assert all(k in msg for k in ("img_a", "img_b", "gtruth", "data_key=", str(path)))
    with pytest.raises(InputError, match="gtruth"):
        load_cube(path, data_key="cube")
    with pytest.raises(InputError, match="gt_key="):
        load_cube(path, data_key="img_a", gt_key="map")
    data, gt, _ = load_cube(path, data_key="img_b", gt_key="gtruth")
    np.testing.assert_array_equal(data, _cube(seed=2).astype(np.float32))
    np.testing.assert_array_equal(gt, _gt())


def test_mat_missing_key_v73_lists_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "odd73.mat"
    _write_mat_v73(path, {"a": _cube(), "b": _cube(seed=2)})
    with pytest.raises(InputError) as err:
        load_cube(path)
    assert "a 4×5×6" not in str(err.value)  # shapes are given in MATLAB's order, not HDF5's
    assert "a 6×5×4" in str(err.value) and "b 6×5×4" in str(err.value)


def test_single_3d_array_is_used_when_data_key_absent(tmp_path: Path) -> None:
    path = tmp_path / "bianlab.mat"
    scipy.io.savemat(path, {"ori_data": _cube("u2"), "map": _gt()})
    data, gt, _ = load_cube(path)
    np.testing.assert_array_equal(data, _cube("u2").astype(np.float32))
    np.testing.assert_array_equal(gt, _gt())


def test_corrupt_mat(tmp_path: Path) -> None:
    path = tmp_path / "broken.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 40)
    with pytest.raises(InputError) as err:
        load_cube(path)
    assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------------ numpy


def test_npy_and_npz_round_trip_with_axes(tmp_path: Path) -> None:
    cube = _cube("i2")
    np.save(tmp_path / "c.npy", cube)
    np.testing.assert_array_equal(load_cube(tmp_path / "c.npy").cube, cube.astype(np.float32))
    for axes, stored in (
        ("BHW", cube.transpose(2, 0, 1)),
        ("chw", cube.transpose(2, 0, 1)),
        ("WBH", cube.transpose(1, 2, 0)),
    ):
        np.save(tmp_path / "t.npy", stored)
        np.testing.assert_array_equal(load_cube(tmp_path / "t.npy", axes=axes).cube, cube.astype(np.float32))
    np.savez(tmp_path / "c.npz", data=cube.transpose(2, 0, 1), map=_gt())
    data, gt, _ = load_cube(tmp_path / "c.npz", axes="BHW")
    np.testing.assert_array_equal(data, cube.astype(np.float32))
    np.testing.assert_array_equal(gt, _gt())


def test_bad_axes() -> None:
    for axes in ("HW", "HWW", "XYZ"):
        with pytest.raises(ConfigError):
            load_cube(__file__, axes=axes)


def test_separate_ground_truth_files(tmp_path: Path) -> None:
    cube, gt = _cube(), _gt()
    np.save(tmp_path / "c.npy", cube)
    Image.fromarray(gt * 255).save(tmp_path / "gt.png")
    np.save(tmp_path / "gt.npy", gt.astype(np.float64) * 0.5)
    scipy.io.savemat(tmp_path / "gt.mat", {"groundtruth": gt})
    hdr, _ = write_envi(tmp_path / "gt_envi", gt[..., None].astype(np.uint8))
    for g in (tmp_path / "gt.png", tmp_path / "gt.npy", tmp_path / "gt.mat", hdr):
        np.testing.assert_array_equal(load_cube(tmp_path / "c.npy", gt_path=g).gt, gt)


def test_separate_ground_truth_key(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "c.mat", {"data": _cube(), "map": np.zeros((H, W))})
    scipy.io.savemat(tmp_path / "labels.mat", {"a": np.zeros((H, W)), "anomalies": _gt()})
    np.testing.assert_array_equal(
        load_cube(tmp_path / "c.mat", gt_path=tmp_path / "labels.mat", gt_key="anomalies").gt, _gt()
    )
    with pytest.raises(InputError) as err:  # two 2-D arrays and no 'map': the user must say which
        load_cube(tmp_path / "c.mat", gt_path=tmp_path / "labels.mat")
    assert "anomalies" in str(err.value) and "gt_key=" in str(err.value)


def test_envi_data_file_without_header(tmp_path: Path) -> None:
    (tmp_path / "scene.img").write_bytes(b"\0" * 64)
    with pytest.raises(InputError, match="no header"):
        load_cube(tmp_path / "scene.img")


def test_find_cubes(tmp_path: Path) -> None:
    np.save(tmp_path / "b.npy", _cube())
    scipy.io.savemat(tmp_path / "a.mat", {"data": _cube()})
    write_envi(tmp_path / "c", _cube("i2"))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in find_cubes(tmp_path)] == ["a.mat", "b.npy", "c.hdr"]
    with pytest.raises(InputError):
        find_cubes(tmp_path / "none")


# ------------------------------------------------------------------------------------ bad cube contents


def test_nan_and_inf_are_counted_and_located(tmp_path: Path) -> None:
    cube = _cube()
    cube[2, 3, 1] = np.nan
    cube[4, 0, 0] = np.nan
    cube[5, 4, 3] = np.nan
    cube[3, 1, 2] = np.inf
    np.save(tmp_path / "nan.npy", cube)
    with pytest.raises(InputError) as err:
        load_cube(tmp_path / "nan.npy")
    msg = str(err.value)
    assert "3 NaN and 1 Inf" in msg and "row 2, column 3, band 1" in msg and str(tmp_path / "nan.npy") in msg


def test_float64_overflowing_float32_is_reported_as_inf(tmp_path: Path) -> None:
    cube = _cube()
    cube[0, 0, 0] = 1e300
    scipy.io.savemat(tmp_path / "big.mat", {"data": cube})
    with pytest.raises(InputError, match="0 NaN and 1 Inf"):
        load_cube(tmp_path / "big.mat")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((H, W)), "2-D array"),
        (np.ones((H, W, 1)), "one band"),
        (np.ones((1, W, B)), "not a scene"),
        (np.ones((H, 0, B)), "empty"),
        (np.ones((2, H, W, B)), "3-D"),
    ],
)
def test_cube_shapes_that_cannot_be_scenes(tmp_path: Path, array: np.ndarray, message: str) -> None:
    scipy.io.savemat(tmp_path / "x.mat", {"data": array})
    np.save(tmp_path / "x.npy", array)
    for path in (tmp_path / "x.mat", tmp_path / "x.npy"):
        with pytest.raises(InputError) as err:
            load_cube(path)
        assert message in str(err.value) and str(path) in str(err.value) and "Fix" in str(err.value)


def test_size_limit(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "x.mat", {"data": _cube()})
    with pytest.raises(InputError, match="more than the limit"):
        load_cube(tmp_path / "x.mat", max_elements=50)


def test_ground_truth_of_another_size(tmp_path: Path) -> None:
    path = tmp_path / "x.mat"
    scipy.io.savemat(path, {"data": _cube(), "map": np.zeros((H + 1, W))})
    with pytest.raises(InputError) as err:
        load_cube(path)
    assert "(7, 5)" in str(err.value) and str(path) in str(err.value)
    scipy.io.savemat(path, {"data": _cube(), "map": np.zeros((W, H))})
    with pytest.raises(InputError, match="transposed"):
        load_cube(path)


def test_unsupported_missing_and_folder_paths(tmp_path: Path) -> None:
    (tmp_path / "cube.tif").write_bytes(b"II*\0")
    with pytest.raises(InputError, match="Supported"):
        load_cube(tmp_path / "cube.tif")
    with pytest.raises(InputError, match="does not exist"):
        load_cube(tmp_path / "nope.mat")
    with pytest.raises(InputError, match="folder"):
        load_cube(tmp_path)
