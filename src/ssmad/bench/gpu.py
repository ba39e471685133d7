"""``ssmad bench gpu``: one command for a GPU machine — GPU tests, scan kernels against the roofline, MambaAD speed.

Sections, in order, each skipped with a note once the time budget (:data:`BUDGET_S`, under the 8 minutes the
command must fit in on one H100/H200) is spent:

1. **device**: GPU name, memory, versions of torch/triton/CUDA, whether mamba-ssm and timm import, and what the
   ``auto`` scan backend picks on CUDA and why;
2. **gpu tests**: ``pytest -m gpu tests/gpu`` in a subprocess (when the source tree and pytest are there);
3. **machine limits**: memory bandwidth (a large ``copy_``) and float32 matmul FLOP/s (TF32 off), measured;
4. **scan**: forward (no grad) and forward+backward (gradients for u, delta, A, B, C, D, delta_bias; softplus on)
   of the ``triton``, ``torch`` and — when importable — ``cuda`` (mamba-ssm) backends at the shapes ``mad_s3``,
   ``mad_s2`` and ``acm_infer`` of :mod:`ssmad.bench.scan`, rounds interleaved across methods, minimum kept; the
   roofline bound of a shape is ``max(bytes / bandwidth, 9 · batch·D·L·N / FLOP/s)`` for the forward (bytes: reads
   of ``u, delta, B, C`` and the write of ``y`` in float32) and 2.5 × that for forward+backward, as in
   ``ssmad bench scan``; the issue's goals are checked (triton ≥ 0.8× mamba-ssm, ≥ 5× torch, ≤ 3× the bound);
5. **mambaad**: MambaAD (ResNet34, 256×256, batch 16, float32) inference and training images/s on each GPU scan
   backend; the encoder uses local pretrained weights when found, else a random initialisation (speed does not
   depend on the weights; the report says which).

Everything goes into one new JSON file (written atomically, never over an existing file) and is printed as tables.
Without a CUDA device the command stops at once with exit code 2.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, MissingDependencyError
from .scan import SHAPES, ScanShape, make_inputs

logger = logging.getLogger(__name__)

#: Seconds the whole run may take before remaining sections are skipped (the command must end within 8 minutes).
BUDGET_S = 420.0
#: Benchmark shapes of the scan section (names from :data:`ssmad.bench.scan.SHAPES`).
SCAN_SHAPES: tuple[str, ...] = ("mad_s3", "mad_s2", "acm_infer")
#: The issue's goals for the triton backend's forward+backward.
GOAL_VS_MAMBA = 0.8  # at least this fraction of mamba-ssm's speed
GOAL_VS_TORCH = 5.0  # at least this many times the torch backend's speed
GOAL_OVER_BOUND = 3.0  # at most this many times the roofline bound
#: Forward+backward bound as a multiple of the forward bound (the convention of ``ssmad bench scan``).
FWD_BWD_FACTOR = 2.5


class Budget:
    """Wall-clock budget of a run: sections ask :meth:`left` before they start."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock() - self.start

    def left(self) -> float:
        """Seconds left (negative when overdrawn)."""
        return self.seconds - self.elapsed()


# --------------------------------------------------------------------------------------------------------------
# roofline arithmetic


@dataclass(frozen=True)
class GpuLimits:
    """Measured limits of the GPU (float32)."""

    bandwidth: float  # bytes / s
    flops: float  # FLOP / s

    def forward_bound(self, shape: ScanShape) -> float:
        """Lower bound on the forward time of ``shape`` in seconds: memory traffic or arithmetic, whichever is more."""
        return max(scan_bytes(shape) / self.bandwidth, 9 * shape.elements / self.flops)

    def fwd_bwd_bound(self, shape: ScanShape) -> float:
        """Lower bound on forward + backward, :data:`FWD_BWD_FACTOR` × the forward bound."""
        return FWD_BWD_FACTOR * self.forward_bound(shape)


