"""The run configuration: frozen dataclasses for every section, loaded from YAML and dotted overrides.

A run is described by six sections (the keys of a preset such as ``configs/mambaad_mvtec.yaml``)::

    model:     name + the model's own options (encoder, image_size, ...; checked by the model's config class)
    data:      where the images are (:class:`DataConfig`)
    trainer:   optimisation, seed, device, evaluation cadence (:class:`TrainerConfig`)
    threshold: how the label-free decision thresholds are set (:class:`ThresholdConfig`)
    metrics:   which metric definition is reported (:class:`MetricsConfig`)
    output:    where the run folder goes and what it holds (:class:`OutputConfig`)

Defaults are MambaAD's (spec A.9). Unknown keys are a :class:`~ssmad.errors.ConfigError` that names the file and
the valid keys, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, InputError

__all__ = [
    "SECTIONS",
    "DataConfig",
    "MetricsConfig",
    "OutputConfig",
    "RunConfig",
    "ThresholdConfig",
    "TrainerConfig",
    "build_section",
    "list_presets",
    "load_yaml",
    "merge",
    "parse_value",
    "preset_path",
]


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation and bookkeeping of a training run (defaults: MambaAD / ADer, spec A.9).

    Attributes:
        epochs: Passes over the training images (official MambaAD configs: 1000; ADer re-runs: 100 / 300).
        batch_size: Training batch; ``drop_last`` applies. A training set smaller than one batch trains with one
            batch of all images (logged).
        base_lr: Learning rate at batch 16; the rate used is ``base_lr · batch_size / 16`` unless ``lr`` is set.
        lr: Explicit learning rate (no scaling).
        betas: AdamW betas.
        eps: AdamW eps.
        weight_decay: AdamW weight decay (not applied to 1-D parameters and biases).
        decay_at: Fraction of all iterations after which the learning rate is multiplied by ``decay_factor``.
        decay_factor: The step factor.
        clip_grad: Global gradient-norm clip (``None`` or 0: off).
        drop_last: Drop the last incomplete training batch.
        eval_every: Evaluate on the test images every this many epochs (0: only after the last epoch). Reported
            metrics are always those of the final epoch.
        checkpoint_every: Save the resume state every this many epochs (0: never).
        seed: Seed of every random generator.
        deterministic: Deterministic kernels (see :func:`ssmad.engine.seed.set_deterministic`).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        devices: Processes to train with on this machine (``ssmad train`` starts them; one GPU each on CUDA,
            gloo on CPUs). ``batch_size`` stays the global batch. Under ``torchrun`` the launcher decides.
        eval_batch_size: Batch of evaluation and prediction.
        num_workers: Data-loader worker processes (0: load in the main process).
        log_every: Iterations between plain log lines when the output is not a terminal (0: once per epoch).
        progress: Show a progress bar / log lines during training.
    """

    epochs: int = 100
    batch_size: int = 16
    base_lr: float = 0.005
    lr: float | None = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-4
    decay_at: float = 0.8
    decay_factor: float = 0.1
    clip_grad: float | None = 5.0
    drop_last: bool = True
    eval_every: int = 0
    checkpoint_every: int = 1
    seed: int = 42
    deterministic: bool = False
    device: str = "auto"
    devices: int = 1
    eval_batch_size: int = 16
    num_workers: int = 0
    log_every: int = 50
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "devices"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"trainer.{name} must be ≥ 1, got {getattr(self, name)!r}")
        for name in ("eval_every", "checkpoint_every", "num_workers", "log_every"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"trainer.{name} must be ≥ 0, got {getattr(self, name)!r}")
        if not 0.0 < float(self.decay_at) <= 1.0:
            raise ConfigError(f"trainer.decay_at must be in (0, 1], got {self.decay_at!r}")
        if (self.lr is not None and float(self.lr) <= 0) or float(self.base_lr) <= 0:
            raise ConfigError("trainer.lr and trainer.base_lr must be positive")
        if len(tuple(self.betas)) != 2:
            raise ConfigError(f"trainer.betas must be two numbers, got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if str(self.device) != "auto" and not str(self.device).startswith(("cpu", "cuda", "mps")):
            raise ConfigError(f"trainer.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def learning_rate(self, batch_size: int | None = None) -> float:
        """The learning rate used for ``batch_size`` (default: the configured batch)."""
        from .optim import scaled_lr

        return float(self.lr) if self.lr is not None else scaled_lr(self.base_lr, batch_size or self.batch_size)


@dataclass(frozen=True)
class DataConfig:
    """Where the images are; the options of :func:`ssmad.data.discover`.

    Attributes:
        root: The data set folder: an MVTec-style root (every category, one multi-class model), one category
            folder, raw VisA (``split_csv/1cls.csv``), a folder with ADer's ``meta.json``, an MVTec 3D-AD or
            Real-IAD download, or the base of the plain-folder layout.
        layout: ``auto``, ``mvtec``, ``visa``, ``folder``, ``ader``, ``mvtec3d`` or ``realiad``.
        categories: Restrict to these categories (default: all found).
        name: Data-set name in the run path (default: the root folder's name).
        normal_dir: Plain-folder layout: normal training images.
        abnormal_dirs: Plain-folder layout: abnormal test images (one folder per defect type).
        mask_dirs: Plain-folder layout: masks.
        normal_test_dirs: Plain-folder layout: normal test images.
        normal_test_ratio: Plain-folder layout: fraction of normal images held out for testing.
        index: ``ader``: the index file relative to the root (default ``meta.json``); ``realiad``: the folder of
            per-class JSON files (e.g. ``realiad_jsons/realiad_jsons_sv`` for the single-view split).
        fold: COCO-AD fold 0–3 (``ader`` reads ``meta_20_<fold>.json``).
        train_on_validation: ``ader``, ``mvtec3d``: train on the validation images too (ADer's MVTec 3D-AD setting).
        check: ``none``, ``headers`` (default) or ``full`` file checks at discovery.
    """

    root: str | None = None
    layout: str = "auto"
    categories: tuple[str, ...] | None = None
    name: str | None = None
    normal_dir: str | None = None
    abnormal_dirs: tuple[str, ...] = ()
    mask_dirs: tuple[str, ...] | None = None
    normal_test_dirs: tuple[str, ...] | None = None
    normal_test_ratio: float = 0.0
    index: str | None = None
    fold: int | None = None
    train_on_validation: bool = False
    check: str = "headers"

    def __post_init__(self) -> None:
        from ..data.layout import LAYOUTS

        if self.layout not in LAYOUTS:
            raise ConfigError(f"data.layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.fold is not None and (isinstance(self.fold, bool) or not isinstance(self.fold, int) or self.fold < 0):
            raise ConfigError(f"data.fold must be a whole number ≥ 0 (COCO-AD: 0–3), got {self.fold!r}")
        if self.check not in ("none", "headers", "full"):
            raise ConfigError(f"data.check must be none, headers or full, got {self.check!r}")
        for name in ("categories", "abnormal_dirs", "mask_dirs", "normal_test_dirs"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))

    def discover_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`ssmad.data.discover`."""
        return {
            "root": self.root,
            "layout": self.layout,
            "categories": list(self.categories) if self.categories else None,
            "normal_dir": self.normal_dir,
            "abnormal_dirs": list(self.abnormal_dirs),
            "mask_dirs": list(self.mask_dirs) if self.mask_dirs is not None else None,
            "normal_test_dirs": list(self.normal_test_dirs) if self.normal_test_dirs is not None else None,
            "normal_test_ratio": self.normal_test_ratio,
            "index": self.index,
            "fold": self.fold,
            "train_on_validation": bool(self.train_on_validation),
            "check": self.check,
        }

    def dataset_name(self) -> str:
        """The data-set name used in the run path (the root folder's name, with ``_fold<N>`` for a COCO-AD fold)."""
        if self.name:
            return self.name
        name = "dataset"
        if self.root:
            name = Path(self.root).expanduser().resolve().name or "dataset"
        return f"{name}_fold{self.fold}" if self.fold is not None else name


@dataclass(frozen=True)
class ThresholdConfig:
    """How the decision thresholds are set (they do not change any reported metric).

    Without labels (default) the image threshold ``threshold_`` is the ``quantile`` of the image scores of
    held-out normal training images; the pixel threshold is the same value (a pixel is anomalous when it exceeds
    what normal images almost never reach anywhere, so ``pred_label`` equals "some pixel in ``pred_mask``"), or
    the ``pixel_quantile`` of all held-out normal pixels when set. With a labelled validation set, both are the
    F1-optimal thresholds on it. ``value`` / ``pixel_value`` override everything.

    Attributes:
        quantile: Quantile of normal image scores (0.99: about 1 % false alarms on normal images).
        holdout: Fraction of the normal training images held out (per category, at least one) to set the
            threshold; 0 uses the training images' own scores (optimistic, so the threshold comes out lower).
        pixel_quantile: Quantile of held-out normal pixels for the pixel threshold (``None``: the image threshold).
        value: Fixed image threshold.
        pixel_value: Fixed pixel threshold.
    """

    quantile: float = 0.99
    holdout: float = 0.1
    pixel_quantile: float | None = None
    value: float | None = None
    pixel_value: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < float(self.quantile) <= 1.0:
            raise ConfigError(f"threshold.quantile must be in (0, 1], got {self.quantile!r}")
        if not 0.0 <= float(self.holdout) < 1.0:
            raise ConfigError(f"threshold.holdout must be in [0, 1), got {self.holdout!r}")
        if self.pixel_quantile is not None and not 0.0 < float(self.pixel_quantile) <= 1.0:
            raise ConfigError(f"threshold.pixel_quantile must be in (0, 1], got {self.pixel_quantile!r}")


@dataclass(frozen=True)
class MetricsConfig:
    """Which metric definition is reported (design.md): ``exact`` (sklearn curves) or ``ader`` (ADer's)."""

    definition: str = "exact"

    def __post_init__(self) -> None:
        if self.definition not in ("exact", "ader"):
            raise ConfigError(f"metrics.definition must be exact or ader, got {self.definition!r}")


@dataclass(frozen=True)
class OutputConfig:
    """Where the run folder goes and what it holds.

    Attributes:
        root: Results root; runs go to ``<root>/<model>/<dataset>/<category|all>/v<N>``.
        images: Heat-map overlays written to ``images/`` (-1: all test images, 0: none).
        report: Write ``report.html``.
        keep_checkpoint: Keep the resume state (``checkpoints/``) after a successful run.
    """

    root: str = "results"
    images: int = 64
    report: bool = True
    keep_checkpoint: bool = False


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "trainer": TrainerConfig,
    "threshold": ThresholdConfig,
    "metrics": MetricsConfig,
    "output": OutputConfig,
}


@dataclass(frozen=True)
class RunConfig:
    """A whole run: ``model`` (a mapping with ``name`` and the model's options) and the sections above."""

    model: dict[str, Any] = field(default_factory=lambda: {"name": "mambaad"})
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def model_name(self) -> str:
        """The registry name of the model."""
        return str(self.model.get("name", "mambaad"))

    @property
    def model_options(self) -> dict[str, Any]:
        """The model's own options (``model`` without ``name``)."""
        return {k: v for k, v in self.model.items() if k != "name"}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML (tuples as lists)."""

        def plain(v: Any) -> Any:
            if isinstance(v, tuple | list):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        out: dict[str, Any] = {"model": plain(dict(self.model))}
        for name in SECTIONS:
            out[name] = plain(dataclasses.asdict(getattr(self, name)))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "the configuration") -> RunConfig:
        """Build from nested mappings, checking every key.

        Raises:
            ConfigError: Unknown sections or keys, or invalid values; the message names ``source``.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of sections, found {type(data).__name__}")
        known = ("model", *SECTIONS)
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ConfigError(_unknown_message(source, "section", unknown, known))
        model = dict(data.get("model") or {})
        if not isinstance(data.get("model") or {}, Mapping):
            raise ConfigError(f"{source}: 'model' must be a mapping with a 'name' and the model's options")
        model.setdefault("name", "mambaad")
        kwargs: dict[str, Any] = {"model": model}
        for name, section_cls in SECTIONS.items():
            kwargs[name] = build_section(section_cls, data.get(name) or {}, name, source)
        return cls(**kwargs)


def _unknown_message(source: str, what: str, unknown: list[str], known: tuple[str, ...] | list[str]) -> str:
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key.rpartition(".")[2], [k.rpartition(".")[2] for k in known], n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (
        f"{source}: unknown {what}(s) {', '.join(hints)}. Valid {what}s: {', '.join(known)}. Fix: correct or remove "
        "the key (`ssmad train --print_config` shows every key)."
    )


def build_section(section_cls: type, values: Mapping[str, Any], name: str, source: str) -> Any:
    """One section dataclass from a mapping, rejecting unknown keys and invalid values.

    Raises:
        ConfigError: Naming ``source`` and the offending key.
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: section '{name}' must be a mapping of keys, found {type(values).__name__}")
    names = [f.name for f in dataclasses.fields(section_cls)]
    unknown = [f"{name}.{k}" for k in values if k not in names]
    if unknown:
        raise ConfigError(_unknown_message(source, "key", unknown, [f"{name}.{k}" for k in names]))
    try:
        return section_cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()})
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: invalid value in section '{name}': {err}") from err


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file into a mapping.

    Raises:
        InputError: The file does not exist or is not valid YAML.
        ConfigError: The top level is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        presets = ", ".join(list_presets())
        raise InputError(
            f"the configuration file {path} does not exist. Fix: check the path, or use a shipped preset by name "
            f"({presets})."
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err}). Fix the syntax at the position shown.") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a configuration must be a mapping of sections (model, data, trainer, ...)")
    return data


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values of ``override`` win, mappings are merged key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_value(text: str) -> Any:
    """A command-line value read as YAML (``3`` → int, ``true`` → bool, ``[a, b]`` → list, ``null`` → None)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _presets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "configs"


def list_presets() -> list[str]:
    """Names of the YAML presets shipped in :mod:`ssmad.configs`."""
    return sorted(p.stem for p in _presets_dir().glob("*.yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A file path as given, or the shipped preset of that name (``mambaad_mvtec`` → ``.../mambaad_mvtec.yaml``)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    candidate = _presets_dir() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    return candidate if candidate.is_file() and len(path.parts) == 1 else path
