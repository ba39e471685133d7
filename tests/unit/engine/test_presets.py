"""The YAML presets shipped in ``ssmad/configs``: each parses through the real loader with no unknown key, builds its
model configuration, resolves by name on the command line, ships in the wheel, and the paper presets hold the
numbers of spec A.9 (MambaAD) and A.2 (RD4AD)."""

from __future__ import annotations

import fnmatch
import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import yaml

from ssmad.cli.main import main
from ssmad.cli.train import check_model_options
from ssmad.engine.config import RunConfig, list_presets, load_yaml, preset_path
from ssmad.registry import detector_class

SHIPPED = (
    "mambaad_cpu_quick",
    "mambaad_mvtec",
    "mambaad_visa",
    "rd4ad_mvtec",
    "mambaad_realiad",
    "mambaad_mvtec3d",
    "mambaad_medical",
    "mambaad_coco",
)
#: The benchmark presets of the other four data sets of MambaAD's table (spec A.11) and their data settings.
BENCHMARKS = {
    "mambaad_realiad": {"layout": "realiad", "fold": None, "train_on_validation": False},
    "mambaad_mvtec3d": {"layout": "auto", "fold": None, "train_on_validation": True},
    "mambaad_medical": {"layout": "auto", "fold": None, "train_on_validation": False},
    "mambaad_coco": {"layout": "ader", "fold": 0, "train_on_validation": False},
}
ROOT = Path(__file__).resolve().parents[3]


def _load(name: str) -> RunConfig:
    path = preset_path(name)
    return RunConfig.from_dict(load_yaml(path), source=str(path))


def test_every_preset_is_listed():
    assert set(SHIPPED) <= set(list_presets())


@pytest.mark.parametrize("name", SHIPPED)
def test_preset_parses_and_builds_its_model_config(name):
    path = preset_path(name)
    assert path.is_file() and path.parent.name == "configs" and path.parent.parent.name == "ssmad"
    raw = yaml.safe_load(path.read_text())
    config = _load(name)
    # every key written in the file survives into the parsed configuration (nothing silently dropped)
    plain = config.to_dict()
    for section, values in raw.items():
        for key, value in values.items():
            assert key in plain[section], f"{name}: {section}.{key}"
            if value is not None and not isinstance(value, list):
                assert plain[section][key] == value, f"{name}: {section}.{key}"
    model = check_model_options(config, str(path))
    cls = detector_class(config.model_name)
    model_cfg = cls._make_config(config.model_options)
    assert {k: v for k, v in model.items() if k != "name"}.keys() == model_cfg.__dataclass_fields__.keys()
    assert config.data.root is None  # the user points it at the data


@pytest.mark.parametrize("name", SHIPPED)
def test_preset_resolves_by_name_on_the_command_line(name):
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["-q", "train", "--config", name, "--data.root", "somewhere", "--print_config"])
    assert code == 0
    printed = yaml.safe_load(out.getvalue())
    assert printed["data"]["root"] == "somewhere"
    assert printed["model"]["name"] == yaml.safe_load(preset_path(name).read_text())["model"]["name"]


def test_mambaad_paper_presets_follow_spec_a9():
    layouts = {"mambaad_mvtec": "mvtec", "mambaad_visa": "visa"} | {k: v["layout"] for k, v in BENCHMARKS.items()}
    for name, layout in layouts.items():
        cfg = _load(name)
        m = detector_class("mambaad")._make_config(cfg.model_options)
        assert cfg.model_name == "mambaad"
        assert (m.encoder, m.pretrained, m.image_size) == ("resnet34", True, 256)
        assert m.decoder_depths == (3, 4, 6, 3) and m.oce_blocks == 3
        assert (m.d_state, m.d_conv, m.expand) == (16, 3, 2.0)
        assert (m.scan_type, m.num_directions, m.drop_path_rate) == ("hilbert", 8, 0.2)
        assert m.lss_kernel_sizes == (5, 7)
        assert (m.loss, m.effective_loss_weight, m.sigma, m.map_divisor) == ("mse", 5.0, 4.0, 9.0)
        t = cfg.trainer
        assert (t.epochs, t.batch_size, t.eval_batch_size, t.drop_last) == (1000, 16, 16, True)
        assert t.learning_rate() == pytest.approx(0.005) and t.learning_rate(32) == pytest.approx(0.01)
        assert t.betas == (0.9, 0.999) and t.eps == pytest.approx(1e-8) and t.weight_decay == pytest.approx(1e-4)
        assert (t.decay_at, t.decay_factor, t.clip_grad, t.seed) == (0.8, 0.1, 5.0, 42)
        assert cfg.data.layout == layout and cfg.metrics.definition == "ader"


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_presets_read_their_download(name):
    cfg = _load(name)
    for key, value in BENCHMARKS[name].items():
        assert getattr(cfg.data, key) == value, key
    assert cfg.trainer.num_workers >= 4  # large sets decode in worker processes
    assert cfg.data.check == "headers"  # indexed without decoding every image
    kwargs = cfg.data.discover_kwargs()
    assert {k: kwargs[k] for k in BENCHMARKS[name]} == BENCHMARKS[name]


def test_rd4ad_preset_follows_the_original_code():
    cfg = _load("rd4ad_mvtec")
    m = detector_class("rd4ad")._make_config(cfg.model_options)
    assert (m.encoder, m.image_size, m.loss, m.sigma, m.map_divisor) == ("wide_resnet50_2", 256, "cosine", 4.0, 1.0)
    t = cfg.trainer
    assert (t.epochs, t.batch_size) == (200, 16)
    assert t.learning_rate() == pytest.approx(0.005) and t.learning_rate(4) == pytest.approx(0.005)  # not scaled
    assert t.betas == (0.5, 0.999) and t.weight_decay == 0.0 and t.clip_grad is None
    assert t.decay_factor == 1.0


def test_cpu_quick_preset_is_small():
    cfg = _load("mambaad_cpu_quick")
    m = detector_class("mambaad")._make_config(cfg.model_options)
    assert m.encoder == "tf_efficientnet_lite0" and m.image_size == 128
    assert cfg.trainer.epochs <= 10 and cfg.trainer.device == "cpu"


def test_presets_ship_in_the_wheel():
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["ssmad"]
    package = ROOT / "src" / "ssmad"
    for name in SHIPPED:
        rel = preset_path(name).resolve().relative_to(package.resolve()).as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), rel
