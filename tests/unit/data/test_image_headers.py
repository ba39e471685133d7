"""The PNG/JPEG header reader against Pillow's (the reference) on many files, and its fallbacks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssmad.data.image_headers import fast_size, header_size
from ssmad.data.imageio import image_size
from ssmad.errors import InputError

SIZES = [(1, 1), (24, 20), (17, 300), (640, 3), (1023, 769)]


def _picture(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, "L").convert("1")
    if mode == "P":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert("P")
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1"])
def test_png_sizes_match_pillow(tmp_path: Path, mode: str, size: tuple[int, int]) -> None:
    path = tmp_path / "x.png"
    _picture(mode, size, seed=len(mode) + size[0]).save(path)
    assert fast_size(path) == image_size(path) == size


JPEG_OPTIONS = {
    "baseline": {},
    "progressive": {"progressive": True},
    "optimized": {"optimize": True, "quality": 60},
    "subsampling_444": {"subsampling": 0},
    "restart_interval": {"restart_marker_blocks": 1},
    "exif_icc_comment": {"exif": "orientation 6", "icc_profile": bytes(300), "comment": b"hi"},
}


def _options(name: str) -> dict[str, object]:
    options = dict(JPEG_OPTIONS[name])
    if "exif" in options:  # a rotated photo: both readers report the stored size, not the displayed one
        exif = Image.Exif()
        exif[0x0112] = 6
        options["exif"] = exif.tobytes()
    return options


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("options", list(JPEG_OPTIONS))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_jpeg_sizes_match_pillow(tmp_path: Path, mode: str, options: str, size: tuple[int, int]) -> None:
    path = tmp_path / "x.jpg"
    _picture(mode, size, seed=size[1]).save(path, **_options(options))
    assert fast_size(path) == image_size(path) == size


def test_fill_bytes_before_a_marker(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _picture("RGB", (33, 21), 0).save(buf, "JPEG")
    data = buf.getvalue()
    path = tmp_path / "fill.jpg"
    path.write_bytes(data[:2] + b"\xff\xff\xff" + data[2:])  # fill bytes 0xFF may precede any marker
    assert fast_size(path) == image_size(path) == (33, 21)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "GIF", "WEBP", "PPM"])
def test_other_formats_fall_back_to_pillow(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    _picture("RGB", (31, 17), 1).save(path, fmt)
    assert fast_size(path) is None
    assert header_size(path) == image_size(path) == (31, 17)


def test_broken_files_fall_back_to_pillow_and_its_message(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _picture("RGB", (40, 30), 2).save(buf, "JPEG")
    data = buf.getvalue()
    sof = data.index(b"\xff\xc0")
    cases = {
        "cut_before_frame.jpg": data[:sof],  # ends before the frame header
        "not_an_image.png": b"hello, not a png at all" * 3,
        "png_signature_only.png": b"\x89PNG\r\n\x1a\n",
        "empty.jpg": b"",
        "scan_before_frame.jpg": b"\xff\xd8\xff\xda\x00\x02" + data[sof:],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        assert fast_size(path) is None, name
        with pytest.raises(InputError) as err:  # Pillow cannot read them either: its message names the file
            header_size(path, "mask")
        assert str(path) in str(err.value) and "Fix" in str(err.value)
    with pytest.raises(InputError, match="does not exist"):
        header_size(tmp_path / "missing.png")
