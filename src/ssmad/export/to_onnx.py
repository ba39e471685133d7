"""``export_onnx``: a trained image run → one ``.onnx`` file that onnxruntime runs without PyTorch.

The run's network is wrapped in :class:`~ssmad.export.graph.ExportGraph` (uint8 images in, maps and scores out) and
traced with every selective scan on the ``export`` backend (:func:`ssmad.ssm.export_mode`): a blocked scan made of
standard operators (:mod:`ssmad.ssm.blocked`), so the file holds no custom operator. The scan orders become Gather
operators with constant index tables. Input ``image`` is ``uint8 (N, H, W, 3)`` RGB with a dynamic batch axis;
outputs are ``anomaly_map`` float32 ``(N, H, W)`` and ``pred_score`` float32 ``(N,)``.

What a deployment needs to reproduce ``ssmad predict --run`` goes into the model's ``metadata_props`` (all strings,
JSON where structured): ``ssmad_version``, ``model``, ``image_size`` (``[H, W]`` of the input), ``preprocessing``
(the run's resize / crop / mean / std / interpolation), ``threshold`` and ``pixel_threshold`` (``null`` when unset),
``threshold_how``, ``categories``, ``source_run``, ``exporter``, ``opset`` and ``ssmad_onnx_format``.

**Exporter.** The default is PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). With
torch 2.14 both exporters give the same graph numerically, but the ``torch.export``-based one (``dynamo=True``)
spends minutes of symbolic tracing, decomposition and ONNX rewriting on the few thousand operations of an unrolled
scan — about ten times longer than the TorchScript tracer, which for MambaAD is the difference between a test that
fits the default suite and one that does not. The TorchScript exporter is deprecated upstream (it warns), so
``exporter="dynamo"`` is kept working as the way forward when it goes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, MissingDependencyError, SsmadError

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPSET", "EXPORTERS", "FORMATS", "ExportResult", "export_onnx", "graph_to_onnx", "onnx_metadata"]

#: Export formats ``ssmad export --format`` accepts.
FORMATS: tuple[str, ...] = ("onnx",)
#: ``torchscript`` (default, fast) or ``dynamo`` (``torch.export``-based; slow on unrolled scans).
EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
#: ONNX opset of the exported graph (≥ 17, for LayerNormalization).
DEFAULT_OPSET = 18
#: Version of the metadata layout written into the file.
ONNX_FORMAT_VERSION = 1
#: Largest relative difference between onnxruntime and PyTorch that the post-export check accepts.
CHECK_RTOL = 1e-3

_INPUT_DOC = "uint8 (N, H, W, 3) RGB at image_size, resized and cropped as in 'preprocessing'; normalised inside"
_OUTPUT_DOC = "anomaly_map: float32 (N, H, W), higher = more anomalous; pred_score: float32 (N,), max of each map"


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured.

    Attributes:
        path: The ``.onnx`` file.
        metadata: Its ``metadata_props``.
        n_nodes: Operators in the graph.
        max_rel_diff: Largest difference between onnxruntime and PyTorch on a random batch, relative to the
            largest map value (``None`` when the check did not run).
    """

    path: Path
    metadata: dict[str, str]
    n_nodes: int
    max_rel_diff: float | None


def _json_float(value: Any) -> float | None:
    v = None if value is None else float(value)
    return None if v is None or not math.isfinite(v) else v


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"ONNX export needs the {module!r} package, which is not installed ({err}). "
            "Fix: pip install 'ssmad[export]'."
        ) from None


def _load_image_detector(run: str | Path) -> tuple[Any, Path]:
    from ..detectors import ImageDetector
    from ..engine.checkpoint import read_json
    from ..engine.runs import resolve_run
    from ..registry import detector_class

    run_dir = resolve_run(run)
    name = str(read_json(run_dir / "metadata.json").get("model") or "")
    cls = detector_class(name)
    if not issubclass(cls, ImageDetector):
        raise InputError(
            f"{run_dir} holds a {name!r} model, which is fitted per hyperspectral scene and has no trained network to "
            "export. Fix: export an image run (mambaad, rd4ad, …) or keep using `ssmad predict --model` for cubes."
        )
    return cls.load(run_dir, device="cpu"), run_dir


def onnx_metadata(det: Any, run_dir: Path, exporter: str, opset: int) -> dict[str, str]:
    """The ``metadata_props`` of an exported detector (see the module docstring)."""
    from .. import __version__

    pre = det.preprocessing_
    return {
        "ssmad_onnx_format": str(ONNX_FORMAT_VERSION),
        "ssmad_version": __version__,
        "model": det.model_name,
        "image_size": json.dumps(list(pre.output_hw)),
        "preprocessing": json.dumps(pre.to_dict()),
        "threshold": json.dumps(_json_float(det.threshold_)),
        "pixel_threshold": json.dumps(_json_float(det.pixel_threshold_)),
        "threshold_how": str(getattr(det, "threshold_info_", "")),
        "categories": json.dumps(list(getattr(det, "categories_", []))),
        "source_run": str(run_dir),
        "exporter": exporter,
        "opset": str(opset),
        "input": _INPUT_DOC,
        "outputs": _OUTPUT_DOC,
    }


