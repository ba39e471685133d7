"""The ``cpu`` backend: a C++ selective-scan kernel compiled on first use, with its own backward.

The source (``csrc/selective_scan_cpu.cpp``) is plain C++17 with GCC/Clang vector extensions — no torch headers —
so it compiles in seconds with any ``g++``/``clang++``. It is built once per (source, compiler, flags, CPU) into a
cache folder (``$SSMAD_CACHE_DIR``, else ``$XDG_CACHE_HOME/ssmad``, else ``~/.cache/ssmad``) and loaded with
:mod:`ctypes`; the write is atomic, so concurrent processes never see half a library.

Parallelism: the kernel exposes independent work items (batch × group × channel block). Where torch has loaded
GNU OpenMP (:func:`shares_torch_openmp`, Linux wheels) the kernel is built with ``-fopenmp``; its library then binds
to torch's ``libgomp.so.1`` and :func:`launch` runs the items in one OpenMP region on torch's own threads.
Otherwise (or when that build fails, or with ``SSMAD_NO_OPENMP=1``) a small thread pool of
``torch.get_num_threads()`` workers runs item ranges concurrently (ctypes releases the GIL during the call). The
pool competed with torch's idle OpenMP workers for the cores: on 2 cores the SSD kernel's forward right after a
torch op took 2.3–3.3 ms through the pool and 1.3–1.5 ms in the OpenMP region.

When no compiler is found, when compilation fails, or when ``SSMAD_NO_COMPILE=1`` is set, :func:`is_available`
returns False (logged once) and ``auto`` falls back to the pure-PyTorch backend.

The forward saves the state at the start of every chunk of :data:`CHUNK` steps when gradients are needed; the
backward recomputes states inside a chunk from it and runs the reverse recurrence
``g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1}``, so memory stays ``O(batch · D · N · L / CHUNK)``.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import cast

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "selective_scan_cpu.cpp"
#: Time steps per chunk: the backward keeps one state per chunk and recomputes inside it.
CHUNK = 64
_BASE_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-ffp-contract=fast"]
_ABI_VERSION = 7
_OPENMP = "ssmad_scan_openmp"  # the library function: built with OpenMP?

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_load_failed: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def cache_dir() -> Path:
    """Folder holding compiled kernels."""
    if os.environ.get("SSMAD_CACHE_DIR"):
        return Path(os.environ["SSMAD_CACHE_DIR"]) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssmad" / "kernels"


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    """What the compiled code depends on besides the source: the CPU model and feature flags."""
    sig = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags", "Features")):
                    sig += line.strip()
                    if line.startswith(("flags", "Features")):
                        break
    except OSError:
        sig += platform.processor()
    return sig


def _compile(cxx: str, source_path: Path = SOURCE, extra_flags: tuple[str, ...] = ()) -> Path:
    """Build ``source_path`` into a shared library in :func:`cache_dir` (or return the cached one).

    The file name carries a hash of the source (with the headers in its folder), compiler version, flags and CPU,
    so a change of any of them builds a new library; ``-march=native`` is tried first, then portable flags.
    """
    # the source and the headers beside it (kernel_common.h), which it includes
    source = source_path.read_bytes() + b"".join(h.read_bytes() for h in sorted(source_path.parent.glob("*.h")))
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    base = [*_BASE_FLAGS, *extra_flags]
    attempts = [[*base, "-march=native"], base]
    out_dir = cache_dir()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, delete=True)
        probe.close()
    except OSError:
        out_dir = Path(tempfile.gettempdir()) / f"ssmad-kernels-{os.getuid() if hasattr(os, 'getuid') else 0}"
        out_dir.mkdir(parents=True, exist_ok=True)
    errors = []
    for flags in attempts:
        key = hashlib.sha256(source + version.encode() + " ".join(flags).encode() + _cpu_signature().encode())
        target = out_dir / f"{source_path.stem}_{key.hexdigest()[:16]}.so"
        if target.is_file():
            return target
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so.tmp")
        os.close(fd)
        cmd = [cxx, *flags, "-o", tmp, str(source_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            os.replace(tmp, target)
            logger.info("compiled the CPU kernel %s into %s", source_path.name, target)
            return target
        os.unlink(tmp)
        errors.append(f"$ {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    raise RuntimeError(f"compiling the CPU kernel {source_path.name} failed:\n" + "\n".join(errors))


def declare_item_kernels(lib: ctypes.CDLL, signatures: dict[str, tuple[int, int]]) -> None:
    """Argument types of item kernels: ``name -> (pointers, integers)`` for ``{name}_f32``/``_f64`` and ``_all_``.

    A kernel over an item range ends in ``(i0, i1)``; its ``_all`` form (every item, :func:`launch`) ends in
    ``(items, threads)``, so both take the same types.
    """
    for name, (pointers, integers) in signatures.items():
        for suffix in ("f32", "f64"):
            for fn in (getattr(lib, f"{name}_{suffix}"), getattr(lib, f"{name}_all_{suffix}")):
                fn.argtypes = [ctypes.c_void_p] * pointers + [ctypes.c_int64] * integers
                fn.restype = ctypes.c_int


def _declare(lib: ctypes.CDLL) -> None:
    # (pointers, integers) per kernel
    kernels = {"ssmad_scan_fwd": (9, 8), "ssmad_scan_bwd": (15, 9), "ssmad_fused_fwd": (9, 11)}
    declare_item_kernels(lib, {**kernels, "ssmad_fused_bwd": (15, 12)})
    lib.ssmad_scan_abi_version.restype = ctypes.c_int
    lib.ssmad_scan_openmp.restype = ctypes.c_int
    lib.ssmad_scan_vector_bytes.restype = ctypes.c_int
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"ssmad_softplus_{suffix}")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
        fn.restype = ctypes.c_int


def open_library(
    build: Callable[[], Path], declare: Callable[[ctypes.CDLL], None], abi_symbol: str, abi_version: int, who: str
) -> tuple[ctypes.CDLL | None, str | None]:
    """Build (or find in the cache) and load a kernel library and check its ABI version.

    Shared by the selective-scan and SSD kernels. ``SSMAD_NO_COMPILE`` switches every kernel off.

    Args:
        build: Returns the library's path; raises RuntimeError/OSError when it cannot be built.
        declare: Sets the argument and result types of the library's functions.
        abi_symbol: The library's function that returns its ABI version.
        abi_version: The version this Python side expects.
        who: Name in the one log line written on failure (``selective_scan``, ``ssd_scan``).

    Returns:
        ``(library, None)``, or ``(None, reason)`` after logging the reason.
    """
    lib: ctypes.CDLL | None = None
    failed: str | None = None
    if os.environ.get("SSMAD_NO_COMPILE", "").strip() not in ("", "0"):
        failed = "SSMAD_NO_COMPILE is set"
    else:
        try:
            lib = ctypes.CDLL(str(build()))
            declare(lib)
            if getattr(lib, abi_symbol)() != abi_version:
                raise RuntimeError("stale kernel library (ABI version mismatch)")
        except (OSError, RuntimeError, AttributeError) as err:
            lib, failed = None, str(err)
    if failed is not None:
        level = logging.INFO if "SSMAD_NO_COMPILE" in failed else logging.WARNING
        logger.log(level, "%s: compiled CPU kernel unavailable (%s); using torch instead", who, failed)
    return lib, failed


def shares_torch_openmp() -> bool:
    """Whether a ``-fopenmp`` build would run on torch's own OpenMP threads: torch has loaded GNU OpenMP.

    A library linked against ``libgomp.so.1`` and loaded after torch then binds to the same copy (same soname).
    Linux only (read from ``/proc/self/maps``); ``SSMAD_NO_OPENMP=1`` says no.
    """
    if os.environ.get("SSMAD_NO_OPENMP", "").strip() not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    # the soname libgomp.so.1 itself: vendored copies renamed by other wheels (libgomp-<hash>.so) do not bind
    return any(Path(line.split()[-1]).name.startswith("libgomp.so") for line in maps.splitlines() if "/" in line)


def build_kernel(source_path: Path, extra_flags: tuple[str, ...], who: str) -> Path:
    """Compile (or find in the cache) a kernel, with ``-fopenmp`` when :func:`shares_torch_openmp`.

    Falls back to a build without OpenMP when that one fails; raises RuntimeError/OSError when no build works.
    """
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX or install g++/clang++)")
    if shares_torch_openmp():
        try:
            return _compile(cxx, source_path, (*extra_flags, "-fopenmp"))
        except (RuntimeError, OSError) as err:
            logger.info("%s: the OpenMP build failed, building without it (%s)", who, str(err)[:200])
    return _compile(cxx, source_path, extra_flags)


def dtype_suffix(dtype: torch.dtype) -> str:
    """The kernels' name suffix for a compute dtype: ``f64`` for float64, else ``f32``."""
    return "f64" if dtype == torch.float64 else "f32"


