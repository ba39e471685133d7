"""The training loop: a run killed mid-training and resumed ends with the weights of an uninterrupted run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssmad.errors import InputError

from ._tiny import TinyDetector

#: 8 training images (no hold-out), batch 4 → 2 iterations per epoch, 8 in all; dropout and BatchNorm are active.
RESUME_TRAINER = {
    "epochs": 4,
    "batch_size": 4,
    "device": "cpu",
    "progress": False,
    "deterministic": True,
    "checkpoint_every": 1,
    "eval_batch_size": 4,
    "base_lr": 0.05,
}
NO_HOLDOUT = {"holdout": 0.0}


class Killed(RuntimeError):
    """Stands in for a crash or a kill signal."""


class KillAt:
    """Raise after the ``iteration``-th optimiser step (or at the end of ``epoch``), like a kill mid-run."""

    def __init__(self, iteration: int | None = None, epoch: int | None = None) -> None:
        self.iteration, self.epoch = iteration, epoch

    def __repr__(self) -> str:
        return f"iteration{self.iteration}" if self.iteration else f"epoch{self.epoch}"

    def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
        if iteration == self.iteration:
            raise Killed(f"killed at iteration {iteration}")

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        if epoch == self.epoch:
            raise Killed(f"killed at the end of epoch {epoch}")


class Count:
    """Count the optimiser steps a run performs."""

    def __init__(self) -> None:
        self.iterations: list[int] = []

    def on_iteration(self, epoch: int, iteration: int, loss: float) -> None:
        self.iterations.append(iteration)


@pytest.fixture(autouse=True)
def _restore_deterministic() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    yield
    from ssmad.engine.seed import set_deterministic

    set_deterministic(before)


def _fit(root: Path, ckpt: Path, **kw: Any) -> TinyDetector:
    det = TinyDetector(trainer=RESUME_TRAINER, threshold=NO_HOLDOUT)
    return det.fit(root, checkpoint_dir=ckpt, **kw)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("kill", [KillAt(iteration=5), KillAt(epoch=2), KillAt(iteration=1)], ids=repr)
def test_killed_and_resumed_run_equals_uninterrupted(synth_master: Path, tmp_path: Path, kill: KillAt) -> None:
    full = _fit(synth_master, tmp_path / "full")
    assert [r["iterations"] for r in full.history_] == [2, 2, 2, 2]

    with pytest.raises(Killed):
        _fit(synth_master, tmp_path / "killed", callbacks=[kill])
    count = Count()
    resumed = _fit(synth_master, tmp_path / "killed", resume=True, callbacks=[count])

    # only the steps after the last complete checkpoint were replayed
    saved_epochs = {5: 2, 2: 1, 1: 0}[kill.iteration or kill.epoch]  # type: ignore[index]
    assert count.iterations == list(range(2 * saved_epochs + 1, 9))
    _assert_same_weights(full.net_, resumed.net_)
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in full.history_]
    assert resumed.threshold_ == full.threshold_
    x = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(full.decision_function(x), resumed.decision_function(x))


def test_resume_without_state_starts_from_scratch_and_other_totals_are_refused(
    synth_master: Path, tmp_path: Path
) -> None:
    fresh = _fit(synth_master, tmp_path / "a")
    again = _fit(synth_master, tmp_path / "b", resume=True)  # nothing saved yet: a normal run
    _assert_same_weights(fresh.net_, again.net_)
    with pytest.raises(Killed):
        _fit(synth_master, tmp_path / "c", callbacks=[KillAt(epoch=2)])
    det = TinyDetector(trainer={**RESUME_TRAINER, "epochs": 6}, threshold=NO_HOLDOUT)
    with pytest.raises(InputError, match=r"iterations in total.*Fix"):
        det.fit(synth_master, checkpoint_dir=tmp_path / "c", resume=True)


def test_same_seed_same_weights_other_seed_other_weights(synth_master: Path) -> None:
    trainer = {**RESUME_TRAINER, "epochs": 1, "deterministic": False}
    a = TinyDetector(trainer=trainer, threshold=NO_HOLDOUT).fit(synth_master)
    b = TinyDetector(trainer=trainer, threshold=NO_HOLDOUT).fit(synth_master)
    c = TinyDetector(trainer={**trainer, "seed": 7}, threshold=NO_HOLDOUT).fit(synth_master)
    _assert_same_weights(a.net_, b.net_)
    assert not torch.equal(a.net_.head1.weight, c.net_.head1.weight)


def test_fewer_images_than_a_batch_train_with_one_batch(synth_master: Path) -> None:
    det = TinyDetector(trainer={**RESUME_TRAINER, "epochs": 1, "batch_size": 32, "deterministic": False})
    det.fit(synth_master)
    assert det.history_[0]["iterations"] == 1
    # 8 images, one held out for the threshold: 7 train, with the lr scaled by the batch actually used (the lr
    # of the epoch's last step; the single step of a 1-iteration run is before the ×0.1 decay)
    assert det.n_train_ == 7
    assert det.history_[0]["lr"] == pytest.approx(0.05 * 7 / 16)