def scan_bytes(shape: ScanShape) -> int:
    """Bytes a forward must move at least (float32).

    Reads of ``u, delta`` ``(b, D, L)`` and ``B, C`` ``(b, G, N, L)`` and the write of ``y`` ``(b, D, L)``.
    """
    b, d, n, length, g = shape.batch, shape.dim, shape.dstate, shape.length, shape.groups
    return 4 * (3 * b * d * length + 2 * b * g * n * length)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_limits(device: torch.device, repeats: int = 5) -> GpuLimits:
    """Measure memory bandwidth (copy of 1 GiB read + write) and float32 matmul FLOP/s (TF32 off) on ``device``."""
    n = 128 * 2**20 if device.type == "cuda" else 2**22
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    m = 8192 if device.type == "cuda" else 512
    a, b = torch.randn(m, m, device=device), torch.randn(m, m, device=device)
    with _tf32_off():
        t_copy = best_time(lambda: dst.copy_(src), repeats, device)
        t_mm = best_time(lambda: a @ b, repeats, device)
    return GpuLimits(bandwidth=2 * 4 * n / t_copy, flops=2 * m**3 / t_mm)


@contextlib.contextmanager
def _tf32_off() -> Iterator[None]:
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def best_time(fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 1) -> float:
    """Minimum over ``repeats`` timed calls of ``fn`` (after ``warmup`` calls), device work included."""
    for _ in range(warmup):
        fn()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------------------------------------------
# scan section


@dataclass
class ScanRow:
    """Timings of one (shape, method) pair in seconds, and its ratios."""

    shape: str
    method: str
    forward: float
    fwd_bwd: float
    max_rel_diff_vs_torch: float = math.nan
    ratios: dict[str, float] = field(default_factory=dict)


def _scan_call(inputs: dict[str, torch.Tensor], backend: str, grad: bool) -> Callable[[], torch.Tensor]:
    from ..ssm import selective_scan

    def scan(t: dict[str, torch.Tensor]) -> torch.Tensor:
        out = selective_scan(
            t["u"], t["delta"], t["A"], t["B"], t["C"], t["D"], None, t["delta_bias"], True, backend=backend
        )
        assert isinstance(out, torch.Tensor)
        return out

    def run() -> torch.Tensor:
        if not grad:
            with torch.no_grad():
                return scan(inputs)
        out = scan({k: v.detach().requires_grad_(True) for k, v in inputs.items()})
        out.backward(torch.ones_like(out))
        return out

    return run


def add_ratios(rows: list[ScanRow], bound_fwd: float) -> None:
    """Fill every row's ratios: speed-ups of ``triton`` over the others, and time over the roofline bound."""
    by = {r.method: r for r in rows}
    for r in rows:
        r.ratios = {
            "forward_over_bound": r.forward / bound_fwd,
            "fwd_bwd_over_bound": r.fwd_bwd / (FWD_BWD_FACTOR * bound_fwd),
        }
    tri = by.get("triton")
    if tri is not None:
        for other in ("torch", "cuda"):
            if other in by:
                tri.ratios[f"fwd_bwd_speedup_vs_{other}"] = by[other].fwd_bwd / tri.fwd_bwd
                tri.ratios[f"forward_speedup_vs_{other}"] = by[other].forward / tri.forward


def goals(rows: list[ScanRow]) -> dict[str, bool | None]:
    """The issue's goals for the triton row of one shape (None: not measurable here, e.g. no mamba-ssm)."""
    tri = next((r for r in rows if r.method == "triton"), None)
    if tri is None:
        return {"vs_mamba_ssm": None, "vs_torch": None, "within_bound": None}
    q = tri.ratios
    vs_mamba = q.get("fwd_bwd_speedup_vs_cuda")
    vs_torch = q.get("fwd_bwd_speedup_vs_torch")
    return {
        "vs_mamba_ssm": None if vs_mamba is None else vs_mamba >= GOAL_VS_MAMBA,
        "vs_torch": None if vs_torch is None else vs_torch >= GOAL_VS_TORCH,
        "within_bound": q["fwd_bwd_over_bound"] <= GOAL_OVER_BOUND,
    }


