"""Several gloo worker processes on the CPU: ``--devices 2`` / ``--trainer.devices 2`` / ``torchrun ... -m ssmad``.

The oracle of every test is the same command in one process: sharded evaluation must write the same metrics and
predictions, and two processes with a global batch B must end with the weights of one process with batch B
(``--trainer.deterministic``, no dropout; the stand-in network has a batch norm that trains, so its statistics
must be those of the global batch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssmad.cli.main import main
from ssmad.engine.checkpoint import load_state_dict

from .test_cli_image import HEADLINE, _train_args

REPO = Path(__file__).resolve().parents[3]
BRICK = ("tiny", "synth", "brick")


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch, tiny_registered: str) -> dict[str, str]:
    """Environment of the worker processes: the stand-in model, this checkout importable, one thread each."""
    monkeypatch.setenv("SSMAD_MODELS", "tiny=tests.unit.engine._tiny:TinyDetector")
    paths = [str(REPO / "src"), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same thread count as this process (conftest)
    return dict(os.environ)


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_state_dict(a), load_state_dict(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_sharded_test_and_predict_equal_one_process(
    synth_root: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    out = tmp_path / "results"
    # eval batch 1 → 4 test batches over 2 processes: 2 whole batches each
    assert main(_train_args(synth_root, out, "--trainer.eval_batch_size", "1", "--output.images", "0")) == 0
    run = out.joinpath(*BRICK, "v1")
    quick = ["--device", "cpu", "--output.images", "0", "--output.report", "false"]
    assert main(["-q", "test", "--run", str(run), *quick, "--out", str(tmp_path / "one")]) == 0
    assert main(["-q", "test", "--run", str(run), *quick, "--out", str(tmp_path / "two"), "--devices", "2"]) == 0
    one, two = _json(tmp_path / "one" / "metrics.json"), _json(tmp_path / "two" / "metrics.json")
    assert two["n_images"] == one["n_images"] == 4
    for key in (*HEADLINE, "mAD"):
        assert two[key] == pytest.approx(one[key], rel=1e-9, abs=1e-12), key
    assert two["per_category"].keys() == one["per_category"].keys()
    for cat, values in one["per_category"].items():
        assert two["per_category"][cat] == pytest.approx(values, rel=1e-9, abs=1e-12), cat
    assert two["counts"] == one["counts"]

    # predict: every process writes its own maps and overlays, rank 0 the scores in input order
    images = tmp_path / "new"
    images.mkdir()
    for i, png in enumerate(sorted((synth_root / "brick" / "test").rglob("*.png"))):
        shutil.copy(png, images / f"{i}_{png.name}")
    args = ["-q", "predict", "--run", str(run), "--input", str(images), "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "p1"), "--no-overlays"]) == 0
    assert main([*args, "--out", str(tmp_path / "p2"), "--no-overlays", "--devices", "2"]) == 0
    s1, s2 = _json(tmp_path / "p1" / "scores.json"), _json(tmp_path / "p2" / "scores.json")
    assert [r["image_path"] for r in s2["images"]] == [r["image_path"] for r in s1["images"]]
    assert len(s1["images"]) == 4
    for r1, r2 in zip(s1["images"], s2["images"], strict=True):
        assert r2["pred_score"] == pytest.approx(r1["pred_score"], rel=1e-6)
        assert r2["map"] == r1["map"]
        np.testing.assert_allclose(
            np.load(tmp_path / "p2" / r2["map"]), np.load(tmp_path / "p1" / r1["map"]), rtol=1e-6, atol=1e-7
        )


def test_torchrun_training_equals_one_process_with_the_global_batch(
    synth_root: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    extra = ("--deterministic", "--model.dropout", "0", "--trainer.eval_every", "1", "--threshold.holdout", "0")
    extra = (*extra, "--output.images", "0", "--output.report", "false")
    assert main(_train_args(synth_root, tmp_path / "one", *extra)) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "ssmad"]
    done = subprocess.run(
        [*cmd, *_train_args(synth_root, tmp_path / "two", *extra, "--trainer.devices", "2")],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parent = (tmp_path / "two").joinpath(*BRICK)
    assert sorted(p.name for p in parent.iterdir()) == ["latest", "v1"]  # exactly one run folder
    run = parent / "v1"
    assert {"config.yaml", "model.safetensors", "metadata.json", "metrics.json", "metrics_history.json"} <= {
        p.name for p in run.iterdir()
    }
    assert not (run / "checkpoints").exists() and not list(run.glob(".*.tmp"))
    single = (tmp_path / "one").joinpath(*BRICK, "v1")
    _same_weights(single / "model.safetensors", run / "model.safetensors")
    h1, h2 = _json(single / "metrics_history.json"), _json(run / "metrics_history.json")
    assert [r["loss"] for r in h2["history"]] == pytest.approx([r["loss"] for r in h1["history"]], rel=1e-5)
    assert [r["iterations"] for r in h2["history"]] == [r["iterations"] for r in h1["history"]] == [2, 2]
    assert h2["evaluations"][0]["n_images"] == 4  # the periodic evaluation saw every test image once
    assert _json(run / "metadata.json")["threshold"]["image"] == pytest.approx(
        _json(single / "metadata.json")["threshold"]["image"], rel=1e-4
    )


def test_resume_with_two_processes_continues_a_one_process_run(
    synth_root: Path, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    import argparse

    from ssmad.cli.main import build_parser
    from ssmad.cli.train import resolve_config
    from ssmad.engine.runner import train_run

    from .test_train import KillAt, Killed

    extra = ("--trainer.epochs", "3", "--deterministic", "--model.dropout", "0", "--threshold.holdout", "0")
    extra = (*extra, "--output.images", "0", "--output.report", "false")
    assert main(_train_args(synth_root, tmp_path / "full", *extra)) == 0
    args = build_parser().parse_args(_train_args(synth_root, tmp_path / "killed", *extra)[1:])
    assert isinstance(args, argparse.Namespace)
    config, _ = resolve_config(args)
    with pytest.raises(Killed):
        train_run(config, callbacks=[KillAt(iteration=3)])  # killed in epoch 2 of 3; epoch 1 is saved
    run = (tmp_path / "killed").joinpath(*BRICK, "v1")
    assert (run / "checkpoints" / "last.json").is_file()

    assert main([*_train_args(synth_root, tmp_path / "killed", *extra), "--trainer.devices", "2", "--resume"]) == 0
    assert sorted(p.name for p in run.parent.iterdir()) == ["latest", "v1"]  # resumed in place
    assert (run / "metadata.json").is_file() and not (run / "checkpoints").exists()
    _same_weights((tmp_path / "full").joinpath(*BRICK, "v1", "model.safetensors"), run / "model.safetensors")


def test_multi_process_errors_exit_2_before_any_worker_starts(
    synth_root: Path, tmp_path: Path, worker_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no_such_run"
    assert main(["-q", "test", "--run", str(missing), "--devices", "2"]) == 2
    assert f"the run folder {missing} does not exist" in capsys.readouterr().err
    assert main(["-q", "test", "--run", str(missing), "--devices", "0"]) == 2
    assert "--devices must be ≥ 1, got 0" in capsys.readouterr().err
    out = tmp_path / "p"
    assert (
        main(["-q", "predict", "--run", str(missing), "--input", str(synth_root), "--out", str(out), "--devices", "2"])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(_train_args(synth_root, tmp_path / "r", "--trainer.devices", "0")) == 2
    assert "trainer.devices must be ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mambaad", "rd4ad"])
def test_real_networks_get_the_global_batch_gradient(name: str, worker_env: dict[str, str]) -> None:
    """In float64 (float32 rounding is amplified by batch norm over few pixels), 2 processes = 1 process."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    done = subprocess.run(
        [*cmd, "-m", "tests.unit.engine._ddp_gradients", name],
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["same_keys"]
    assert result["dec"] < 1e-10
    assert result["grad"] < 1e-10


