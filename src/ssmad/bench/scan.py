"""Selective-scan benchmark: every backend against the reference, a pure-PyTorch peer and the roofline.

Everything is measured in one run on this machine:

* the machine's limits — memory bandwidth (a large ``copy_``), fp32 FLOP/s (a large matmul) and the exp rate
  (``torch.exp`` on a large tensor, written into a preallocated output);
* the forward bound of a shape, ``max(bytes moved / bandwidth, 9·batch·D·L·N / FLOP/s, batch·D·L·N / exp rate)``,
  where the bytes are the unavoidable reads of ``u, delta, B, C`` and the write of ``y`` (float32); the
  forward+backward bound is 2.5 × the forward bound;
* forward (no grad) and forward+backward time (gradients for u, delta, A, B, C, D and delta_bias, softplus on)
  of every available backend, of the sequential reference and of the peer — ``mambapy``'s parallel scan
  (``pscan``) given the same computation in its native ``(B, L, D, N)`` layout (its layout change is not timed).

The sequential reference needs minutes at L = 4096, so it is timed on a prefix of the sequence and scaled
linearly to the full length (its cost per step is constant); the table says so. Times are the minimum over
repeats after one warm-up (the reference, a Python loop with nothing to warm, is timed from its first call).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..ssm import available_backends, selective_scan

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanShape:
    """One benchmark shape (float32)."""

    name: str
    batch: int
    dim: int
    dstate: int
    length: int
    groups: int
    what: str

    @property
    def elements(self) -> int:
        """Batch · D · L · N: the number of state updates."""
        return self.batch * self.dim * self.length * self.dstate


SHAPES: tuple[ScanShape, ...] = (
    ScanShape("mad_s3", 2, 1024, 16, 4096, 8, "MambaAD decoder stage 3 (64x64, d_inner 128, 8 directions)"),
    ScanShape("mad_s2", 2, 2048, 16, 1024, 8, "MambaAD decoder stage 2"),
    ScanShape("mad_s0", 2, 8192, 16, 64, 8, "MambaAD decoder stage 0"),
    ScanShape("acm_train", 1, 1024, 16, 66, 2, "ACMamba region sequence"),
    ScanShape("acm_infer", 1, 1024, 16, 10000, 2, "ACMamba pixel inference on 100x100"),
)

#: Longest prefix on which the sequential reference is timed.
REFERENCE_PREFIX = 128


@dataclass
class MachineLimits:
    """Measured limits of this machine (float32)."""

    bandwidth: float  # bytes / s
    flops: float  # FLOP / s
    exp_rate: float  # exp / s
    threads: int

    def forward_bound(self, shape: ScanShape) -> float:
        """Lower bound on the forward time of ``shape`` in seconds."""
        b, d, n, length, g = shape.batch, shape.dim, shape.dstate, shape.length, shape.groups
        bytes_moved = 4 * (3 * b * d * length + 2 * b * g * n * length)
        return max(bytes_moved / self.bandwidth, 9 * shape.elements / self.flops, shape.elements / self.exp_rate)


@dataclass
class Row:
    """Timings of one (shape, method) pair, seconds."""

    shape: str
    method: str
    forward: float
    fwd_bwd: float
    note: str = ""
    ratios: dict[str, float] = field(default_factory=dict)


def _best(fn: Callable[[], object], repeats: int, *, warmup: bool = True) -> float:
    if warmup:
        fn()  # compilation, allocator, thread pool
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure_machine(repeats: int = 3) -> MachineLimits:
    """Measure memory bandwidth, matmul FLOP/s and the exp rate with torch on this machine."""
    n = 64 * 2**20  # 256 MiB of float32
    src = torch.rand(n)
    dst = torch.empty_like(src)
    t_copy = _best(lambda: dst.copy_(src), repeats)
    t_exp = _best(lambda: torch.exp(src, out=dst), repeats)
    m = 2048
    a, b = torch.randn(m, m), torch.randn(m, m)
    t_mm = _best(lambda: a @ b, repeats)
    return MachineLimits(
        bandwidth=2 * 4 * n / t_copy, flops=2 * m**3 / t_mm, exp_rate=n / t_exp, threads=torch.get_num_threads()
    )


def make_inputs(shape: ScanShape, length: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Realistic float32 inputs (softplus(delta + bias) ~ 0.001..0.5, A = -exp(U(0, 2.5)))."""
    g = torch.Generator().manual_seed(seed)
    b, d, n, G = shape.batch, shape.dim, shape.dstate, shape.groups
    L = length or shape.length
    return {
        "u": torch.randn(b, d, L, generator=g),
        "delta": torch.randn(b, d, L, generator=g) * 0.5 - 2.0,
        "A": -torch.exp(torch.rand(d, n, generator=g) * 2.5),
        "B": torch.randn(b, G, n, L, generator=g),
        "C": torch.randn(b, G, n, L, generator=g),
        "D": torch.randn(d, generator=g),
        "delta_bias": torch.rand(d, generator=g) * 0.1,
    }


