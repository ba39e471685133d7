"""MambaAD vs MambaADv2 vs RD4AD benchmark: training step, inference images/s, FLOPs and the efficiency ratio.

The models are built multi-class, on ONE shared encoder instance (same architecture, same weights), and measured
side by side in one run, their calls interleaved (encoder, MambaAD, encoder, RD4AD, …) so that a change in the
machine's load touches all of them alike:

* **inference**: ``model(images)`` (encoder + decoder features, no grad, eval mode), seconds per batch and images/s;
  the encoder alone is timed the same way;
* **training step**: forward, the model's own loss, ``backward`` and one AdamW step on the trainable parameters
  (train mode, the frozen encoder stays in eval mode). The encoder alone is timed in the same rounds (its forward
  is all a training step spends on it: it is frozen and runs without autograd), and every model's step is divided by
  RD4AD's step of the same round (paired ratios);
* **FLOPs** of one forward: :class:`torch.utils.flop_counter.FlopCounterMode` (matmuls and convolutions, 2 FLOPs
  per multiply-add) plus ``9 · batch · D · L · N`` for every selective-scan call, which the counter cannot see (our
  scans are compiled kernels), and the same for every SSD-scan call of MambaADv2 (``D = heads · headdim``; the
  chunked SSD path's own matmuls are not counted, so both models' scans are charged by the same rule). The scan
  calls are recorded while counting by :func:`record_scans`. MambaADv2 decides its progressive scan plan on the
  first batch it sees (here the benchmark's random batch), and the plan is printed with the table;
* **efficiency ratio** of inference::

      (model forward time / encoder-only forward time) ÷ (model FLOPs / encoder FLOPs)

  1.0 means the model's extra FLOPs cost as much per FLOP as the encoder's convolutions; a large ratio means the
  decoder (and its scans) costs far more than its FLOPs say.

Times are the minimum over the timed rounds. Before them every function runs once: inference on a single image (a
warm-up for thread pools and the compiled scan kernels at an eighth of the cost of a round), a training step on the
whole batch (after a one-image step the first full training round was 1.5-2× slower than the later ones while the
heap grew, which made the first paired ratio meaningless). The
machine's matmul rate (as in ``ssmad bench scan``) and the load average before and after the run are printed with
the table, because a shared machine slows every figure, and slows many small operations more than a few large ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..engine.optim import build_optimizer
from ..errors import ConfigError, InputError
from ..ssm import directional as _directional
from ..ssm import interface as _scan_interface
from ..ssm import ssd as _ssd
from .scan import MachineLimits, measure_machine

logger = logging.getLogger(__name__)

__all__ = [
    "MODELS",
    "SCAN_FLOPS_PER_UPDATE",
    "BenchReport",
    "FlopCount",
    "ModelFigures",
    "ScanCall",
    "count_flops",
    "efficiency_ratio",
    "format_report",
    "record_scans",
    "run_mambaad_benchmark",
]

#: FLOPs charged per state update ``(b, d, l, n)`` of a selective scan (the issue's convention).
SCAN_FLOPS_PER_UPDATE = 9

#: Models the benchmark can build.
MODELS: tuple[str, ...] = ("mambaad", "mambaadv2", "rd4ad")


@dataclass(frozen=True)
class ScanCall:
    """Shape of one selective-scan call: ``u`` is ``(batch, dim, length)`` and the state size is ``dstate``."""

    batch: int
    dim: int
    length: int
    dstate: int

    @property
    def flops(self) -> int:
        """``9 · batch · D · L · N``."""
        return SCAN_FLOPS_PER_UPDATE * self.batch * self.dim * self.length * self.dstate


@contextlib.contextmanager
def record_scans(run: bool = True) -> Iterator[list[ScanCall]]:
    """Record the shape of every :func:`ssmad.ssm.selective_scan` and :func:`ssmad.ssm.ssd_scan` call in the block.

    The functions are replaced in :mod:`ssmad.ssm` and in every loaded ``ssmad`` module that imported them by name
    (e.g. :mod:`ssmad.layers.ss2d`, :mod:`ssmad.layers.hss2`), and the layers' fused inference paths are switched off
    so that every scan goes through them (the count is the model's, whichever implementation runs); the originals
    are restored on exit. An SSD call with ``x`` ``(batch, L, H, P)`` and state size N is recorded as a selective
    scan of ``D = H · P`` channels: both update ``batch · D · L · N`` state entries.

    Args:
        run: Run the real scan. With ``False`` the call returns zeros of the right shapes instead (the FLOP count
            depends on shapes only, and the counter must not see the scan's own operations).

    Yields:
        The list the calls are appended to, in call order.
    """
    original = _scan_interface.selective_scan
    original_ssd = _ssd.ssd_scan
    original_fused = _directional.fused_available
    calls: list[ScanCall] = []

    def recording(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, *args: object, **kwargs: object) -> object:
        calls.append(ScanCall(int(u.shape[0]), int(u.shape[1]), int(u.shape[2]), int(A.shape[1])))
        if run:
            return original(u, delta, A, B, C, *args, **kwargs)  # type: ignore[arg-type]
        out = torch.zeros_like(u)
        want_last = kwargs.get("return_last_state", args[5] if len(args) > 5 else False)
        return (out, u.new_zeros(u.shape[0], u.shape[1], A.shape[1])) if want_last else out

    def recording_ssd(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, **kwargs: object) -> object:
        b, length, heads, p = (int(v) for v in x.shape)
        calls.append(ScanCall(b, heads * p, length, int(B.shape[-1])))
        if run:
            return original_ssd(x, dt, A, B, C, **kwargs)  # type: ignore[arg-type]
        out = torch.zeros_like(x)
        if kwargs.get("return_final_states"):
            return out, x.new_zeros(b, heads, p, int(B.shape[-1]))
        return out

    def no_fusion(*args: object, **kwargs: object) -> bool:
        return False

    ours = [m for name, m in list(sys.modules.items()) if name == "ssmad" or name.startswith("ssmad.")]
    patched = [m for m in ours if getattr(m, "selective_scan", None) is original]
    patched_ssd = [m for m in ours if getattr(m, "ssd_scan", None) is original_ssd]
    # the fused inference path does the K scans of a layer in one kernel call, out of the recorder's sight: the
    # layers take the composition (gather → one selective_scan per call → merge) while recording
    unfused = [m for m in ours if getattr(m, "fused_available", None) is original_fused]
    # likewise MambaADv2's directional SSD forward (ssmad.layers.hss2.fused_inference)
    unfused_ssd = [(m, m.fused_inference) for m in ours if callable(getattr(m, "fused_inference", None))]
    for module in patched:
        module.selective_scan = recording  # type: ignore[attr-defined]
    for module in patched_ssd:
        module.ssd_scan = recording_ssd  # type: ignore[attr-defined]
    for module in unfused:
        module.fused_available = no_fusion  # type: ignore[attr-defined]
    for module, _ in unfused_ssd:
        module.fused_inference = no_fusion  # type: ignore[attr-defined]
    try:
        yield calls
    finally:
        for module in patched:
            module.selective_scan = original  # type: ignore[attr-defined]
        for module in patched_ssd:
            module.ssd_scan = original_ssd  # type: ignore[attr-defined]
        for module in unfused:
            module.fused_available = original_fused  # type: ignore[attr-defined]
        for module, fn in unfused_ssd:
            module.fused_inference = fn  # type: ignore[attr-defined]


@dataclass
class FlopCount:
    """FLOPs of one call: what FlopCounterMode saw plus the selective scans."""

    counted: int
    scans: int = 0
    scan_calls: int = 0

    @property
    def total(self) -> int:
        """All FLOPs."""
        return self.counted + self.scans


def count_flops(fn: Callable[[], object]) -> FlopCount:
    """Count the FLOPs of ``fn()`` (run once, without gradients).

    Matmuls and convolutions are counted by :class:`~torch.utils.flop_counter.FlopCounterMode`; every selective
    scan is replaced by a shape-only stand-in and charged ``9 · batch · D · L · N``.
    """
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), record_scans(run=False) as calls, counter:
        fn()
    return FlopCount(int(counter.get_total_flops()), sum(c.flops for c in calls), len(calls))


def efficiency_ratio(model_time: float, encoder_time: float, model_flops: float, encoder_flops: float) -> float:
    """``(model_time / encoder_time) / (model_flops / encoder_flops)``: time per FLOP relative to the encoder's."""
    return (model_time / encoder_time) / (model_flops / encoder_flops)


@dataclass
class ModelFigures:
    """Everything measured for one model (times in seconds per batch, FLOPs per batch)."""

    name: str
    params_m: float
    trainable_m: float
    flops: FlopCount
    infer_s: float
    train_s: float | None
    infer_times: list[float] = field(default_factory=list)
    train_times: list[float] = field(default_factory=list)
    paired_ratios: list[float] = field(default_factory=list)
    note: str = ""


@dataclass
class BenchReport:
    """A whole benchmark run."""

    batch: int
    size: int
    encoder: str
    threads: int
    scan_backend: str
    machine: MachineLimits
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    encoder_flops: FlopCount
    encoder_s: float
    encoder_times: list[float]
    models: list[ModelFigures]
    encoder_train_times: list[float] = field(default_factory=list)

    def train_ratio(self, m: ModelFigures, baseline: str = "rd4ad") -> tuple[float, list[float]] | None:
        """Model ``m``'s training step over ``baseline``'s: the ratio of the minima and the ratio of every round.

        None when either was not measured.
        """
        base = next((b.train_times for b in self.models if b.name == baseline), [])
        if not base or not m.train_times:
            return None
        return min(m.train_times) / min(base), [t / u for t, u in zip(m.train_times, base, strict=False)]

    def ratio(self, m: ModelFigures) -> float:
        """Efficiency ratio of model ``m`` (see the module docstring)."""
        return efficiency_ratio(m.infer_s, self.encoder_s, m.flops.total, self.encoder_flops.total)


def _build(name: str, encoder_name: str, size: int, encoder: nn.Module | None) -> nn.Module:
    if name == "mambaad":
        from ..models.mambaad import MambaAD, MambaADConfig

        return MambaAD(MambaADConfig(encoder=encoder_name, pretrained=False, image_size=size), encoder=encoder)
    if name == "mambaadv2":
        from ..models.mambaadv2 import MambaADv2, MambaADv2Config

        return MambaADv2(MambaADv2Config(encoder=encoder_name, pretrained=False, image_size=size), encoder=encoder)
    from ..models.rd4ad import RD4AD, RD4ADConfig

    return RD4AD(RD4ADConfig(encoder=encoder_name, pretrained=False, image_size=size), encoder=encoder)


def _train_step(model: nn.Module, batch: int) -> Callable[[Tensor], object]:
    optimizer = build_optimizer(model, lr=0.005 * batch / 16)  # the trainer's optimizer (ssmad.engine.optim)

    def step(images: Tensor) -> object:
        model.train()
        enc, dec = model(images)
        loss = model.loss(enc, dec)  # type: ignore[operator]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step


def _infer(fn: Callable[[Tensor], object], model: nn.Module) -> Callable[[Tensor], object]:
    def run(images: Tensor) -> object:
        model.eval()
        with torch.no_grad():
            return fn(images)

    return run


def _timed_rounds(
    fns: Sequence[tuple[str, Callable[[Tensor], object]]], images: Tensor, repeats: int, warmup_images: int = 1
) -> dict[str, list[float]]:
    """Seconds per call: a warm-up round on ``warmup_images`` images, then ``repeats`` rounds on the whole batch."""
    times: dict[str, list[float]] = {name: [] for name, _ in fns}
    warmup = images[:warmup_images]
    for r in range(repeats + 1):
        for name, fn in fns:
            t0 = time.perf_counter()
            fn(images if r > 0 else warmup)
            elapsed = time.perf_counter() - t0
            if r > 0:
                times[name].append(elapsed)
            logger.info("%s %s: %.2f s", f"round {r}" if r else f"warm-up ({len(warmup)} images)", name, elapsed)
    return times


def _check_settings(batch: int, size: int, repeats: int, train_repeats: int, models: Sequence[str]) -> None:
    for label, value, low in (("batch", batch, 1), ("repeats", repeats, 1), ("train_repeats", train_repeats, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"bench mambaad: {label} must be an integer ≥ {low}, got {value!r}")
    if size < 64 or size % 32:
        raise ConfigError(f"bench mambaad: size must be a multiple of 32 and at least 64 (e.g. 256), got {size}")
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"bench mambaad: unknown model(s) {unknown or '(none)'}; choose from {', '.join(MODELS)}")


def run_mambaad_benchmark(
    batch: int = 8,
    size: int = 256,
    encoder: str = "resnet34",
    repeats: int = 3,
    train_repeats: int = 3,
    models: Sequence[str] = MODELS,
    json_path: str | os.PathLike | None = None,
    seed: int = 0,
) -> BenchReport:
    """Build the models, measure them side by side, print the report and return it.

    Args:
        batch: Images per batch.
        size: Square input size (a multiple of 32, at least 64).
        encoder: timm encoder shared by the models (randomly initialised: speed does not depend on weights).
        repeats: Timed inference rounds (the minimum is kept), after a one-image warm-up.
        train_repeats: Timed training-step rounds after a full-batch warm-up step (0: skip training).
        models: Which of :data:`MODELS` to measure.
        json_path: Also write the report as JSON to this new file (an existing file is never overwritten).
        seed: Seed of the weights and of the random input batch.

    Raises:
        ConfigError: Bad settings.
        InputError: ``json_path`` exists already.
    """
    from ..encoders import TimmEncoder
    from ..ssm import resolve_backend

    models = list(models)
    _check_settings(batch, size, repeats, train_repeats, models)
    if json_path is not None and Path(json_path).exists():
        raise InputError(f"{json_path}: the file exists already; give --json a new file name (results are kept).")
    load_before = os.getloadavg()
    torch.manual_seed(seed)
    shared = TimmEncoder(encoder, pretrained=False)
    nets = {name: _build(name, encoder, size, shared) for name in models}
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
    machine = measure_machine(repeats=2)

    logger.info("counting FLOPs")
    enc_flops = count_flops(lambda: shared(images))
    flops = {name: count_flops(lambda net=net: net(images)) for name, net in nets.items()}

    logger.info("timing inference (%d rounds after a warm-up)", repeats)
    # the cheap encoder-only call runs right before every model, so each model time has an encoder time beside it
    encoder_call = _infer(shared, shared)
    calls = [c for name, net in nets.items() for c in (("encoder", encoder_call), (name, _infer(net, net)))]
    infer = _timed_rounds(calls, images, repeats)
    train: dict[str, list[float]] = {name: [] for name in nets}
    if train_repeats:
        logger.info("timing training steps (%d rounds after a warm-up)", train_repeats)
        steps = [("encoder", encoder_call)] + [(name, _train_step(net, batch)) for name, net in nets.items()]
        train = _timed_rounds(steps, images, train_repeats, warmup_images=batch)

    figures = []
    for j, (name, net) in enumerate(nets.items()):
        beside = infer["encoder"][j :: len(nets)]  # the encoder call just before each of this model's calls
        paired = [
            efficiency_ratio(t, e, flops[name].total, enc_flops.total) for t, e in zip(infer[name], beside, strict=True)
        ]
        params = sum(p.numel() for p in net.parameters())
        trainable = sum(p.numel() for p in net.trainable_parameters())  # type: ignore[operator]
        figures.append(
            ModelFigures(
                name=name,
                params_m=params / 1e6,
                trainable_m=trainable / 1e6,
                flops=flops[name],
                infer_s=min(infer[name]),
                train_s=min(train[name]) if train[name] else None,
                infer_times=infer[name],
                train_times=train[name],
                paired_ratios=paired,
                note=_model_note(net),
            )
        )
    report = BenchReport(
        batch=batch,
        size=size,
        encoder=encoder,
        threads=torch.get_num_threads(),
        scan_backend=resolve_backend("auto", "cpu"),
        machine=machine,
        load_before=load_before,
        load_after=os.getloadavg(),
        encoder_flops=enc_flops,
        encoder_s=min(infer["encoder"]),
        encoder_times=infer["encoder"],
        models=figures,
        encoder_train_times=train.get("encoder", []),
    )
    print(format_report(report))
    if json_path is not None:
        _write_json(report, Path(json_path))
    return report


def _model_note(net: nn.Module) -> str:
    """What the table cannot show: MambaADv2's scan directions per decoder stage (coarsest first)."""
    plan = getattr(getattr(net, "decoder", None), "scan_plan", None)
    return "" if plan is None else f"scan directions per stage (stride 32→4) {plan.tolist()}"


def format_report(report: BenchReport) -> str:
    """Markdown table of a run, with the settings and the machine's state."""
    r = report
    b = r.batch
    n_infer = max((len(m.infer_times) for m in r.models), default=0)
    n_train = max((len(m.train_times) for m in r.models), default=0)
    lines = [
        f"settings: batch {b}, {r.size}x{r.size}, encoder {r.encoder} (shared, frozen), float32, "
        f"{r.threads} threads, scan backend {r.scan_backend!r}; times: min over {n_infer} inference / "
        f"{n_train} training rounds after a warm-up (inference: one image; training: one full batch)",
        f"machine: matmul {r.machine.flops / 1e9:.1f} GFLOP/s, bandwidth {r.machine.bandwidth / 1e9:.1f} GB/s; "
        f"load average {r.load_before[0]:.2f} before, {r.load_after[0]:.2f} after "
        f"({os.cpu_count()} CPUs: a load above that means the machine was shared)",
        "",
        "| model | params M (trainable) | GFLOPs / image (scans) | scan calls | inference s / batch | images/s | "
        "achieved GFLOP/s | train step s / batch | train images/s | efficiency ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ef = r.encoder_flops
    lines.append(
        f"| encoder only | | {ef.total / b / 1e9:.2f} | 0 | {r.encoder_s:.3f} | {b / r.encoder_s:.2f} | "
        f"{ef.total / r.encoder_s / 1e9:.1f} | | | 1.00 (by definition) |"
    )
    for m in r.models:
        f = m.flops
        train = "" if m.train_s is None else f"{m.train_s:.3f} | {b / m.train_s:.2f}"
        lines.append(
            f"| {m.name} | {m.params_m:.2f} ({m.trainable_m:.2f}) | {f.total / b / 1e9:.2f} ({f.scans / b / 1e9:.2f}) "
            f"| {f.scan_calls} | {m.infer_s:.3f} | {b / m.infer_s:.2f} | {f.total / m.infer_s / 1e9:.1f} | "
            f"{train or ' | '} | {r.ratio(m):.2f} |"
        )
    lines.append("")
    lines.append(
        "efficiency ratio = (model inference time / encoder-only time) / (model FLOPs / encoder FLOPs); "
        f"scan FLOPs = {SCAN_FLOPS_PER_UPDATE}·batch·D·L·N per selective-scan call."
    )
    for m in r.models:
        times = ", ".join(f"{t:.2f}" for t in m.infer_times)
        ttimes = ", ".join(f"{t:.2f}" for t in m.train_times)
        paired = ", ".join(f"{q:.2f}" for q in m.paired_ratios)
        lines.append(
            f"{m.name}: inference rounds [{times}] s"
            + (f", training rounds [{ttimes}] s" if ttimes else "")
            + f"; efficiency ratio of each round against the encoder call just before it [{paired}]"
            + (f"; {m.note}" if m.note else "")
        )
    lines.append("encoder: inference rounds [" + ", ".join(f"{t:.2f}" for t in r.encoder_times) + "] s")
    if r.encoder_train_times:
        enc = min(r.encoder_train_times)
        times = ", ".join(f"{t:.2f}" for t in r.encoder_train_times)
        lines.append(f"training step, same rounds: encoder alone (frozen, no autograd) {enc:.3f} s / batch [{times}]")
        for m in r.models:
            if m.train_s is None:
                continue
            versus = r.train_ratio(m) if m.name != "rd4ad" else None
            paired = "" if versus is None else ", ".join(f"{q:.2f}" for q in versus[1])
            lines.append(
                f"training step {m.name}: {m.train_s:.3f} s = {m.train_s / enc:.2f}× the encoder alone, "
                f"{m.train_s - enc:.3f} s beyond it"
                + ("" if versus is None else f"; {versus[0]:.2f}× rd4ad's (paired rounds [{paired}])")
            )
    return "\n".join(lines)


def _write_json(report: BenchReport, path: Path) -> None:
    payload = asdict(report)
    payload["efficiency_ratio"] = {m.name: report.ratio(m) for m in report.models}
    payload["flops_total"] = {m.name: m.flops.total for m in report.models} | {"encoder": report.encoder_flops.total}
    payload["train_ratio_vs_rd4ad"] = {
        m.name: ratio[0] for m in report.models if (ratio := report.train_ratio(m)) is not None
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2)
        if path.exists():
            raise InputError(f"{path}: the file appeared during the run; the report was not written over it.")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
