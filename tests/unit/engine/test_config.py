"""The ``data`` section of the run configuration: the layout options and their checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssmad.data.layout import LAYOUTS
from ssmad.engine.config import DataConfig, RunConfig
from ssmad.errors import ConfigError


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_is_accepted(layout: str) -> None:
    assert DataConfig(layout=layout).discover_kwargs()["layout"] == layout


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"layout": "coco"}, "data.layout must be one of auto, mvtec, visa, folder, ader, mvtec3d, realiad"),
        ({"fold": -1}, "data.fold must be a whole number"),
        ({"fold": 1.5}, "data.fold must be a whole number"),
        ({"fold": True}, "data.fold must be a whole number"),
        ({"check": "some"}, "data.check must be none, headers or full"),
        ({"folds": 1}, "unknown key(s) 'data.folds' (did you mean 'fold'?)"),
    ],
)
def test_bad_data_options_are_config_errors(values: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({"data": values}, source="run.yaml")
    assert needle in str(err.value) and "run.yaml" in str(err.value)


def test_index_options_reach_discover_and_the_run_name(tmp_path: Path) -> None:
    cfg = DataConfig(root=str(tmp_path / "coco"), layout="ader", fold=2, index=None, train_on_validation=True)
    kwargs = cfg.discover_kwargs()
    assert (kwargs["fold"], kwargs["index"], kwargs["train_on_validation"]) == (2, None, True)
    assert cfg.dataset_name() == "coco_fold2"
    assert DataConfig(root=str(tmp_path / "coco")).dataset_name() == "coco"
    assert DataConfig(root=str(tmp_path / "coco"), fold=0, name="mine").dataset_name() == "mine"
