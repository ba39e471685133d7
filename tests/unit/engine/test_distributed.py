"""The single-process side of the multi-process helpers: shares, sampler parts, merges, device checks, model entries.

The multi-process runs themselves (gloo workers) are in ``test_cli_distributed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from ssmad.engine import distributed
from ssmad.engine.data import make_loader
from ssmad.engine.evaluate import Collected, merge_collected
from ssmad.engine.seed import epoch_generator
from ssmad.errors import ConfigError, InputError


@pytest.mark.parametrize("n", [0, 1, 3, 7, 16, 33, 100])
@pytest.mark.parametrize("batch", [1, 4, 16])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_every_item_once_in_order(n: int, batch: int, world: int) -> None:
    shares = [distributed.shard_range(n, batch, rank_=r, world=world) for r in range(world)]
    joined = [i for s in shares for i in s]
    assert joined == list(range(n))  # no padding, no duplicate, original order
    batches = -(-n // batch)
    if batches >= world:  # whole batches: every share starts on a single-process batch boundary
        assert all(s.start % batch == 0 for s in shares)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= (batch if batches >= world else 1)


class _Indices(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, object]:
        return {"image": torch.tensor([float(i)]), "label": 0}


@pytest.mark.parametrize(("n", "batch", "drop_last", "world"), [(17, 4, True, 2), (17, 5, False, 2), (30, 6, True, 4)])
def test_sharded_loader_parts_join_to_the_single_process_batches(
    n: int, batch: int, drop_last: bool, world: int
) -> None:
    data = _Indices(n)
    for epoch in (1, 2):
        single = [
            item["image"][:, 0].long().tolist()
            for item in make_loader(data, batch, shuffle=True, drop_last=drop_last, generator=epoch_generator(3, epoch))
        ]
        parts = [
            [
                item["image"][:, 0].long().tolist()
                for item in make_loader(
                    data,
                    batch,
                    shuffle=True,
                    drop_last=drop_last,
                    generator=epoch_generator(3, epoch),
                    shard=(r, world),
                )
            ]
            for r in range(world)
        ]
        expected = [b for b in single if len(b) >= world]  # a batch smaller than the world is left out
        assert all(len(p) == len(expected) for p in parts)
        for t, batch_t in enumerate(expected):
            assert [i for r in range(world) for i in parts[r][t]] == batch_t
            assert max(len(parts[r][t]) for r in range(world)) - min(len(parts[r][t]) for r in range(world)) <= 1


def _collected(start: int, n: int, skipped: list[str]) -> Collected:
    idx = np.arange(start, start + n)
    return Collected(
        scores=idx.astype(np.float64),
        maps=np.stack([np.full((2, 2), i, np.float32) for i in idx]) if n else np.zeros((0, 0, 0), np.float32),
        labels=idx % 2,
        masks=np.zeros((n, 2, 2), np.uint8) if n else np.zeros((0, 0, 0), np.uint8),
        has_mask=np.ones(n, bool),
        categories=["c"] * n,
        defect_types=["good"] * n,
        paths=[f"img{i}.png" for i in idx],
        skipped=skipped,
    )


def test_merge_keeps_rank_order_and_skips_empty_shares() -> None:
    parts = [_collected(0, 3, []), _collected(3, 0, ["bad.png: unreadable"]), _collected(3, 2, ["x.png: broken"])]
    merged = merge_collected(parts)
    assert merged.paths == [f"img{i}.png" for i in range(5)]
    np.testing.assert_array_equal(merged.scores, np.arange(5.0))
    np.testing.assert_array_equal(merged.maps[:, 0, 0], np.arange(5.0))
    assert merged.skipped == ["bad.png: unreadable", "x.png: broken"]
    with pytest.raises(InputError, match=r"none of the evaluation images could be read \(first error: bad.png"):
        merge_collected([_collected(0, 0, ["bad.png: unreadable"])])


def test_helpers_are_no_ops_without_a_process_group() -> None:
    assert not distributed.is_active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.broadcast({"a": 1}) == {"a": 1}
    assert distributed.gather_to_main(5) == [5]
    assert distributed.run_on_main(lambda: 7) == 7
    with pytest.raises(InputError, match="boom"):
        distributed.run_on_main(lambda: (_ for _ in ()).throw(InputError("boom")))
    assert distributed.all_reduce_sum([1.0, 2.0], torch.device("cpu")) == [1.0, 2.0]
    assert distributed.convert_batchnorm(torch.nn.BatchNorm2d(3)) == 0


@pytest.mark.parametrize(
    ("devices", "device", "message"),
    [
        (0, "cpu", "--devices must be ≥ 1, got 0"),
        (-2, "auto", "--devices must be ≥ 1"),
        ("two", "cpu", "must be a whole number"),
    ],
)
def test_bad_process_counts_are_refused(devices: object, device: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        distributed.check_devices(devices, device)  # type: ignore[arg-type]


def test_more_gpu_processes_than_gpus_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert distributed.check_devices(2, "cuda") == 2
    with pytest.raises(ConfigError, match="asks for 3 GPU processes but PyTorch sees 2 GPU"):
        distributed.check_devices(3, "auto")
    with pytest.raises(ConfigError, match="cannot share one named GPU"):
        distributed.check_devices(2, "cuda:1")
    assert distributed.check_devices(8, "cpu") == 8  # CPU processes are not limited by GPUs


def test_launched_worker_is_recognised_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.in_launched_worker()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.in_launched_worker()
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: nothing to join
    assert not distributed.in_launched_worker()


def test_models_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssmad.registry import detector_class, list_models

    monkeypatch.setenv("SSMAD_MODELS", "tiny=tests.unit.engine._tiny:TinyDetector, mambaad=nowhere:Nothing")
    assert detector_class("tiny").__name__ == "TinyDetector"
    assert detector_class("mambaad").__name__ == "MambaADDetector"  # a built-in name is never replaced
    assert "tiny" in list_models()
    monkeypatch.setenv("SSMAD_MODELS", "tiny:TinyDetector")
    with pytest.raises(ConfigError, match="is not name=module:attribute"):
        detector_class("tiny")
