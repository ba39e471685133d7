"""RecordTable: the same records as the list it was built from, pickled and shared by DataLoader workers."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from ssmad.data.images import AnomalyImageDataset
from ssmad.data.layout import discover
from ssmad.data.record_table import RecordTable
from ssmad.data.records import ImageRecord
from ssmad.data.transforms import Preprocessing

from ._trees import make_realiad_tree


def _records() -> list[ImageRecord]:
    return [
        ImageRecord(Path("/data/a/train/good/000.png"), None, 0, "a", "good", "train"),
        ImageRecord(
            Path("/data/ä b/test/crack/001.png"), Path("/data/ä b/gt/crack/001_mask.png"), 1, "ä b", "crack", "test"
        ),
        ImageRecord(Path("relative/x.jpg"), None, 1, "a", "HS", "test"),
        ImageRecord(Path("/data/a/test/good/002.png"), None, 0, "a", "good", "test"),
    ]


def test_rows_equal_the_records() -> None:
    records = _records()
    table = RecordTable(records)
    assert len(table) == len(records)
    assert list(table) == records
    assert [table[i] for i in range(len(records))] == records
    assert table[-1] == records[-1] and table[1:3] == records[1:3] and table[::-2] == records[::-2]
    assert table.labels.tolist() == [r.label for r in records] and table.labels.dtype == "int64"
    assert table.categories == sorted({r.category for r in records})
    assert pickle.loads(pickle.dumps(table))[1] == records[1]
    with pytest.raises(IndexError):
        table[4]
    with pytest.raises(IndexError):
        table[-5]
    assert list(RecordTable([])) == [] and len(RecordTable([])) == 0


def test_table_of_a_real_index_is_small(tmp_path: Path) -> None:
    make_realiad_tree(tmp_path / "ri")
    records = discover(tmp_path / "ri")
    table = RecordTable(records)
    assert list(table) == records
    text = sum(len(str(r.image_path)) + len(str(r.mask_path or "")) for r in records)
    # the path bytes, 2 offsets + label + 3 codes per row (8+8+1+4+4+4 bytes), and the two closing offsets
    assert table.nbytes == text + 29 * len(records) + 16


def test_worker_processes_give_the_same_batches(tmp_path: Path) -> None:
    make_realiad_tree(tmp_path / "ri")
    ds = AnomalyImageDataset(discover(tmp_path / "ri", split="test"), Preprocessing(32))
    main_process = list(DataLoader(ds, batch_size=3, num_workers=0))
    workers = list(DataLoader(ds, batch_size=3, num_workers=2))
    assert len(main_process) == len(workers) == -(-len(ds) // 3)
    for a, b in zip(main_process, workers, strict=True):
        assert a["image_path"] == b["image_path"] and a["category"] == b["category"]
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
        torch.testing.assert_close(a["mask"], b["mask"], rtol=0, atol=0)
