"""benchmarks/bench_acmamba.py: the scene arguments of its tiers and its never-overwriting ``--json``."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ssmad.errors import InputError

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_acmamba.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_acmamba_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_abu_urban_is_the_abu_tier_on_the_mosaic_background(bench: ModuleType) -> None:
    # §C.7 counts by hand: 170 of 100×100, 21 of 80×100 (targets of 1–3 px), 19 and 68 of 150×150.
    expected = {
        (100, 100, 205): (0.017, (1, 12)),
        (80, 100, 175): (21 / 8000, (1, 3)),
        (150, 150, 188): (19 / 22500, (1, 12)),
        (120, 90, 102): (68 / 22500, (1, 12)),
    }
    for shape, (fraction, sizes) in expected.items():
        abu = bench.scene_kwargs("abu", shape)
        urban = bench.scene_kwargs("abu-urban", shape)
        assert abu == {"target_abundance": (0.05, 1.0), "target_fraction": pytest.approx(fraction),
                       "target_size": sizes}  # fmt: skip
        assert urban == {**abu, "background": "mosaic"}
    assert bench.scene_kwargs("subpixel", (100, 100, 205)) == {"target_abundance": (0.05, 0.3)}
    assert bench.scene_kwargs("fullpixel", (100, 100, 205)) == {"target_abundance": (0.5, 1.0)}


def test_json_is_written_whole_and_never_overwritten(bench: ModuleType, tmp_path: Path) -> None:
    path = bench.check_new_json(str(tmp_path / "run.json"))
    bench.write_new_json(path, {"AUC": 0.9})
    assert json.loads(path.read_text()) == {"AUC": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left
    with pytest.raises(InputError, match="already exists"):
        bench.check_new_json(str(path))
    with pytest.raises(InputError, match="does not exist"):
        bench.check_new_json(str(tmp_path / "missing" / "run.json"))
    # A file that appears during the run is kept; the new numbers stay in the temporary file named in the error.
    with pytest.raises(InputError, match="appeared") as info:
        bench.write_new_json(path, {"AUC": 0.1})
    assert json.loads(path.read_text()) == {"AUC": 0.9}
    kept = [p for p in tmp_path.iterdir() if p.name != "run.json"]
    assert len(kept) == 1 and str(kept[0]) in str(info.value) and json.loads(kept[0].read_text()) == {"AUC": 0.1}


def test_cli_refuses_an_existing_json_before_running(
    bench: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old.json"
    old.write_text("{}")
    monkeypatch.setattr(sys, "argv", ["bench_acmamba.py", "--skip", "detect,speedup,e2e", "--json", str(old)])
    monkeypatch.setattr(bench, "detect", lambda *a, **k: pytest.fail("ran despite the existing --json"))
    with pytest.raises(SystemExit) as info:
        bench.main()
    assert info.value.code == 2 and old.read_text() == "{}"
