"""SSD-scan benchmark: ``ssd_scan`` against its reference, the selective scan as a peer, and the roofline.

Everything is measured in one run on this machine, as in ``ssmad bench scan`` (:mod:`ssmad.bench.scan`):

* the machine's limits — memory bandwidth (a large ``copy_``), fp32 FLOP/s (a large matmul) and the exp rate;
* the forward bound of a shape, ``max(bytes / bandwidth, 5·b·L·H·P·N / FLOP/s, 2·b·L·H / exp rate)``: the bytes
  are the unavoidable float32 reads of ``x, dt, B, C`` and the write of ``y``; ``5·b·L·H·P·N`` is the arithmetic
  of the recurrence (per state element: decay multiply, input multiply-add, output multiply-add), counted at
  the matmul rate although the recurrence cannot reach it; the exps are one decay and one softplus per head and
  step (SSD's decay is a scalar per head: this term is ``P·N / 2`` times smaller than the selective scan's). The
  forward+backward bound is 2.5 × the forward bound, as in ``ssmad bench scan``;
* forward (no grad) and forward+backward time (gradients of ``x, dt, A, B, C, D, dt_bias``; softplus on) of
  ``ssd_scan`` (``torch`` backend: the chunked dual form; ``cpu`` backend: the compiled recurrence, when it
  builds here), of ``ssd_scan`` with the Mamba-3 trapezoid rule, of the sequential reference and of a peer: the
  existing ``selective_scan`` (``auto`` backend) given the same problem,
  each head's decay broadcast to its ``P`` channels and ``N`` states (``A[h·P + p, n] = A[h]``), inputs prepared in
  its ``(b, D, L)`` layout beforehand (the layout change is not timed).

The shapes are MambaADv2's decoder at 256 × 256 with a ResNet34 encoder (:data:`SHAPES`). The sequential
reference is timed on a prefix of the sequence and scaled linearly (its cost per step is constant). Times are the
minimum over interleaved rounds after a warm-up round: the machine probes and every
method take turns, so a change of load during the run hits both sides of each ratio.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from einops import rearrange, repeat

from ..errors import InputError
from ..ssm import selective_scan, ssd_cpu, ssd_scan
from .scan import REFERENCE_PREFIX, MachineLimits, _best, measure_machine

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSDShape:
    """One benchmark shape (float32): ``batch`` already includes the scan directions folded into it."""

    name: str
    batch: int
    length: int
    heads: int
    headdim: int
    dstate: int
    groups: int
    what: str

    @property
    def elements(self) -> int:
        """B · L · H · P · N: the number of state updates."""
        return self.batch * self.length * self.heads * self.headdim * self.dstate


#: The scan calls of MambaADv2's decoder at 256 × 256 with ResNet34 (widths 512/256/128/64 at 8²/16²/32²/64² cells):
#: d_inner = 2 C, headdim 16, d_state 16, one B/C group shared by all heads (``G = 1``, :mod:`ssmad.layers.hss2`),
#: 2 images × K directions in the batch with K from the progressive plan's base budget (8, 4, 2, 1 from the coarsest
#: stage to the finest, :mod:`ssmad.models.mambaadv2.scanning`): every stage then does the same 16.8 M state updates.
SHAPES: tuple[SSDShape, ...] = (
    SSDShape("v2_s3", 2, 4096, 8, 16, 16, 1, "stage 3: 64x64 cells, C 64, 8 heads, K 1"),
    SSDShape("v2_s2", 4, 1024, 16, 16, 16, 1, "stage 2: 32x32 cells, C 128, 16 heads, K 2"),
    SSDShape("v2_s1", 8, 256, 32, 16, 16, 1, "stage 1: 16x16 cells, C 256, 32 heads, K 4"),
    SSDShape("v2_s0", 16, 64, 64, 16, 16, 1, "stage 0: 8x8 cells, C 512, 64 heads, K 8"),
)


def forward_bound(limits: MachineLimits, shape: SSDShape) -> float:
    """Lower bound on the forward time of ``shape`` in seconds (module docstring)."""
    b, L, H, P, N, G = shape.batch, shape.length, shape.heads, shape.headdim, shape.dstate, shape.groups
    bytes_moved = 4 * (2 * b * L * H * P + 2 * b * L * G * N + b * L * H)
    return max(bytes_moved / limits.bandwidth, 5 * shape.elements / limits.flops, 2 * b * L * H / limits.exp_rate)


@dataclass
class Row:
    """Timings of one (shape, method) pair, seconds."""

    shape: str
    method: str
    forward: float
    fwd_bwd: float
    note: str = ""
    ratios: dict[str, float] = field(default_factory=dict)


def make_inputs(shape: SSDShape, length: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Realistic float32 inputs: softplus(dt + bias) ~ 0.05..0.3, A = -U(1, 16) (Mamba-2's init), B, C ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    b, H, P, N, G = shape.batch, shape.heads, shape.headdim, shape.dstate, shape.groups
    L = length or shape.length
    return {
        "x": torch.randn(b, L, H, P, generator=g),
        "dt": torch.randn(b, L, H, generator=g) * 0.5 - 2.0,
        "A": -(1 + 15 * torch.rand(H, generator=g)),
        "B": torch.randn(b, L, G, N, generator=g),
        "C": torch.randn(b, L, G, N, generator=g),
        "D": torch.randn(H, generator=g),
        "dt_bias": torch.rand(H, generator=g) * 0.1,
    }


def _timed(
    fn: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor], grad: bool, extra: dict | None = None
) -> Callable[[], object]:
    """A closure running ``fn(**inputs, **extra)`` without grad, or forward + backward of every input."""

    def run() -> object:
        if not grad:
            with torch.no_grad():
                return fn(**inputs, **(extra or {}))
        leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
        out = fn(**leaves, **(extra or {}))
        out.backward(torch.ones_like(out))
        return out

    return run


def _ssd(backend: str, chunk_size: int, trapezoid: bool) -> Callable[..., torch.Tensor]:
    def fn(x, dt, A, B, C, D, dt_bias, lam=None):
        return ssd_scan(
            x, dt, A, B, C, D=D, dt_bias=dt_bias, dt_softplus=True, chunk_size=chunk_size, backend=backend,
            trapezoid_lambda=lam if trapezoid else None,
        )  # fmt: skip

    return fn


def peer_inputs(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same problem in ``selective_scan``'s layout: channels ``(h p)``, each head's decay broadcast."""
    P = inputs["x"].shape[3]
    N = inputs["B"].shape[3]
    return {
        "u": rearrange(inputs["x"], "b l h p -> b (h p) l").contiguous(),
        "delta": repeat(inputs["dt"], "b l h -> b (h p) l", p=P).contiguous(),
        "A": repeat(inputs["A"], "h -> (h p) n", p=P, n=N).contiguous(),
        "B": rearrange(inputs["B"], "b l g n -> b g n l").contiguous(),
        "C": rearrange(inputs["C"], "b l g n -> b g n l").contiguous(),
        "D": repeat(inputs["D"], "h -> (h p)", p=P).contiguous(),
        "delta_bias": repeat(inputs["dt_bias"], "h -> (h p)", p=P).contiguous(),
    }


