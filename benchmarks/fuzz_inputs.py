"""Coverage-guided fuzzing (atheris / libFuzzer) of the input parsers: only documented errors may come out.

Three targets, each fed mutated bytes, with a seed corpus of valid files written at start-up:

* ``envi``   — an ENVI header (the bytes as latin-1 text) plus a data file beside it, read with
  :func:`ssmad.data.load_cube` (header parser, data-file search, size checks, interleave, validation);
* ``mat``    — a ``.mat`` file (MATLAB v4/v5, compressed or not; a HDF5 v7.3 one when the bytes say so) read with
  :func:`ssmad.data.load_cube` (variable listing, key choice, element limit, dtype and cube validation, ground truth,
  wavelengths);
* ``layout`` — a folder tree built from the bytes (category/split/defect folders, images, masks, a VisA
  ``split_csv/1cls.csv``, names with odd characters, corrupt and mismatched images) indexed with
  :func:`ssmad.data.discover` in the MVTec, VisA and plain-folder layouts.

``all`` picks the target from the first byte. An input passes when the call returns or raises one of the errors
the command line maps to exit code 2 (:class:`~ssmad.errors.InputError`, :class:`~ssmad.errors.ConfigError`,
:class:`~ssmad.errors.MissingDependencyError`); any other exception is a finding: libFuzzer prints the traceback,
writes the input to ``<artifacts>/crash-*`` and the script exits non-zero. Replay a finding with
``python benchmarks/fuzz_inputs.py --target T <artifacts>/crash-…`` (libFuzzer runs the file once).

Usage::

    python benchmarks/fuzz_inputs.py [--target all|envi|mat|layout] [--seconds 300] [--runs N] [--seed 1]
                                     [--artifacts DIR] [-- libFuzzer options or inputs to replay]

Exit status 0: nothing but documented errors in the time given.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["ssmad.data"]):
    from ssmad.data.envi import parse_header_text
    from ssmad.data.hsi import load_cube
    from ssmad.data.layout import discover

from ssmad.errors import ConfigError, InputError, MissingDependencyError

#: The errors the command line turns into exit code 2 with a message; nothing else may escape a parser.
DOCUMENTED = (InputError, ConfigError, MissingDependencyError)
#: Largest cube a fuzzed file may ask for (keeps every run small; larger ones must be refused cleanly).
MAX_ELEMENTS = 1 << 20
TARGETS = ("envi", "mat", "layout")


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (90, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- ENVI
def envi_input(payload: bytes, work: Path) -> None:
    """First two bytes: data-file length (0–4096); the rest: the header text (latin-1)."""
    n = int.from_bytes(payload[:2].ljust(2, b"\0"), "little") % 4097
    text = payload[2:]
    hdr = work / "scene.hdr"
    hdr.write_bytes(text)
    pattern = text or b"\x01"
    (work / "scene.img").write_bytes((pattern * (n // len(pattern) + 1))[:n])
    parse_header_text(text.decode("latin-1"), hdr)
    load_cube(hdr, max_elements=MAX_ELEMENTS)


def envi_seeds() -> list[bytes]:
    seeds = []
    for interleave, code, order, bands in (("bsq", 4, 0, 3), ("bil", 2, 1, 2), ("bip", 12, 0, 4), ("bsq", 1, 0, 2)):
        itemsize = {1: 1, 2: 2, 4: 4, 12: 2}[code]
        header = (
            f"ENVI\ndescription = {{fuzz seed}}\nsamples = 4\nlines = 3\nbands = {bands}\nheader offset = 0\n"
            f"file type = ENVI Standard\ndata type = {code}\ninterleave = {interleave}\nbyte order = {order}\n"
            f"wavelength = {{{', '.join(str(400 + 10 * i) for i in range(bands))}}}\n"
        ).encode("latin-1")
        seeds.append((4 * 3 * bands * itemsize).to_bytes(2, "little") + header)
    return seeds


# ----------------------------------------------------------------------------------------------- .mat
def mat_input(payload: bytes, work: Path) -> None:
    """The bytes are the ``.mat`` file."""
    path = work / "scene.mat"
    path.write_bytes(payload)
    load_cube(path, max_elements=MAX_ELEMENTS)


def mat_seeds() -> list[bytes]:
    import scipy.io

    rng = np.random.default_rng(0)
    cube = rng.random((4, 5, 3)).astype(np.float32)
    gt = (rng.random((4, 5)) > 0.7).astype(np.uint8)
    seeds = []
    for fmt, compress, variables in (
        ("5", False, {"data": cube, "map": gt, "wavelength": np.arange(3.0)}),
        ("5", True, {"data": cube, "map": gt}),
        ("5", False, {"other": cube.astype(np.int16), "name": "text", "cell": np.array([1, "a"], dtype=object)}),
        ("4", False, {"data": cube.reshape(4, 15).astype(np.float64), "map": gt.astype(np.float64)}),  # v4: 2-D only
    ):
        buf = io.BytesIO()
        scipy.io.savemat(buf, variables, format=fmt, do_compression=compress)
        seeds.append(buf.getvalue())
    with contextlib.suppress(ImportError), tempfile.TemporaryDirectory() as tmp:
        import h5py

        path = Path(tmp) / "v73.mat"
        with h5py.File(path, "w", userblock_size=512) as f:
            f.create_dataset("data", data=cube.T)
            f.create_dataset("map", data=gt.T)
        seeds.append(path.read_bytes())
    return seeds


# ----------------------------------------------------------------------------------------------- layout
_DIRS = ("wood", "1cls", "split_csv", "train", "test", "ground_truth", "good", "bad", "scratch", "masks", "Data")
_FILES = ("000.png", "000_mask.png", "001.png", "001.jpg", "x.JPG", ".DS_Store", "._000.png", "1cls.csv", "a.txt")
_CONTENTS = ("png8", "png9", "mask8", "truncated", "bytes", "csv", "empty")
#: A small working MVTec-style category (paths below the root, content kind).
_VALID_TREE = (
    ("wood/train/good/000.png", "png8"),
    ("wood/train/good/001.png", "png8"),
    ("wood/test/good/000.png", "png8"),
    ("wood/test/scratch/000.png", "png8"),
    ("wood/ground_truth/scratch/000_mask.png", "mask8"),
)


def _name(fdp: atheris.FuzzedDataProvider, vocabulary: tuple[str, ...]) -> str:
    """A name from the vocabulary, or now and then a fuzzed one (no separators, NUL, '.' or '..')."""
    if fdp.ConsumeIntInRange(0, 7):
        return vocabulary[fdp.ConsumeIntInRange(0, len(vocabulary) - 1)]
    name = fdp.ConsumeUnicodeNoSurrogates(12).replace("/", "_").replace("\0", "_")
    return name if name not in ("", ".", "..") else "_"


def _content(fdp: atheris.FuzzedDataProvider, images: dict[str, bytes]) -> bytes:
    kind = _CONTENTS[fdp.ConsumeIntInRange(0, len(_CONTENTS) - 1)]
    if kind in images:
        return images[kind]
    if kind == "truncated":
        return images["png8"][: fdp.ConsumeIntInRange(0, len(images["png8"]))]
    if kind == "csv":
        rows = ["object,split,label,image,mask"]
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            rows.append(",".join(_name(fdp, ("wood", "train", "test", "normal", "anomaly", "")) for _ in range(2)))
            rows[-1] += "," + ",".join(
                "/".join(_name(fdp, _DIRS + _FILES) for _ in range(fdp.ConsumeIntInRange(1, 3))) for _ in range(3)
            )
        return "\n".join(rows).encode() + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 16))
    if kind == "empty":
        return b""
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64))


def layout_input(payload: bytes, work: Path, images: dict[str, bytes]) -> None:
    """The bytes drive a small folder tree, then one of the layouts indexes it."""
    fdp = atheris.FuzzedDataProvider(payload)
    root = work / "root"
    root.mkdir()
    if fdp.ConsumeBool():  # start from a valid tree, so that the fuzzed files below damage a working data set
        for rel, kind in _VALID_TREE:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(images[kind])
    if fdp.ConsumeBool():  # a VisA split file
        (root / "split_csv").mkdir(exist_ok=True)
        (root / "split_csv" / "1cls.csv").write_bytes(_content(fdp, images))
    for _ in range(fdp.ConsumeIntInRange(0, 14)):
        parts = [_name(fdp, _DIRS) for _ in range(fdp.ConsumeIntInRange(0, 4))] + [_name(fdp, _FILES)]
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_content(fdp, images))
        except OSError:  # a name the file system refuses, or a file where a folder was wanted: not our input
            continue
    check = ("headers", "full", "none")[fdp.ConsumeIntInRange(0, 2)]
    layout = ("auto", "mvtec", "visa", "folder")[fdp.ConsumeIntInRange(0, 3)]
    if layout == "folder":
        dirs = [_name(fdp, _DIRS) for _ in range(3)]
        discover(
            root,
            "folder",
            normal_dir=dirs[0],
            abnormal_dirs=[dirs[1]] if fdp.ConsumeBool() else [],
            mask_dirs=dirs[2] if fdp.ConsumeBool() else None,
            normal_test_ratio=fdp.ConsumeIntInRange(0, 3) / 4,
            check=check,
        )
    else:
        categories = _name(fdp, _DIRS) if fdp.ConsumeBool() else None
        discover(root, layout, categories=categories, check=check)  # type: ignore[arg-type]


def layout_seeds() -> list[bytes]:
    return [bytes(range(0, 256, 3)) * 3, b"\x05" * 200, bytes(reversed(range(256))) * 2]


# ----------------------------------------------------------------------------------------------- driver
def make_callback(target: str) -> Callable[[bytes], None]:
    """The libFuzzer callback: run one input in a fresh folder, let only documented errors pass."""
    images = {"png8": _png((8, 8)), "png9": _png((9, 8)), "mask8": _png((8, 8), "L")}
    runners: dict[str, Callable[[bytes, Path], None]] = {
        "envi": envi_input,
        "mat": mat_input,
        "layout": lambda payload, work: layout_input(payload, work, images),
    }

    def one_input(data: bytes) -> None:
        name, payload = target, data
        if target == "all":
            if not data:
                return
            name, payload = TARGETS[data[0] % len(TARGETS)], data[1:]
        work = Path(tempfile.mkdtemp(prefix="ssmad-fuzz-"))
        try:
            runners[name](payload, work)
        except DOCUMENTED:
            pass
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return one_input


def seeds(target: str) -> list[bytes]:
    """Valid inputs to start from (with the target byte in front for ``all``)."""
    make = {"envi": envi_seeds, "mat": mat_seeds, "layout": layout_seeds}
    if target != "all":
        return make[target]()
    return [bytes([i]) + s for i, t in enumerate(TARGETS) for s in make[t]()]


def main(argv: list[str] | None = None) -> None:
    """Parse the options, write the seed corpus and hand over to libFuzzer (which exits the process)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("all", *TARGETS), default="all")
    parser.add_argument("--seconds", type=int, default=300, help="total fuzzing time (libFuzzer -max_total_time)")
    parser.add_argument("--runs", type=int, default=-1, help="stop after this many inputs (-1: time only)")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (0: a new one each run)")
    parser.add_argument("--artifacts", default=".", help="folder for crash-* files of findings")
    parser.add_argument("extra", nargs="*", help="after --: libFuzzer options, or input files to replay")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # parsers log warnings about odd files; they are not findings
    warnings.simplefilter("ignore")
    corpus = Path(tempfile.mkdtemp(prefix="ssmad-fuzz-corpus-"))
    for i, seed in enumerate(seeds(args.target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    replay = [e for e in args.extra if not e.startswith("-")]
    fuzzer_argv = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-runs={args.runs}",
        f"-seed={args.seed}",
        "-timeout=30",
        "-rss_limit_mb=3072",
        "-max_len=8192",
        f"-artifact_prefix={Path(args.artifacts).resolve()}/",
        *args.extra,
        *([] if replay else [str(corpus)]),
    ]
    print(f"fuzzing {args.target} for {args.seconds} s (corpus {corpus})", flush=True)
    atheris.Setup(fuzzer_argv, make_callback(args.target))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
