"""Fixtures of the export tests: tiny untrained MambaAD and RD4AD runs, each exported to ONNX once per session.

The networks are freshly initialised (a fit would add nothing to a parity test and cost seconds): MambaAD with a
ResNet18 encoder at 64 × 64 and two HSS blocks per decoder stage (so every stage scans 8 Hilbert directions with the
blocked scan), RD4AD with a ResNet18 encoder and one block per decoder stage. Thresholds are set by hand so they
can be found in the metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: Options of the tiny runs, by model.
TINY = {
    "mambaad": {"encoder": "resnet18", "image_size": 64, "decoder_depths": (2, 2, 2, 2)},
    "rd4ad": {"encoder": "resnet18", "image_size": 64, "decoder_layers": (1, 1, 1), "oce_blocks": 1},
}
THRESHOLDS = {"mambaad": (0.31, 0.37), "rd4ad": (0.21, 0.23)}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_untrained(name: str, folder: Path) -> Path:
    """Save a freshly initialised detector ``name`` (options :data:`TINY`) as a run folder."""
    import ssmad

    torch.manual_seed(0)
    det = ssmad.create_model(name, pretrained=False, **TINY[name])
    net = det._build_network().eval()
    det.net_ = net
    det.preprocessing_ = det._preprocessing_for(net)
    det.threshold_, det.pixel_threshold_ = THRESHOLDS[name]
    det.threshold_info_ = "set by the test"
    det.history_, det.n_train_, det.categories_ = [], 0, ["tiny"]
    return det.save(folder)


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """``{model: (run folder, model.onnx)}``, exported through ``ssmad export`` (with its onnxruntime check)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ssmad.cli.main import main

    root = tmp_path_factory.mktemp("export")
    out: dict[str, tuple[Path, Path]] = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in TINY:
            run = save_untrained(name, root / name / "run")
            onnx_file = root / name / "model.onnx"
            assert main(["-q", "export", "--run", str(run), "--format", "onnx", "--out", str(onnx_file)]) == 0
            out[name] = (run, onnx_file)
    finally:
        torch.set_num_threads(before)
    return out