def _peer(u, delta, A, B, C, D, delta_bias):
    return selective_scan(u, delta, A, B, C, D, delta_bias=delta_bias, delta_softplus=True)


def _best_limits(samples: Sequence[MachineLimits]) -> MachineLimits:
    """The fastest machine seen over the rounds (the tightest, most demanding bound)."""
    return MachineLimits(
        bandwidth=max(m.bandwidth for m in samples),
        flops=max(m.flops for m in samples),
        exp_rate=max(m.exp_rate for m in samples),
        threads=samples[0].threads,
    )


def benchmark_shape(
    shape: SSDShape, chunk_sizes: Sequence[int], repeats: int, peer: bool
) -> tuple[list[Row], MachineLimits]:
    """Time the reference (prefix-scaled), ``ssd_scan`` (plain and trapezoid), the peer and the machine on one shape.

    The machine probes and every method run in interleaved rounds (probe, then each method once, ``repeats``
    times after a warm-up round); each keeps its best round, so a load change during the run cannot favour one
    side of a ratio.
    """
    inputs = make_inputs(shape)
    lam = {"lam": torch.rand(shape.batch, shape.length, shape.heads, generator=torch.Generator().manual_seed(1))}
    prefix = min(shape.length, REFERENCE_PREFIX)
    ref_inputs = make_inputs(shape, length=prefix)
    scale = shape.length / prefix
    ref = _ssd("reference", 1, False)
    ref_row = Row(
        shape.name,
        "reference",
        _best(_timed(ref, ref_inputs, False), 1, warmup=False) * scale,
        _best(_timed(ref, ref_inputs, True), 1, warmup=False) * scale,
        f"timed on L={prefix}, scaled x{scale:g}" if scale != 1 else "",
    )
    methods: dict[str, tuple[Callable[[], object], Callable[[], object], str]] = {}
    for q in chunk_sizes:
        fast, trap = _ssd("torch", q, False), _ssd("torch", q, True)
        methods[f"ssd_scan (torch, Q={q})"] = (_timed(fast, inputs, False), _timed(fast, inputs, True), "")
        methods[f"ssd_scan + trapezoid (Q={q})"] = (
            _timed(trap, inputs, False, lam),
            _timed(trap, inputs, True, lam),
            "Mamba-3 rule; same bound",
        )
    if ssd_cpu.is_available():
        kernel, kernel_trap = _ssd("cpu", 64, False), _ssd("cpu", 64, True)
        methods["ssd_scan (cpu kernel)"] = (
            _timed(kernel, inputs, False),
            _timed(kernel, inputs, True),
            "compiled recurrence, own backward",
        )
        methods["ssd_scan + trapezoid (cpu kernel)"] = (
            _timed(kernel_trap, inputs, False, lam),
            _timed(kernel_trap, inputs, True, lam),
            "MambaADv2's default; correction in the kernel",
        )
    if peer:
        pin = peer_inputs(inputs)
        methods["selective_scan (peer)"] = (
            _timed(_peer, pin, False),
            _timed(_peer, pin, True),
            "A broadcast to (H·P, N), backend auto",
        )
    best = {name: [math.inf, math.inf] for name in methods}
    probes: list[MachineLimits] = []
    for round_ in range(repeats + 1):
        probes.append(measure_machine(repeats=1))
        for name, (fwd, both, _) in methods.items():
            t_fwd, t_both = _best(fwd, 1, warmup=False), _best(both, 1, warmup=False)
            if round_:  # round 0 warms up (allocator, thread pool, compiled kernels)
                best[name] = [min(best[name][0], t_fwd), min(best[name][1], t_both)]
    limits = _best_limits(probes)
    rows = [ref_row] + [Row(shape.name, name, *best[name], methods[name][2]) for name in methods]
    bound = forward_bound(limits, shape)
    peer_row = rows[-1] if peer else None
    for row in rows:
        row.ratios = {
            "fwd_bwd_speedup_vs_reference": rows[0].fwd_bwd / row.fwd_bwd,
            "fwd_bwd_speedup_vs_peer": (peer_row.fwd_bwd / row.fwd_bwd) if peer_row else math.nan,
            "forward_over_bound": row.forward / bound,
            "fwd_bwd_over_bound": row.fwd_bwd / (2.5 * bound),
        }
    rows.append(Row(shape.name, "roofline bound", bound, 2.5 * bound, "lower bound, not a method"))
    return rows, limits