def launch(
    lib: ctypes.CDLL, name: str, dtype: torch.dtype, n_items: int, args: tuple, updates: int, openmp_symbol: str
) -> None:
    """Run kernel ``name`` (``{name}_f32``/``_f64``, over an item range) over all ``n_items`` work items.

    ``updates`` (state updates of the whole call) decides whether more than one thread is worth it
    (:data:`SERIAL_UPDATES`). When the library's ``openmp_symbol`` says it was built with OpenMP, the items run in
    one OpenMP region through ``{name}_all_*``; otherwise on :func:`_run_parallel`'s thread pool.
    """
    suffix = dtype_suffix(dtype)
    if getattr(lib, openmp_symbol)():
        threads = 1 if updates < SERIAL_UPDATES else max(1, min(torch.get_num_threads(), n_items))
        getattr(lib, f"{name}_all_{suffix}")(*args, n_items, threads)
    else:
        _run_parallel(getattr(lib, f"{name}_{suffix}"), n_items, args, updates)


def _build() -> Path:
    """Compile (or find in the cache) the selective-scan kernel; raises RuntimeError/OSError on failure."""
    return build_kernel(SOURCE, (), "selective_scan")


def load_once(
    owner: ModuleType,
    build: Callable[[], Path],
    declare: Callable[[ctypes.CDLL], None],
    abi_symbol: str,
    abi_version: int,
    who: str,
) -> ctypes.CDLL | None:
    """The kernel library of module ``owner``, opened (:func:`open_library`) by the first call and kept.

    ``owner`` holds the state as module attributes, ``_lock``, ``_lib`` and ``_load_failed`` (tests replace them):
    after one attempt, the library or None (the failure was logged once) is returned without retrying.
    """
    if owner._lib is not None or owner._load_failed is not None:
        return cast("ctypes.CDLL | None", owner._lib)
    with owner._lock:
        if owner._lib is None and owner._load_failed is None:
            owner._lib, owner._load_failed = open_library(build, declare, abi_symbol, abi_version, who)
    return cast("ctypes.CDLL | None", owner._lib)


