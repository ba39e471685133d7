"""Session-wide test settings: offline hubs, deterministic seeds, small thread counts."""

from __future__ import annotations

import os

# BLAS threads fight the test process for the 2 CI cores (a 180x180 pinv: 2.4 s with 2 threads, 0.03 s with 1)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.pop("SSMAD_SCAN_BACKEND", None)

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
