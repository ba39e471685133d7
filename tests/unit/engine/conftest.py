"""Fixtures of the engine tests: the tiny stand-in registered as a model, a small synthetic data set, one thread."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: Registry entry of the stand-in detector of ``_tiny.py``.
TINY_ENTRY = "tests.unit.engine._tiny:TinyDetector"

#: Trainer options that keep a tiny fit well under a second.
TINY_TRAINER = {"epochs": 2, "batch_size": 4, "device": "cpu", "progress": False, "eval_batch_size": 4}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: bitwise-reproducible CPU runs and no fight for the shared cores; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_registered(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the stand-in as the model ``tiny`` (for ``ssmad.load`` and the command line)."""
    from ssmad import registry

    monkeypatch.setitem(registry.DETECTORS, "tiny", TINY_ENTRY)
    return "tiny"


@pytest.fixture(scope="session")
def synth_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only synthetic MVTec-style data set: one category, 8 train / 2 good / 2 defective test images, 32 px."""
    from ssmad.data.synthetic import make_mvtec_like

    root = tmp_path_factory.mktemp("synth") / "synth"
    make_mvtec_like(
        root,
        categories=("brick",),
        n_train=8,
        n_test_good=2,
        n_test_defect=1,
        defects=("scratch", "stain"),
        image_size=32,
        seed=0,
    )
    return root


@pytest.fixture
def synth_root(synth_master: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`synth_master` that a test may change, move or delete."""
    dst = tmp_path / "synth"
    shutil.copytree(synth_master, dst)
    return dst