def _ours(inputs: dict[str, torch.Tensor], backend: str, grad: bool) -> Callable[[], object]:
    def run() -> object:
        if not grad:
            with torch.no_grad():
                return selective_scan(**inputs, delta_softplus=True, backend=backend)
        leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
        out = selective_scan(**leaves, delta_softplus=True, backend=backend)
        out.backward(torch.ones_like(out))
        return out

    return run


def _peer(inputs: dict[str, torch.Tensor], groups: int, grad: bool) -> Callable[[], object]:
    """The same computation with mambapy's parallel scan, inputs given in its (B, L, D, N) layout."""
    from mambapy.pscan import pscan

    per = inputs["u"].shape[1] // groups
    native = {
        "u": inputs["u"].transpose(1, 2).contiguous(),  # (B, L, D)
        "delta": inputs["delta"].transpose(1, 2).contiguous(),
        "A": inputs["A"],
        "B": inputs["B"].permute(0, 3, 1, 2).contiguous(),  # (B, L, G, N)
        "C": inputs["C"].permute(0, 3, 1, 2).contiguous(),
        "D": inputs["D"],
        "delta_bias": inputs["delta_bias"],
    }

    def compute(t: dict[str, torch.Tensor]) -> torch.Tensor:
        dt = F.softplus(t["delta"] + t["delta_bias"])  # (B, L, D)
        decay = torch.exp(dt.unsqueeze(-1) * t["A"])  # (B, L, D, N)
        Bx = t["B"].repeat_interleave(per, dim=2)  # (B, L, D, N)
        Cx = t["C"].repeat_interleave(per, dim=2)
        drive = (dt * t["u"]).unsqueeze(-1) * Bx
        hs = pscan(decay, drive)
        return (hs * Cx).sum(-1) + t["D"] * t["u"]

    def run() -> object:
        if not grad:
            with torch.no_grad():
                return compute(native)
        leaves = {k: v.detach().requires_grad_(True) for k, v in native.items()}
        out = compute(leaves)
        out.backward(torch.ones_like(out))
        return out

    return run


def _peer_available() -> bool:
    try:
        import mambapy.pscan  # noqa: F401
    except ImportError:
        return False
    return True


def benchmark_shape(
    shape: ScanShape, backends: Sequence[str], repeats: int, peer: bool, limits: MachineLimits
) -> list[Row]:
    """Time the reference (prefix-scaled), each backend and the peer on one shape."""
    rows: list[Row] = []
    inputs = make_inputs(shape)
    prefix = min(shape.length, REFERENCE_PREFIX)
    ref_inputs = make_inputs(shape, length=prefix)
    scale = shape.length / prefix
    ref_repeats = 1 if shape.elements > 2**25 else 2
    # The reference is a Python loop of small torch ops: nothing to compile or warm, so its first call is timed.
    fwd = _best(_ours(ref_inputs, "reference", False), ref_repeats, warmup=False) * scale
    both = _best(_ours(ref_inputs, "reference", True), ref_repeats, warmup=False) * scale
    note = f"timed on L={prefix}, scaled x{scale:g}" if scale != 1 else ""
    rows.append(Row(shape.name, "reference", fwd, both, note))
    for name in backends:
        if name == "reference":
            continue
        rows.append(
            Row(
                shape.name,
                name,
                _best(_ours(inputs, name, False), repeats),
                _best(_ours(inputs, name, True), repeats),
            )
        )
    if peer:
        peer_repeats = 1 if shape.elements > 2**25 else repeats
        rows.append(
            Row(
                shape.name,
                "mambapy (peer)",
                _best(_peer(inputs, shape.groups, False), peer_repeats),
                _best(_peer(inputs, shape.groups, True), peer_repeats),
            )
        )
    bound_f = limits.forward_bound(shape)
    ref = rows[0]
    peer_row = rows[-1] if peer else None
    for row in rows:
        row.ratios = {
            "fwd_bwd_speedup_vs_reference": ref.fwd_bwd / row.fwd_bwd,
            "fwd_bwd_speedup_vs_peer": (peer_row.fwd_bwd / row.fwd_bwd) if peer_row else math.nan,
            "forward_over_bound": row.forward / bound_f,
            "fwd_bwd_over_bound": row.fwd_bwd / (2.5 * bound_f),
        }
    rows.append(Row(shape.name, "roofline bound", bound_f, 2.5 * bound_f, "lower bound, not a backend"))
    return rows