def bench_scan_shape(
    shape: ScanShape, methods: Sequence[str], device: torch.device, repeats: int, limits: GpuLimits
) -> list[ScanRow]:
    """Time ``methods`` on ``shape`` (rounds interleaved: every method once per round), then add the ratios."""
    inputs = {k: v.to(device) for k, v in make_inputs(shape).items()}
    calls = {m: (_scan_call(inputs, m, False), _scan_call(inputs, m, True)) for m in methods}
    for fwd, both in calls.values():  # warm-up: Triton compiles here
        fwd()
        both()
    _sync(device)
    times: dict[str, list[float]] = {m: [math.inf, math.inf] for m in methods}
    for _ in range(repeats):
        for m, pair in calls.items():
            for i, fn in enumerate(pair):
                t0 = time.perf_counter()
                fn()
                _sync(device)
                times[m][i] = min(times[m][i], time.perf_counter() - t0)
    rows = [ScanRow(shape.name, m, times[m][0], times[m][1]) for m in methods]
    if "torch" in methods:
        with torch.no_grad():
            want = calls["torch"][0]()
            for r in rows:
                got = calls[r.method][0]()
                r.max_rel_diff_vs_torch = float((got - want).abs().max() / want.abs().max().clamp_min(1e-30))
    add_ratios(rows, limits.forward_bound(shape))
    return rows


