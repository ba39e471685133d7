"""Training progress: a rich bar (loss, it/s, ETA) on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import io
import logging
import math

import pytest
import rich
from rich.console import Console

from ssmad.engine.progress import TrainProgress, format_eta


def _drive(progress: TrainProgress, epochs: int = 2, per_epoch: int = 5) -> None:
    with progress:
        for e in range(1, epochs + 1):
            for i in range(1, per_epoch + 1):
                progress.step(e, i, per_epoch, 1.0 / (10 * e + i))
            progress.end_epoch(e, per_epoch, 0.125 * e)


def test_plain_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(rich, "_console", Console(file=io.StringIO(), force_terminal=False))
    progress = TrainProgress(10, 2, log_every=2)
    assert not progress.use_bar
    with caplog.at_level(logging.INFO, logger="ssmad.train"):
        _drive(progress)
    lines = [r.getMessage() for r in caplog.records if r.name == "ssmad.train"]
    # every 2 iterations inside an epoch (2, 4) and one line per epoch end
    assert len(lines) == 6
    assert lines[0].startswith("epoch 1/2  it 2/5  loss 0.08333")
    assert lines[2].startswith("epoch 1/2  it 5/5  mean loss 0.125")
    assert lines[5].startswith("epoch 2/2  it 5/5  mean loss 0.25")
    for line in lines:
        assert " it/s  ETA " in line
    assert progress.done == 10 and progress.eta == 0


def test_log_every_zero_logs_only_epochs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(rich, "_console", Console(file=io.StringIO(), force_terminal=False))
    with caplog.at_level(logging.INFO, logger="ssmad.train"):
        _drive(TrainProgress(10, 2, log_every=0))
        _drive(TrainProgress(10, 2, enabled=False))
    lines = [r.getMessage() for r in caplog.records if r.name == "ssmad.train"]
    assert len(lines) == 2 and all("mean loss" in line for line in lines)


def test_rich_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(rich, "_console", Console(file=buf, force_terminal=True, width=160, color_system=None))
    progress = TrainProgress(10, 2, log_every=2)
    assert progress.use_bar
    with caplog.at_level(logging.INFO, logger="ssmad.train"):
        _drive(progress)
    text = buf.getvalue()
    assert "epoch 2/2" in text and "10/10" in text
    assert "loss 0.04 " in text  # the last step's loss, 1 / 25
    assert " it/s" in text and "ETA" in text
    assert not [r for r in caplog.records if r.name == "ssmad.train"]  # no duplicate plain lines


def test_resumed_progress_counts_from_the_saved_iteration() -> None:
    progress = TrainProgress(10, 2, start_iter=6, enabled=False)
    assert math.isnan(progress.rate) and math.isnan(progress.eta)
    progress.step(2, 2, 5, 0.5)
    assert progress.done == 7 and progress.rate > 0
    assert 0 < progress.eta < float("inf")


def test_format_eta() -> None:
    assert format_eta(3725) == "1:02:05"
    assert format_eta(59.6) == "0:01:00"
    assert format_eta(float("nan")) == "?" and format_eta(float("inf")) == "?" and format_eta(-1) == "?"