_TEARDOWN_WORKER = """
import os, sys
from ssmad.engine import distributed

def gloo_threads():
    names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
    return sum(n.startswith(("pt_gloo", "gloo")) for n in names)

distributed.setup("cpu")
assert distributed.broadcast({"rank": distributed.rank()}) == {"rank": 0}
# a module imported once the group exists (torch's FSDP / sharded-tensor imports pull this one in)
import torch.distributed.nn.functional  # noqa: E402
before = gloo_threads()
distributed._teardown()
print(f"rank {os.environ['RANK']}: gloo threads {before} -> {gloo_threads()}", flush=True)
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_teardown_stops_the_gloo_threads_before_interpreter_shutdown(
    tmp_path: Path, worker_env: dict[str, str]
) -> None:
    # gloo threads still running at interpreter shutdown abort a worker now and then (a thread freeing a finished
    # broadcast cannot take the GIL any more: "terminate called without an active exception", exit -6)
    script = tmp_path / "worker.py"
    script.write_text(_TEARDOWN_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)]
    done = subprocess.run(cmd, env=worker_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    counts = re.findall(r"rank (\d): gloo threads (\d+) -> (\d+)", done.stdout)  # both workers share stdout
    assert sorted(rank for rank, _, _ in counts) == ["0", "1"], done.stdout
    for rank, before, after in counts:
        assert int(before) > 0 and int(after) == 0, f"rank {rank}: {before} -> {after}"
