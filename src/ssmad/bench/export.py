"""onnxruntime vs PyTorch on the CPU: the exported graph against the module it was exported from, side by side.

For every model (MambaAD and RD4AD by default, both on the same encoder architecture at the same input size, with
random weights — speed does not depend on them) the benchmark builds :class:`~ssmad.export.graph.ExportGraph`
(uint8 images in; normalisation, network, smoothed anomaly map and score inside), exports it to ONNX in memory and
times two calls on the same uint8 batch:

* **PyTorch**: ``graph(images)`` under ``torch.no_grad()`` with the default backends (on a CPU the compiled
  selective-scan kernel and its fused multi-direction path) — what ``ssmad predict --run`` runs;
* **onnxruntime**: ``session.run`` of the exported file (CPU execution provider, all graph optimisations) — what
  ``ssmad predict --onnx`` runs, with the scans as the blocked plain-operator scan of :mod:`ssmad.ssm.blocked`.

Both get the same number of threads (onnxruntime's threads do not spin-wait between calls, which would slow the
PyTorch call that follows). The calls are interleaved in paired rounds (PyTorch, onnxruntime, then
onnxruntime, PyTorch in the next round, …) after one warm-up call each, so that a change of the machine's load
touches both; the table reports the median seconds per batch of each and the median of the per-round ratios
onnxruntime / PyTorch. The export time, the operator count, the file size and the largest difference between the two
outputs (relative to the largest map value) are reported beside them, with the load average before and after.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, InputError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = ["MODELS", "ExportBenchReport", "ExportFigures", "format_report", "run_export_benchmark"]

#: Models the benchmark can build.
MODELS: tuple[str, ...] = ("mambaad", "rd4ad")


@dataclass
class ExportFigures:
    """One model: export cost and paired timings (seconds per batch)."""

    name: str
    export_s: float
    n_nodes: int
    onnx_mb: float
    max_rel_diff: float
    torch_times: list[float] = field(default_factory=list)
    ort_times: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """Onnxruntime / PyTorch time of every paired round."""
        return [o / t for o, t in zip(self.ort_times, self.torch_times, strict=True)]

    @property
    def torch_s(self) -> float:
        """Median PyTorch seconds per batch."""
        return statistics.median(self.torch_times)

    @property
    def ort_s(self) -> float:
        """Median onnxruntime seconds per batch."""
        return statistics.median(self.ort_times)

    @property
    def ratio(self) -> float:
        """Median of the paired ratios onnxruntime / PyTorch (above 1: onnxruntime is slower)."""
        return statistics.median(self.ratios)


@dataclass
class ExportBenchReport:
    """A whole benchmark run."""

    encoder: str
    size: int
    batch: int
    threads: int
    rounds: int
    versions: dict[str, str]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    models: list[ExportFigures]


def _session(data: bytes, threads: int) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle onnxruntime threads would otherwise spin for a while after each call, stealing the next PyTorch call's cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _measure(
    name: str, encoder: str, size: int, images: np.ndarray, rounds: int, threads: int, exporter: str
) -> ExportFigures:
    import ssmad

    from ..export.graph import ExportGraph
    from ..export.to_onnx import graph_to_onnx

    det = ssmad.create_model(name, encoder=encoder, pretrained=False, image_size=size)
    net = det._build_network().eval()
    graph = ExportGraph(net, net.mean, net.std, (size, size)).eval()
    logger.info("%s: exporting (%s exporter)", name, exporter)
    start = time.perf_counter()
    data = graph_to_onnx(graph, exporter)
    export_s = time.perf_counter() - start
    import onnx

    n_nodes = len(onnx.load_from_string(data).graph.node)
    session = _session(data, threads)
    batch = torch.from_numpy(images)

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            return graph(batch)[0].numpy()

    def run_ort() -> np.ndarray:
        return session.run(None, {"image": images})[0]  # type: ignore[attr-defined]

    logger.info("%s: warm-up and %d paired rounds", name, rounds)
    ref, got = run_torch(), run_ort()
    diff = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    fig = ExportFigures(name, export_s, n_nodes, len(data) / 1e6, diff)
    for r in range(rounds):
        order = ((fig.torch_times, run_torch), (fig.ort_times, run_ort))
        for times, fn in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return fig


def _versions() -> dict[str, str]:
    import onnxruntime

    from .. import __version__

    return {"ssmad": __version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def format_report(r: ExportBenchReport) -> str:
    """The report as a Markdown table with its settings."""
    lines = [
        f"onnxruntime vs PyTorch on the CPU: {r.encoder}, {r.size}×{r.size}, batch {r.batch}, {r.threads} thread(s), "
        f"{r.rounds} paired rounds (medians)",
        "",
        "| model | PyTorch s/batch | onnxruntime s/batch | onnxruntime / PyTorch (paired) | export s | operators "
        "| ONNX MB | max rel. diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in r.models:
        lines.append(
            f"| {m.name} | {m.torch_s:.3f} | {m.ort_s:.3f} | {m.ratio:.2f} (range {min(m.ratios):.2f}–"
            f"{max(m.ratios):.2f}) | {m.export_s:.1f} | {m.n_nodes} | {m.onnx_mb:.1f} | {m.max_rel_diff:.1e} |"
        )
    lines += [
        "",
        ", ".join(f"{k} {v}" for k, v in r.versions.items())
        + f"; load average {r.load_before[0]:.2f} before, {r.load_after[0]:.2f} after ({os.cpu_count()} CPUs)",
    ]
    return "\n".join(lines)


def run_export_benchmark(
    models: Sequence[str] = MODELS,
    encoder: str = "resnet34",
    size: int = 256,
    batch: int = 1,
    rounds: int = 5,
    threads: int | None = None,
    exporter: str = "torchscript",
    json_path: str | os.PathLike | None = None,
    seed: int = 0,
) -> ExportBenchReport:
    """Export each model, time PyTorch and onnxruntime in paired rounds, print the table and return the report.

    Args:
        models: Which of :data:`MODELS` to measure.
        encoder: timm encoder of both models (randomly initialised).
        size: Square input size (a multiple of 32).
        batch: Images per call.
        rounds: Paired timed rounds after one warm-up call each.
        threads: Threads of both runtimes (default: ``torch.get_num_threads()``).
        exporter: ``torchscript`` or ``dynamo``.
        json_path: Also write the report as JSON to this new file (an existing file is never overwritten).
        seed: Seed of the weights and of the random uint8 batch.

    Raises:
        ConfigError: Bad settings.
        InputError: ``json_path`` exists already.
        MissingDependencyError: onnx or onnxruntime is not installed.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"models must be some of {', '.join(MODELS)}, got {list(models)}")
    if size < 64 or size % 32 or batch < 1 or rounds < 1:
        raise ConfigError(f"need size ≥ 64 and a multiple of 32, batch ≥ 1, rounds ≥ 1; got {size}, {batch}, {rounds}")
    if json_path is not None and Path(json_path).exists():
        raise InputError(f"{json_path}: the file exists already; give --json a new file name (results are kept).")
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        raise MissingDependencyError(
            f"the export benchmark needs onnx and onnxruntime ({err}). Fix: pip install 'ssmad[export]'."
        ) from None
    before = torch.get_num_threads()
    threads = int(threads or before)
    load_before = os.getloadavg()
    images = np.random.default_rng(seed).integers(0, 256, size=(batch, size, size, 3), dtype=np.uint8)
    figures = []
    torch.set_num_threads(threads)
    try:
        for name in models:
            torch.manual_seed(seed)
            figures.append(_measure(name, encoder, size, images, rounds, threads, exporter))
    finally:
        torch.set_num_threads(before)
    report = ExportBenchReport(
        encoder=encoder,
        size=size,
        batch=batch,
        threads=threads,
        rounds=rounds,
        versions=_versions(),
        load_before=load_before,
        load_after=os.getloadavg(),
        models=figures,
    )
    print(format_report(report))
    if json_path is not None:
        from ..viz._io import write_text_atomic

        data = asdict(report)
        for fig, out in zip(report.models, data["models"], strict=True):
            out.update(torch_s=fig.torch_s, ort_s=fig.ort_s, ratio=fig.ratio, ratios=fig.ratios)
        write_text_atomic(Path(json_path), json.dumps(data, indent=2) + "\n")
    return report