def load_library() -> ctypes.CDLL | None:
    """Compile (first time) and load the kernel; None when that is impossible here (the reason is logged once)."""
    return load_once(sys.modules[__name__], _build, _declare, "ssmad_scan_abi_version", _ABI_VERSION, "selective_scan")


def is_available() -> bool:
    """Whether the compiled kernel can be used in this process."""
    return load_library() is not None


#: Below this many state updates per call the work runs on the calling thread: handing pieces to the pool costs
#: more than it saves for short sequences (ACMamba's 45-region training: 0.7 ms serial vs 1.5 ms on 2 threads).
SERIAL_UPDATES = 1 << 21


def _run_parallel(fn, n_items: int, args: tuple, updates: int) -> None:
    """Call ``fn(*args, i0, i1)`` over item ranges: one range per thread, the first on the calling thread.

    ``updates`` (state updates of the whole call) decides whether threads are worth starting at all.
    """
    global _pool, _pool_size
    threads = max(1, min(torch.get_num_threads(), n_items))
    if threads == 1 or updates < SERIAL_UPDATES:
        fn(*args, 0, n_items)
        return
    if _pool is None or _pool_size != threads - 1:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="ssmad-scan")
        _pool_size = threads - 1
    bounds = [n_items * k // threads for k in range(threads + 1)]
    futures = [_pool.submit(fn, *args, bounds[k], bounds[k + 1]) for k in range(1, threads)]
    fn(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()


def _lanes(lib: ctypes.CDLL, dtype: torch.dtype) -> int:
    """Channels per vector block of the kernel (8 or 16 floats, 4 or 8 doubles: 64-byte vectors with AVX-512)."""
    return lib.ssmad_scan_vector_bytes() // (8 if dtype == torch.float64 else 4)


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class _CpuScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, dt, A, B, C, D):  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        u, dt, A, B, C = (t.contiguous() for t in (u, dt, A, B, C))
        D = None if D is None else D.contiguous()
        batch, dim, length = u.shape
        groups, dstate = B.shape[1], B.shape[2]
        chunk = min(CHUNK, length)
        n_chunks = math.ceil(length / chunk)
        lanes = _lanes(lib, u.dtype)
        n_blocks = math.ceil(dim // groups / lanes)
        train = any(ctx.needs_input_grad)
        y = torch.empty_like(u)
        last = u.new_empty(batch, dim, dstate)
        ckpt = u.new_empty(batch, dim, n_chunks, dstate) if train else None
        ptrs = (u, dt, A, B, C, D, y, last, ckpt)
        args = (*map(_ptr, ptrs), batch, dim, dstate, length, groups, chunk)
        launch(lib, "ssmad_scan_fwd", u.dtype, batch * groups * n_blocks, args, batch * dim * length * dstate, _OPENMP)
        if train:
            ctx.save_for_backward(u, dt, A, B, C, D, ckpt)
            ctx.chunk = chunk
        return y, last

    @staticmethod
    def backward(ctx, dy, dlast):  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        u, dt, A, B, C, D, ckpt = ctx.saved_tensors
        batch, dim, length = u.shape
        groups, dstate = B.shape[1], B.shape[2]
        lanes = _lanes(lib, u.dtype)
        n_blocks = math.ceil(dim // groups / lanes)
        threads = torch.get_num_threads()
        splits = max(1, min(n_blocks, math.ceil(2 * threads / (batch * groups))))
        dy = torch.zeros_like(u) if dy is None else dy.contiguous()
        dlast = None if dlast is None else dlast.contiguous()
        du = torch.empty_like(u)
        ddt = torch.empty_like(u)
        dA_part = u.new_empty(batch, dim, dstate)
        dD_part = u.new_empty(batch, dim)
        dB_part = u.new_empty(splits, batch, groups, dstate, length)
        dC_part = u.new_empty(splits, batch, groups, dstate, length)
        ptrs = (u, dt, A, B, C, D, dy, dlast, ckpt, du, ddt, dA_part, dB_part, dC_part, dD_part)
        args = (*map(_ptr, ptrs), batch, dim, dstate, length, groups, ctx.chunk, splits)
        launch(lib, "ssmad_scan_bwd", u.dtype, batch * groups * splits, args, batch * dim * length * dstate, _OPENMP)
        dB = dB_part[0] if splits == 1 else dB_part.sum(0)
        dC = dC_part[0] if splits == 1 else dC_part.sum(0)
        dD = None if D is None else dD_part.sum(0)
        return du, ddt, dA_part.sum(0), dB, dC, dD


def core(
    u: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, want_last: bool
) -> tuple[Tensor, Tensor | None]:
    """Core recurrence on the compiled kernel (contract in :mod:`ssmad.ssm._core`)."""
    if u.device.type != "cpu":
        raise ValueError(f"the 'cpu' selective-scan backend needs CPU tensors, got {u.device}")
    if u.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the 'cpu' selective-scan backend computes in float32/float64, got {u.dtype}")
    y, last = _CpuScan.apply(u, dt, A, B, C, D)
    return y, (last if want_last else None)


#: Steps per chunk of the fused kernel (``kFusedChunk`` in the C++ source): the training forward saves the state
#: entering every chunk, the backward recomputes the states inside it.
FUSED_CHUNK = 64


def _directional_forward(
    x: Tensor,
    xdbl: Tensor,
    dt_weight: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D_sum: Tensor | None,
    index: Tensor,
    ckpt: Tensor | None = None,
) -> Tensor:
    """One call of the fused forward kernel on contiguous inputs (``xdbl``: any strides but a dense last axis).

    With ``ckpt`` (:func:`_checkpoint_buffer`) the state entering every chunk is written there for the backward.
    """
    lib = load_library()
    assert lib is not None
    batch, length, dim = x.shape
    k, _, rank = dt_weight.shape
    dstate = A.shape[-1]
    y = torch.empty_like(x)
    lanes = _lanes(lib, x.dtype)
    ptrs = (x, xdbl, dt_weight, dt_bias, A, D_sum, index, y, ckpt)
    sizes = (batch, length, dim, k, rank, dstate, xdbl.stride(0), xdbl.stride(2), xdbl.stride(1))
    launch(
        lib,
        "ssmad_fused_fwd",
        x.dtype,
        batch * math.ceil(dim / lanes),
        (*map(_ptr, ptrs), *sizes),
        batch * length * dim * k * dstate,
        _OPENMP,
    )
    return y


def _checkpoint_buffer(x: Tensor, k: int, dstate: int) -> Tensor:
    """Room for the states entering every chunk: ``(batch, K, channel blocks, chunks, N, lanes)``, flat."""
    batch, length, dim = x.shape
    lib = load_library()
    assert lib is not None
    lanes = _lanes(lib, x.dtype)
    return x.new_empty(batch * k * math.ceil(dim / lanes) * math.ceil(length / FUSED_CHUNK) * dstate * lanes)


def _prepare(
    x: Tensor, xdbl: Tensor, dt_weight: Tensor, dt_bias: Tensor, A: Tensor, D: Tensor | None, index: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None, Tensor]:
    x, dt_weight, dt_bias, A = (t.contiguous() for t in (x, dt_weight, dt_bias, A))
    if xdbl.stride(-1) != 1:  # any layout of the first three axes works; each [dts | B | C] row must be dense
        xdbl = xdbl.contiguous()
    D = None if D is None else D.contiguous()
    return x, xdbl, dt_weight, dt_bias, A, D, index.to(torch.int64).contiguous()


class _DirectionalScan(torch.autograd.Function):
    """The direction-fused scan with the fused backward kernel: it saves its inputs and one state per chunk."""

    @staticmethod
    def forward(ctx, x, xdbl, dt_weight, dt_bias, A, D, index):  # type: ignore[override]
        x, xdbl, dt_weight, dt_bias, A, D, index = _prepare(x, xdbl, dt_weight, dt_bias, A, D, index)
        ckpt = _checkpoint_buffer(x, dt_weight.shape[0], A.shape[-1])
        y = _directional_forward(x, xdbl, dt_weight, dt_bias, A, None if D is None else D.sum(0), index, ckpt)
        ctx.save_for_backward(x, xdbl, dt_weight, dt_bias, A, D, index, ckpt)
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        lib = load_library()
        assert lib is not None
        x, xdbl, dt_weight, dt_bias, A, D, index, ckpt = ctx.saved_tensors
        batch, length, dim = x.shape
        k, _, rank = dt_weight.shape
        dstate = A.shape[-1]
        dy = dy.contiguous()
        lanes = _lanes(lib, x.dtype)
        n_blocks = math.ceil(dim / lanes)
        # items (batch element, split of the channel blocks): enough of them for every thread
        splits = max(1, min(n_blocks, math.ceil(torch.get_num_threads() / batch)))
        # The kernel adds to dx the skip term D_sum * dy and the scans' gradients and writes, per batch element,
        # sum_l dy * x: the gradient of D_sum (and of every D_k, since D enters as their sum).
        d_sum = D.sum(0).contiguous() if D is not None else None
        want_dD = D is not None and ctx.needs_input_grad[5]
        dx = torch.zeros_like(x)
        dxdbl = x.new_empty(splits, batch, length, k, rank + 2 * dstate)
        ddtw = x.new_empty(batch, k, dim, rank)
        ddtb = x.new_empty(batch, k, dim)
        dA = x.new_empty(batch, k, dim, dstate)
        dD_part = x.new_empty(batch, dim) if want_dD else None
        ptrs = (x, xdbl, dt_weight, dt_bias, A, d_sum, index, ckpt, dy, dx, dxdbl, ddtw, ddtb, dA, dD_part)
        sizes = (batch, length, dim, k, rank, dstate, xdbl.stride(0), xdbl.stride(2), xdbl.stride(1), splits)
        updates = 2 * batch * length * dim * k * dstate
        launch(lib, "ssmad_fused_bwd", x.dtype, batch * splits, (*map(_ptr, ptrs), *sizes), updates, _OPENMP)
        dD = dD_part.sum(0).expand(k, dim).contiguous() if dD_part is not None else None
        return dx, dxdbl[0] if splits == 1 else dxdbl.sum(0), ddtw.sum(0), ddtb.sum(0), dA.sum(0), dD, None


def directional_core(
    x: Tensor,
    xdbl: Tensor,
    dt_weight: Tensor,
    dt_bias: Tensor,
    A: Tensor,
    D: Tensor | None,
    index: Tensor,
) -> Tensor:
    """Direction-fused scan on the compiled kernel (contract in :mod:`ssmad.ssm.directional`), differentiable.

    Without autograd it is one forward kernel call; with it, the forward also saves the state entering every chunk
    of :data:`FUSED_CHUNK` steps (``batch · K · D · L · N / 64`` numbers) and the backward kernel recomputes the
    states inside each chunk from there (see ``fused_bwd_item`` in the C++ source).
    """
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, xdbl, dt_weight, dt_bias, A, D)):
        return cast(Tensor, _DirectionalScan.apply(x, xdbl, dt_weight, dt_bias, A, D, index))
    x, xdbl, dt_weight, dt_bias, A, D, index = _prepare(x, xdbl, dt_weight, dt_bias, A, D, index)
    return _directional_forward(x, xdbl, dt_weight, dt_bias, A, None if D is None else D.sum(0), index)