def format_table(rows: list[Row], limits: dict[str, MachineLimits]) -> str:
    """Markdown table of the rows (times in seconds, ratios as x factors), after the machine each shape saw."""
    lines = [
        f"machine ({m.threads} threads) during {name}: bandwidth {m.bandwidth / 1e9:.1f} GB/s, "
        f"matmul {m.flops / 1e9:.1f} GFLOP/s, exp {m.exp_rate / 1e9:.2f} G/s (torch.exp)"
        for name, m in limits.items()
    ]
    lines += [
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


def _write_json(payload: dict, path: Path) -> None:
    """Write ``payload`` to the new file ``path`` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        if path.exists():
            raise InputError(f"{path}: the file appeared during the run; the results were not written over it.")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def run_ssd_benchmark(
    shapes: Sequence[str] | None = None,
    chunk_sizes: Sequence[int] = (16, 64),
    repeats: int = 3,
    peer: bool = True,
    threads: int | None = None,
    json_path: str | os.PathLike | None = None,
) -> list[Row]:
    """Run the benchmark, print the table and return its rows.

    Args:
        shapes: Names from :data:`SHAPES` (default: all).
        chunk_sizes: Chunk lengths of ``ssd_scan`` to time (one pair of rows each).
        repeats: Timed rounds after the warm-up round (each measurement keeps its best round).
        peer: Also time ``selective_scan`` on the same problem.
        threads: ``torch.set_num_threads`` for the run, restored afterwards (default: torch's setting); on a
            machine shared with other jobs one thread avoids waiting at every op for a descheduled second thread.
        json_path: Also write the rows and machine limits as JSON to this new file (never overwritten).

    Raises:
        InputError: Unknown shape names, a bad chunk size, or ``json_path`` exists already.
    """
    unknown = set(shapes or ()) - {s.name for s in SHAPES}
    if unknown:
        raise InputError(f"unknown shape(s) {sorted(unknown)}; choose from {[s.name for s in SHAPES]}")
    if not chunk_sizes or any(q < 1 for q in chunk_sizes):
        raise InputError(f"--chunk-size must be positive integers, got {list(chunk_sizes)}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be a positive integer, got {threads}")
    if json_path is not None and Path(json_path).exists():
        raise InputError(f"{json_path}: the file exists already; give --json a new file name (results are kept).")
    chosen = [s for s in SHAPES if shapes is None or s.name in shapes]
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        rows: list[Row] = []
        limits: dict[str, MachineLimits] = {}
        for shape in chosen:
            logger.info("benchmarking %s (%s)", shape.name, shape.what)
            shape_rows, limits[shape.name] = benchmark_shape(shape, chunk_sizes, repeats, peer)
            rows.extend(shape_rows)
    finally:
        torch.set_num_threads(previous_threads)
    print(format_table(rows, limits))
    if json_path is not None:
        payload = {
            "machine": {name: asdict(m) for name, m in limits.items()},
            "chunk_sizes": list(chunk_sizes),
            "shapes": [asdict(s) for s in chosen],
            "rows": [asdict(r) for r in rows],
        }
        _write_json(payload, Path(json_path))
    return rows