def graph_to_onnx(graph: Any, exporter: str = "torchscript", opset: int = DEFAULT_OPSET) -> bytes:
    """Serialized ONNX model of an :class:`~ssmad.export.graph.ExportGraph`, every scan on the ``export`` backend.

    Args:
        graph: The module to export (in eval mode); ``graph.size`` is its input ``(H, W)``.
        exporter: ``torchscript`` or ``dynamo``.
        opset: ONNX opset.

    Returns:
        The model's bytes, without ssmad metadata.
    """
    from ..ssm import export_mode

    # a batch of 2, so that no batch size of 1 is frozen into the trace as a broadcast
    example = torch.zeros((2, *graph.size, 3), dtype=torch.uint8)
    inputs, outputs = ["image"], ["anomaly_map", "pred_score"]
    with torch.no_grad(), export_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape arithmetic frozen: sizes are static
        warnings.filterwarnings("ignore", message=".*instance_norm.*")  # InstanceNorm without running stats
        if exporter == "dynamo":
            _require("onnxscript")
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                dynamic_shapes={"image": {0: batch}},
                external_data=False,
                verbose=False,
                input_names=inputs,
                output_names=outputs,
                opset_version=opset,
            )
            assert program is not None
            return program.model_proto.SerializeToString()
        buf = io.BytesIO()
        torch.onnx.export(
            graph,
            (example,),
            buf,  # type: ignore[arg-type]  # a file object is accepted
            dynamo=False,
            dynamic_axes={"image": {0: "batch"}, "anomaly_map": {0: "batch"}, "pred_score": {0: "batch"}},
            do_constant_folding=True,
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
        )
        return buf.getvalue()


def _check_with_onnxruntime(data: bytes, graph: torch.nn.Module, size: tuple[int, int]) -> float | None:
    """Largest relative difference of onnxruntime vs PyTorch (its default backends) on a random batch of 2."""
    try:
        import onnxruntime as ort
    except ImportError:
        logger.warning("onnxruntime is not installed: the exported file was not checked (pip install 'ssmad[export]')")
        return None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, *size, 3), dtype=np.uint8)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    maps, scores = session.run(None, {"image": images})
    with torch.no_grad():
        ref_maps, ref_scores = (t.numpy() for t in graph(torch.from_numpy(images)))
    scale = max(float(np.abs(ref_maps).max()), 1e-12)
    diff = max(float(np.abs(maps - ref_maps).max()), float(np.abs(scores - ref_scores).max())) / scale
    if not math.isfinite(diff) or diff > CHECK_RTOL:
        raise SsmadError(
            f"the exported graph disagrees with PyTorch (largest relative difference {diff:.3g} > {CHECK_RTOL:g}) on "
            "a random batch; this is a bug in ssmad's export. Please report it with the run's config.yaml; "
            "--no-check skips this test."
        )
    return diff


def export_onnx(
    run: str | Path,
    out: str | Path,
    *,
    exporter: str = "torchscript",
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    check: bool = True,
) -> ExportResult:
    """Export the network of an image run to ONNX (see the module docstring).

    Args:
        run: A run folder of ``ssmad train`` (or a folder written by ``det.save``).
        out: The ``.onnx`` file to write (parent folders are created).
        exporter: ``torchscript`` (default) or ``dynamo``.
        opset: ONNX opset, at least 17.
        overwrite: Replace an existing ``out``.
        check: Run the file with onnxruntime on a random batch and compare with PyTorch (when onnxruntime is
            installed).

    Returns:
        The written file, its metadata, its operator count and the check's relative difference.

    Raises:
        InputError: A missing or unfinished run, a hyperspectral run, an existing ``out``, a bad option.
        MissingDependencyError: ``onnx`` (or, for ``dynamo``, ``onnxscript``) is not installed.
        SsmadError: The check found onnxruntime and PyTorch disagreeing.
    """
    from ..viz._io import check_writable, write_bytes_atomic
    from .graph import ExportGraph

    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if int(opset) < 17:
        raise InputError(f"opset {opset} is too old: the graph needs LayerNormalization (opset 17). Fix: --opset 17+.")
    onnx = _require("onnx")
    out = Path(out)
    check_writable(out, overwrite)
    det, run_dir = _load_image_detector(run)
    pre = det.preprocessing_
    size = pre.output_hw
    graph = ExportGraph(det.net_, pre.mean, pre.std, size).eval()
    logger.info("exporting %s (%s, input %d×%d) with the %s exporter", run_dir, det.model_name, *size, exporter)
    model = onnx.load_from_string(graph_to_onnx(graph, exporter, int(opset)))
    metadata = onnx_metadata(det, run_dir, exporter, int(opset))
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"ssmad {det.model_name} anomaly detector. Input: {_INPUT_DOC}. Outputs: {_OUTPUT_DOC}."
    data = model.SerializeToString()
    diff = _check_with_onnxruntime(data, graph, size) if check else None
    write_bytes_atomic(out, data, overwrite=overwrite)
    result = ExportResult(path=out, metadata=metadata, n_nodes=len(model.graph.node), max_rel_diff=diff)
    logger.info("wrote %s (%d operators, %.1f MB)", out, result.n_nodes, len(data) / 1e6)
    return result