def format_scan_table(rows: list[ScanRow], limits: GpuLimits) -> str:
    """Markdown table of the scan section."""
    lines = [
        f"GPU limits (measured): bandwidth {limits.bandwidth / 1e9:.0f} GB/s, float32 matmul "
        f"{limits.flops / 1e12:.1f} TFLOP/s (TF32 off)",
        "",
        "| shape | method | fwd ms | fwd+bwd ms | triton fwd+bwd speed-up | fwd / bound | fwd+bwd / bound | "
        "max rel diff vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        q = r.ratios
        speedups = ", ".join(
            f"{q[k]:.2f}x vs {k.rsplit('_', 1)[-1]}" for k in sorted(q) if k.startswith("fwd_bwd_speedup_vs_")
        )
        lines.append(
            f"| {r.shape} | {r.method} | {r.forward * 1e3:.3f} | {r.fwd_bwd * 1e3:.3f} | {speedups} | "
            f"{q['forward_over_bound']:.2f} | {q['fwd_bwd_over_bound']:.2f} | {r.max_rel_diff_vs_torch:.1e} |"
        )
    lines.append(
        f"goals for triton fwd+bwd: >= {GOAL_VS_MAMBA}x mamba-ssm (method 'cuda'), >= {GOAL_VS_TORCH}x torch, "
        f"<= {GOAL_OVER_BOUND}x the roofline bound"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# mambaad section


@dataclass
class ModelRow:
    """MambaAD speed on one scan backend."""

    backend: str
    infer_s: float
    train_s: float | None
    batch: int

    @property
    def infer_images_per_s(self) -> float:
        """Inference images per second."""
        return self.batch / self.infer_s

    @property
    def train_images_per_s(self) -> float | None:
        """Training images per second."""
        return None if self.train_s is None else self.batch / self.train_s


def encoder_weights_note(encoder: str) -> tuple[bool, str]:
    """Whether local pretrained weights of ``encoder`` exist, and the note the report prints."""
    from ..encoders.weights import find_weights

    try:
        found = find_weights(encoder)
    except InputError as err:
        return False, f"random initialisation (local weights unusable: {err})"
    if found is None:
        return False, "random initialisation (no local pretrained weights; speed does not depend on the weights)"
    return True, f"pretrained weights from {found.origin}: {found.path}"


def bench_mambaad(
    backends: Sequence[str],
    device: torch.device,
    *,
    batch: int = 16,
    size: int = 256,
    encoder: str = "resnet34",
    repeats: int = 3,
    train_repeats: int = 3,
    budget: Budget | None = None,
) -> tuple[list[ModelRow], str]:
    """Inference and training-step time of MambaAD per scan backend (float32, minimum over the rounds).

    Returns:
        The rows and the note on the encoder weights.
    """
    from ..models.mambaad import MambaAD, MambaADConfig
    from .mambaad import _train_step

    pretrained, note = encoder_weights_note(encoder)
    rows = []
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    for name in backends:
        if budget is not None and budget.left() < 60:
            logger.warning("bench gpu: time budget spent; MambaAD on %r skipped", name)
            continue
        torch.manual_seed(0)
        config = MambaADConfig(encoder=encoder, pretrained=pretrained, image_size=size, scan_backend=name)
        model = MambaAD(config).to(device)

        def infer(model: torch.nn.Module = model) -> object:
            model.eval()
            with torch.no_grad():
                return model(images)

        infer_s = best_time(infer, repeats, device, warmup=2)
        train_s = None
        if train_repeats:
            step = _train_step(model, batch)
            train_s = best_time(partial(step, images), train_repeats, device, warmup=2)
        rows.append(ModelRow(name, infer_s, train_s, batch))
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows, note


def format_model_table(rows: list[ModelRow], note: str, size: int, encoder: str) -> str:
    """Markdown table of the MambaAD section."""
    lines = [
        f"MambaAD, {encoder} encoder ({note}), {size}x{size}, float32",
        "",
        "| scan backend | batch | inference s / batch | inference images/s | train step s / batch | train images/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        train = "| " if r.train_s is None else f"{r.train_s:.3f} | {r.train_images_per_s:.1f}"
        lines.append(f"| {r.backend} | {r.batch} | {r.infer_s:.3f} | {r.infer_images_per_s:.1f} | {train} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# gpu tests, device facts, JSON


def gpu_tests_dir() -> Path | None:
    """``tests/gpu`` of the source tree this package runs from, when there is one."""
    root = Path(__file__).resolve().parents[3]
    folder = root / "tests" / "gpu"
    return folder if folder.is_dir() else None


def run_gpu_tests(folder: Path | None, timeout_s: float) -> dict[str, Any]:
    """Run ``pytest -m gpu`` on ``folder`` in a subprocess; the exit code and the summary line."""
    if folder is None:
        return {"status": "skipped", "reason": "no tests/gpu folder next to this package (installed, not a checkout)"}
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"status": "skipped", "reason": "pytest is not installed"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "gpu", str(folder)]
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, cwd=folder.parents[1], env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout_s, "command": " ".join(cmd)}
    return summarize_pytest(proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0, " ".join(cmd))


def summarize_pytest(returncode: int, output: str, seconds: float, command: str) -> dict[str, Any]:
    """Status of a pytest run from its exit code (0 passed, 5 nothing collected) and its last summary line."""
    lines = [line for line in output.strip().splitlines() if line.strip()]
    summary = next((line.strip("= ") for line in reversed(lines) if " in " in line and "s" in line), "")
    status = {0: "passed", 5: "no tests collected"}.get(returncode, "failed")
    result: dict[str, Any] = {"status": status, "exit_code": returncode, "summary": summary, "seconds": seconds}
    result["command"] = command
    if status == "failed":
        result["output_tail"] = "\n".join(lines[-40:])
    return result


def package_version(module: str, dist: str) -> str:
    """Installed version of a package found without importing it, or ``"not installed"``."""
    try:
        if importlib.util.find_spec(module) is None:
            return "not installed"
    except (ImportError, ValueError):
        return "not installed"
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed (version unknown)"


def device_facts(device: torch.device) -> dict[str, Any]:
    """Name, memory and software versions, and what ``auto`` picks on this device and why."""
    from ..ssm import explain_backends

    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts |= {
            "name": props.name,
            "memory_gib": props.total_memory / 2**30,
            "capability": [props.major, props.minor],
        }
    for package, dist in (("triton", "triton"), ("mamba_ssm", "mamba-ssm"), ("timm", "timm")):
        facts[package] = package_version(package, dist)
    chosen, rows = explain_backends(device)
    facts["auto_backend"] = chosen
    facts["backends"] = {name: {"available": ok, "why": why} for name, ok, why in rows}
    return facts


def default_json_path(now: _dt.datetime | None = None) -> Path:
    """``ssmad-bench-gpu-<UTC time>.json`` in the working folder."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return Path(f"ssmad-bench-gpu-{now.strftime('%Y%m%d-%H%M%S')}.json")


def write_json_new(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically; never over an existing file.

    Raises:
        InputError: ``path`` exists (before or at the end of the run).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, default=str, allow_nan=True)
        try:
            os.link(tmp, path)  # atomic, and fails when the name exists
        except FileExistsError as err:
            raise InputError(f"{path}: the file exists already; the report was not written over it.") from err
        except OSError:  # a file system without hard links
            if path.exists():
                raise InputError(f"{path}: the file exists already; the report was not written over it.") from None
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def require_cuda() -> torch.device:
    """The CUDA device to benchmark, or a :class:`MissingDependencyError` that says what is missing."""
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = (
            f"this PyTorch ({torch.__version__}) is a CPU-only build"
            if build is None
            else f"PyTorch {torch.__version__} (CUDA {build}) sees no CUDA device"
        )
        raise MissingDependencyError(
            f"bench gpu needs a CUDA device: {why}. Run it on a machine with an NVIDIA GPU and a CUDA build of "
            'PyTorch (check with `python -c "import torch; print(torch.cuda.is_available())"`).'
        )
    return torch.device("cuda", torch.cuda.current_device())


# --------------------------------------------------------------------------------------------------------------
# the command


def run_gpu_benchmark(
    json_path: str | os.PathLike | None = None,
    *,
    shapes: Sequence[str] = SCAN_SHAPES,
    repeats: int = 5,
    run_tests: bool = True,
    run_models: bool = True,
    budget_s: float = BUDGET_S,
) -> dict[str, Any]:
    """Run every section (see the module docstring), print the tables, write the JSON file and return its payload.

    Raises:
        MissingDependencyError: No CUDA device.
        InputError: ``json_path`` exists already.
    """
    from ..ssm import available_backends, backend_available

    path = Path(json_path) if json_path is not None else default_json_path()
    if path.exists():
        raise InputError(f"{path}: the file exists already; give --json a new file name (results are kept).")
    unknown = [s for s in shapes if s not in {sh.name for sh in SHAPES}]
    if unknown:
        raise InputError(f"bench gpu: unknown shape(s) {unknown}; choose from {[s.name for s in SHAPES]}")
    device = require_cuda()
    budget = Budget(budget_s)
    payload: dict[str, Any] = {"started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    payload["device"] = facts = device_facts(device)
    print(
        f"device: {facts.get('name')} ({facts.get('memory_gib', 0):.0f} GiB), torch {facts['torch']}, "
        f"CUDA {facts['cuda_runtime']}, triton {facts['triton']}, mamba-ssm {facts['mamba_ssm']}"
    )
    print(f"auto scan backend on cuda: {facts['auto_backend']}")

    if run_tests:
        logger.info("running the gpu-marked tests")
        payload["gpu_tests"] = run_gpu_tests(gpu_tests_dir(), timeout_s=min(180.0, max(30.0, budget.left() - 240)))
        print(f"gpu tests: {payload['gpu_tests']['status']} {payload['gpu_tests'].get('summary', '')}")
    else:
        payload["gpu_tests"] = {"status": "skipped", "reason": "--skip-tests"}

    limits = measure_limits(device)
    payload["limits"] = asdict(limits)
    methods = [m for m in ("triton", "torch", "cuda") if backend_available(m, device)]
    scan_rows: list[ScanRow] = []
    payload["scan"] = {"methods": methods, "rows": [], "goals": {}, "skipped": []}
    for shape in (s for s in SHAPES if s.name in shapes):
        if budget.left() < 150:
            payload["scan"]["skipped"].append(shape.name)
            logger.warning("bench gpu: time budget spent; scan shape %s skipped", shape.name)
            continue
        logger.info("scan benchmark: %s (%s)", shape.name, shape.what)
        rows = bench_scan_shape(shape, methods, device, repeats, limits)
        scan_rows.extend(rows)
        payload["scan"]["rows"].extend(asdict(r) for r in rows)
        payload["scan"]["goals"][shape.name] = goals(rows)
        payload["scan"]["bounds"] = payload["scan"].get("bounds", {}) | {
            shape.name: {"forward_s": limits.forward_bound(shape), "fwd_bwd_s": limits.fwd_bwd_bound(shape)}
        }
    print(format_scan_table(scan_rows, limits))

    if run_models:
        model_backends = [m for m in available_backends(device) if m != "reference"]
        rows_m, note = bench_mambaad(model_backends, device, budget=budget)
        payload["mambaad"] = {
            "encoder": "resnet34",
            "encoder_weights": note,
            "size": 256,
            "rows": [
                asdict(r) | {"infer_images_per_s": r.infer_images_per_s, "train_images_per_s": r.train_images_per_s}
                for r in rows_m
            ],
            "skipped": [b for b in model_backends if b not in {r.backend for r in rows_m}],
        }
        print(format_model_table(rows_m, note, 256, "resnet34"))
    else:
        payload["mambaad"] = {"status": "skipped", "reason": "--skip-models"}
    payload["seconds"] = budget.elapsed()
    write_json_new(path, payload)
    print(f"report written to {path} ({payload['seconds']:.0f} s)")
    return payload