def format_table(rows: list[Row], limits: MachineLimits) -> str:
    """Markdown table of the rows (times in seconds, ratios as x factors)."""
    lines = [
        f"machine: {limits.threads} threads, bandwidth {limits.bandwidth / 1e9:.1f} GB/s, "
        f"matmul {limits.flops / 1e9:.1f} GFLOP/s, exp {limits.exp_rate / 1e9:.2f} G/s (torch.exp)",
        "",
        "| shape | method | fwd s | fwd+bwd s | fwd+bwd speed-up vs reference | vs peer | fwd / bound | "
        "fwd+bwd / bound | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.method == "roofline bound":
            lines.append(f"| {r.shape} | {r.method} | {r.forward:.4f} | {r.fwd_bwd:.4f} | | | 1.00 | 1.00 | {r.note} |")
            continue
        q = r.ratios
        peer = "" if math.isnan(q["fwd_bwd_speedup_vs_peer"]) else f"{q['fwd_bwd_speedup_vs_peer']:.1f}x"
        lines.append(
            f"| {r.shape} | {r.method} | {r.forward:.4f} | {r.fwd_bwd:.4f} | "
            f"{q['fwd_bwd_speedup_vs_reference']:.1f}x | {peer} | {q['forward_over_bound']:.2f} | "
            f"{q['fwd_bwd_over_bound']:.2f} | {r.note} |"
        )
    return "\n".join(lines)


def run_scan_benchmark(
    shapes: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
    repeats: int = 3,
    peer: bool = True,
    json_path: str | os.PathLike | None = None,
) -> list[Row]:
    """Run the benchmark, print the table and return its rows.

    Args:
        shapes: Names from :data:`SHAPES` (default: all).
        backends: Backends to time besides the reference (default: the fast ones available on the CPU; not the
            traceable ``export`` backend, which is for ONNX graphs).
        repeats: Timed repetitions per measurement (the minimum is kept).
        peer: Also time mambapy's parallel scan (skipped with a note when it is not installed).
        json_path: Also write the rows and machine limits as JSON.
    """
    chosen = [s for s in SHAPES if shapes is None or s.name in shapes]
    unknown = set(shapes or ()) - {s.name for s in SHAPES}
    if unknown:
        raise ValueError(f"unknown shape(s) {sorted(unknown)}; choose from {[s.name for s in SHAPES]}")
    names = list(backends) if backends else [b for b in available_backends("cpu") if b not in ("reference", "export")]
    if peer and not _peer_available():
        logger.warning("mambapy is not installed (pip install ssmad[bench]); the peer column stays empty")
        peer = False
    limits = measure_machine()
    rows: list[Row] = []
    for shape in chosen:
        logger.info("benchmarking %s (%s)", shape.name, shape.what)
        rows.extend(benchmark_shape(shape, names, repeats, peer, limits))
    print(format_table(rows, limits))
    if json_path:
        payload = {"machine": asdict(limits), "rows": [asdict(r) for r in rows]}
        with open(json_path, "w") as fh:
            json.dump(payload, fh, indent=2)
    return rows
