"""Run folders ``<root>/<model>/<dataset>/<category|all>/v<N>`` + ``latest``, and atomic writes that never overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssmad.engine.runs import (
    atomic_write_bytes,
    atomic_write_json,
    create_run_dir,
    list_versions,
    resolve_run,
    run_parent,
    safe_name,
)
from ssmad.errors import InputError


def test_versions_count_up_and_latest_follows(tmp_path: Path) -> None:
    v1 = create_run_dir(tmp_path, "mambaad", "MVTec AD", "all")
    assert v1 == tmp_path / "mambaad" / "MVTec_AD" / "all" / "v1"
    (v1 / "metadata.json").write_text("{}")
    v2 = create_run_dir(tmp_path, "mambaad", "MVTec AD", "all")
    assert v2.name == "v2" and v2.is_dir() and not any(v2.iterdir())
    assert (v1 / "metadata.json").read_text() == "{}"  # the old run is untouched
    latest = v2.parent / "latest"
    assert latest.resolve() == v2.resolve()
    assert list_versions(v2.parent) == [1, 2]
    # a gap or a folder claimed by someone else is skipped, never reused
    (v2.parent / "v7").mkdir()
    assert create_run_dir(tmp_path, "mambaad", "MVTec AD", "all").name == "v8"
    assert run_parent(tmp_path, "m", "d") == tmp_path / "m" / "d" / "all"


def test_resolve_run_accepts_latest_and_rejects_unfinished(tmp_path: Path) -> None:
    v1 = create_run_dir(tmp_path, "tiny", "data", "brick")
    with pytest.raises(InputError, match=r"no metadata\.json.*Fix"):
        resolve_run(v1)
    (v1 / "metadata.json").write_text("{}")
    assert resolve_run(v1.parent / "latest") == v1.resolve()
    with pytest.raises(InputError, match=r"does not exist.*Fix"):
        resolve_run(tmp_path / "nope")


def test_latest_as_text_file_is_followed(tmp_path: Path) -> None:
    run = tmp_path / "v3"
    run.mkdir()
    (run / "metadata.json").write_text("{}")
    (tmp_path / "latest").write_text("v3\n")
    assert resolve_run(tmp_path / "latest") == run.resolve()


def test_atomic_writes_refuse_to_overwrite_and_leave_no_temporaries(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "sub" / "a.json", {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    with pytest.raises(InputError, match=r"exists already.*Fix"):
        atomic_write_bytes(path, b"new")
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    atomic_write_bytes(path, b"new", overwrite=True)
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_safe_name() -> None:
    assert safe_name("MVTec AD/bottle") == "MVTec_AD_bottle"
    assert safe_name("..") == "unnamed"
    assert safe_name("v1.2-x_y") == "v1.2-x_y"


def test_json_is_standard_non_finite_floats_become_null(tmp_path: Path) -> None:
    data = {"a": float("nan"), "b": [1.5, float("inf"), (float("-inf"), 2)], "c": {"d": 0.25}}
    path = atomic_write_json(tmp_path / "x.json", data)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == {
        "a": None,
        "b": [1.5, None, [None, 2]],
        "c": {"d": 0.25},
    }
