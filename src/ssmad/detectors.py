"""The detector facade: one scikit-learn / PyOD style contract over the image models (design.md).

.. code-block:: python

    import ssmad

    det = ssmad.create_model("mambaad", encoder="resnet34", pretrained=False, image_size=256)
    det.fit("datasets/MVTecAD", epochs=100)       # an MVTec-style root (all categories) or one category folder
    scores = det.decision_function(images)        # (n,) higher = more anomalous
    labels = det.predict(images)                  # (n,) 0/1 with the label-free threshold
    preds = det.predict_maps(images)              # pred_score, anomaly_map (H, W), pred_label, pred_mask, image_path
    det.save("runs/mvtec"); det2 = ssmad.load("runs/mvtec")

``images`` is an image path, a folder, a list of paths and/or arrays, or an array batch ``(N, H, W, 3)``.

Conventions (scikit-learn discipline): the constructor only stores options; :meth:`~ImageDetector.fit` returns the
detector and sets every learned attribute, whose name ends in ``_``: ``net_`` (the trained network, eval mode),
``preprocessing_`` (replayed at prediction time), ``threshold_`` and ``pixel_threshold_`` (see
:class:`~ssmad.engine.config.ThresholdConfig`), ``threshold_info_``, ``history_`` (per-epoch loss),
``categories_``, ``n_train_``. Scores: **higher = more anomalous**, everywhere.

Constructor options are the model's own (checked by its config class: an unknown key is a
:class:`~ssmad.errors.ConfigError`) plus ``trainer`` (a :class:`~ssmad.engine.config.TrainerConfig` or a dict of
its fields: epochs, batch size, learning rate, seed, device, ...), ``threshold`` (a
:class:`~ssmad.engine.config.ThresholdConfig` or dict) and ``metrics_definition`` (``exact`` / ``ader``).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .engine.runs import plain_data
from .errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "ImageDetector", "MambaADDetector", "MambaADv2Detector", "RD4ADDetector"]

#: Version of the folder layout written by :meth:`ImageDetector.save`.
FORMAT_VERSION = 1


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _float_or_nan(value: Any) -> float:
    """A stored threshold: ``null`` (JSON has no NaN) means not set."""
    return math.nan if value is None else float(value)


def _section(cls: type, value: Any, name: str) -> Any:
    from .engine.config import build_section

    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    return build_section(cls, value, name, f"the {name} options")


class ImageDetector:
    """Base of the feature-reconstruction image detectors (MambaAD, RD4AD).

    Subclasses set :attr:`model_name`, :attr:`config_path` and :attr:`network_path` (``"module:attribute"``
    strings of the model's frozen config dataclass and of its ``nn.Module``, built as ``Network(config)``).

    Args:
        trainer: Training options (:class:`~ssmad.engine.config.TrainerConfig` or a dict of its fields).
        threshold: Threshold options (:class:`~ssmad.engine.config.ThresholdConfig` or a dict).
        metrics_definition: ``exact`` or ``ader`` for :meth:`evaluate`.
        **options: The model's configuration (e.g. ``encoder``, ``pretrained``, ``image_size``).
    """

    model_name: ClassVar[str] = ""
    config_path: ClassVar[str] = ""
    network_path: ClassVar[str] = ""

    def __init__(
        self,
        *,
        trainer: Any = None,
        threshold: Any = None,
        metrics_definition: str = "exact",
        **options: Any,
    ) -> None:
        from .engine.config import MetricsConfig, ThresholdConfig, TrainerConfig

        self.config = self._make_config(options)
        self.trainer = _section(TrainerConfig, trainer, "trainer")
        self.threshold = _section(ThresholdConfig, threshold, "threshold")
        self.metrics_definition = MetricsConfig(metrics_definition).definition

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def config_class(cls) -> type:
        """The model's frozen configuration dataclass."""
        return _import(cls.config_path)

    @classmethod
    def _make_config(cls, options: Mapping[str, Any]) -> Any:
        config_cls = cls.config_class()
        names = {f.name for f in dataclasses.fields(config_cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ConfigError(
                f"{cls.model_name}: unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(names))}, "
                "plus trainer={...}, threshold={...} and metrics_definition"
            )
        try:
            return config_cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()})
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{cls.model_name}: {err}") from err

    def _build_network(self, config: Any | None = None) -> nn.Module:
        return _import(self.network_path)(config if config is not None else self.config)

    def check_network(self) -> None:
        """Build the network once and discard it: configuration errors surface before any file is written.

        Such errors are an unknown encoder, encoder weights of another architecture or missing pretrained weights.

        The global random generators are left as they were, so a following :meth:`fit` starts from the same state.

        Raises:
            ConfigError: An invalid model option.
            InputError: Unusable encoder weights.
        """
        with torch.random.fork_rng(devices=[]):
            self._build_network()

    def _preprocessing_for(self, net: nn.Module) -> Any:
        from .data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

        encoder = getattr(net, "encoder", None)
        mean = tuple(getattr(encoder, "mean", IMAGENET_MEAN))
        std = tuple(getattr(encoder, "std", IMAGENET_STD))
        size = getattr(self.config, "image_size", 256)
        return Preprocessing(image_size=size, mean=mean, std=std)

    @property
    def device_(self) -> torch.device:
        """The device of the fitted network."""
        self._check_fitted()
        return next(self.net_.parameters()).device

    def get_params(self) -> dict[str, Any]:
        """The constructor options (model configuration, ``trainer``, ``threshold``, ``metrics_definition``)."""
        out = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)}
        out.update(trainer=self.trainer, threshold=self.threshold, metrics_definition=self.metrics_definition)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in dataclasses.asdict(self.config).items())
        return f"{type(self).__name__}({fields})"

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise InputError(
                f"this {type(self).__name__} is not fitted yet. Fix: call det.fit(normal_images) first, or load a "
                "trained one with ssmad.load(folder)."
            )

    # ------------------------------------------------------------------------------------------ data
    def _training_data(self, data: Any, pre: Any) -> tuple[list[Any] | None, Dataset]:
        """Training records (or ``None`` for in-memory arrays) and the dataset over them."""
        from .data.images import AnomalyImageDataset
        from .data.layout import ImageRecord, discover, list_images
        from .engine.data import ArrayImageDataset

        if isinstance(data, AnomalyImageDataset):
            records = [r for r in data.records if r.label == 0 and r.split == "train"] or [
                r for r in data.records if r.label == 0
            ]
        elif isinstance(data, str | Path):
            root = Path(data)
            if not root.exists():
                raise InputError(
                    f"the training folder {root} does not exist. Fix: pass an MVTec-style data set root "
                    "(<root>/<category>/train/good/), one category folder, or a folder of normal images."
                )
            if root.is_dir() and not any(p.is_dir() for p in root.iterdir()) and list_images(root):
                category = root.name or "images"
                records = [ImageRecord(p, None, 0, category, "good", "train") for p in list_images(root)]
            else:
                records = discover(root, split="train")
        elif isinstance(data, Sequence) and data and all(isinstance(r, ImageRecord) for r in data):
            records = [r for r in data if r.label == 0 and r.split == "train"] or [r for r in data if r.label == 0]
        else:
            return None, ArrayImageDataset(data, pre)
        if not records:
            raise InputError(
                "the training data holds no normal image (label 0). Fix: pass normal training images "
                "(<category>/train/good/)."
            )
        return records, AnomalyImageDataset(records, pre)

    def _evaluation_data(self, data: Any, pre: Any, split: str = "test") -> Dataset:
        from .data.images import AnomalyImageDataset
        from .data.layout import ImageRecord, discover

        if isinstance(data, AnomalyImageDataset):
            return AnomalyImageDataset(data.records, pre)
        if isinstance(data, str | Path):
            records = discover(data, split=split)
        elif isinstance(data, Sequence) and data and all(isinstance(r, ImageRecord) for r in data):
            records = list(data)
        else:
            raise InputError(
                "evaluation needs labelled data: a data set folder with <category>/test/ (and ground_truth/ for "
                "pixel metrics), a list of ssmad.data.ImageRecord or an AnomalyImageDataset."
            )
        if not records:
            raise InputError(f"no {split} images were found in {data}. Fix: check the data folder.")
        return AnomalyImageDataset(records, pre)

    @staticmethod
    def _holdout(records: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
        """Split normal training records per category into ``(train, held_out)``.

        When ``fraction > 0`` at least one image is held out of every category with two or more images.
        """
        if fraction <= 0:
            return records, []
        rng = np.random.default_rng(seed)
        train, held = [], []
        by_cat: dict[str, list[Any]] = {}
        for r in records:
            by_cat.setdefault(r.category, []).append(r)
        for cat in sorted(by_cat):
            rs = by_cat[cat]
            k = max(1, round(fraction * len(rs))) if len(rs) >= 2 else 0
            pick = set(rng.choice(len(rs), size=k, replace=False).tolist()) if k else set()
            train += [r for i, r in enumerate(rs) if i not in pick]
            held += [r for i, r in enumerate(rs) if i in pick]
        return train, held

    # ------------------------------------------------------------------------------------------ fit
    def fit(
        self,
        data: Any,
        *,
        epochs: int | None = None,
        validation: Any = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        callbacks: Sequence[Any] = (),
        evaluate_on: Any = None,
        **trainer_overrides: Any,
    ) -> ImageDetector:
        """Train on normal images and set the decision thresholds.

        Args:
            data: Normal training images: an MVTec-style root (every category → one multi-class model), one
                category folder, a folder of images, a list of :class:`~ssmad.data.ImageRecord`, an
                :class:`~ssmad.data.AnomalyImageDataset` (its normal training records are used), or an array
                batch ``(N, H, W, 3)`` / list of arrays.
            epochs: Overrides ``trainer.epochs``.
            validation: Labelled data (same forms as :meth:`evaluate`) → F1-optimal thresholds on it instead of
                the label-free quantile.
            checkpoint_dir: Folder for the resume state (``None``: no checkpoints).
            resume: Continue from the newest state in ``checkpoint_dir``.
            callbacks: Objects with ``on_iteration(epoch, iteration, loss)`` / ``on_epoch_end(epoch, record)``.
            evaluate_on: Labelled data for the periodic evaluation every ``trainer.eval_every`` epochs.
            **trainer_overrides: Other :class:`~ssmad.engine.config.TrainerConfig` fields (``batch_size``,
                ``lr``, ``seed``, ``device``, ...).

        Returns:
            ``self``.
        """
        from .engine import distributed
        from .engine.evaluate import collect_sharded, compute_metrics, f1_thresholds, quantile_thresholds
        from .engine.seed import seed_everything, set_deterministic
        from .engine.train import train_network

        if epochs is not None:
            trainer_overrides["epochs"] = epochs
        if trainer_overrides:
            from .engine.config import build_section

            merged = {**dataclasses.asdict(self.trainer), **trainer_overrides}
            self.trainer = build_section(type(self.trainer), merged, "trainer", "fit(...) options")
        cfg = self.trainer
        device = distributed.setup(cfg.device)  # joins the process group when started by torchrun / --devices
        set_deterministic(cfg.deterministic)
        seed_everything(cfg.seed)
        t0 = time.perf_counter()
        net = self._build_network()
        pre = self._preprocessing_for(net)
        records, dataset = self._training_data(data, pre)
        held: list[Any] = []
        if records is not None and validation is None and self.threshold.value is None:
            records, held = self._holdout(records, self.threshold.holdout, cfg.seed)
            from .data.images import AnomalyImageDataset

            dataset = AnomalyImageDataset(records, pre)
        evaluate_fn: Callable[[int], dict[str, Any]] | None = None
        if evaluate_on is not None and cfg.eval_every:
            eval_data = self._evaluation_data(evaluate_on, pre)

            def evaluate_fn(epoch: int) -> dict[str, Any]:
                res = collect_sharded(net, eval_data, device=device, batch_size=cfg.eval_batch_size)

                def summary() -> dict[str, Any]:
                    metrics = compute_metrics(res, self.metrics_definition)  # type: ignore[arg-type]
                    logger.info("epoch %d: %s", epoch, _headline(metrics))
                    return {k: v for k, v in metrics.items() if k != "per_category"}

                return distributed.run_on_main(summary)

        history = train_network(
            net,
            dataset,
            cfg,
            device=device,
            state_dir=checkpoint_dir,
            resume=resume,
            callbacks=callbacks,
            evaluate=evaluate_fn,
        )
        self.net_ = net
        self.preprocessing_ = pre
        self.history_ = history
        self.n_train_ = len(dataset)  # type: ignore[arg-type]
        self.categories_ = sorted({r.category for r in records}) if records is not None else ["array"]
        self.train_seconds_ = time.perf_counter() - t0

        # thresholds
        q = self.threshold
        if validation is not None:
            vres = collect_sharded(
                net, self._evaluation_data(validation, pre), device=device, batch_size=cfg.eval_batch_size
            )
            image_t, pixel_t, n_val = distributed.run_on_main(
                lambda: (*f1_thresholds(vres), len(vres))  # type: ignore[arg-type]
            )
            info = f"F1-optimal on {n_val} labelled validation images"
        else:
            if held:
                from .data.images import AnomalyImageDataset

                source, what = AnomalyImageDataset(held, pre), f"{len(held)} held-out normal training images"
            else:
                source, what = dataset, f"the {len(dataset)} training images (no hold-out)"  # type: ignore[arg-type]
            res = collect_sharded(
                net, source, device=device, batch_size=cfg.eval_batch_size, keep_maps=q.pixel_quantile is not None
            )
            image_t, pixel_t = distributed.run_on_main(
                lambda: quantile_thresholds(res.scores, res.maps, q.quantile, q.pixel_quantile)  # type: ignore[union-attr]
            )
            info = f"quantile {q.quantile} of the scores of {what}"
        if q.value is not None:
            image_t, info = float(q.value), "fixed (threshold.value)"
        if q.pixel_value is not None:
            pixel_t = float(q.pixel_value)
        elif q.value is not None and q.pixel_quantile is None and validation is None:
            pixel_t = image_t
        self.threshold_ = float(image_t)
        self.pixel_threshold_ = float(pixel_t)
        self.threshold_info_ = info
        logger.info("threshold %.5g (pixel %.5g): %s", self.threshold_, self.pixel_threshold_, info)
        return self

    def set_threshold(self, value: float | None = None, pixel_value: float | None = None) -> ImageDetector:
        """Override the fitted thresholds (``None`` keeps one)."""
        self._check_fitted()
        if value is not None:
            self.threshold_ = float(value)
            self.threshold_info_ = "set by the user"
        if pixel_value is not None:
            self.pixel_threshold_ = float(pixel_value)
        return self

    # ------------------------------------------------------------------------------------------ inference
    def predict_maps(self, x: Any, *, input_resolution: bool = True, skipped: list[str] | None = None) -> list[Any]:
        """Score images and return one :class:`~ssmad.engine.predict.ImagePrediction` per readable input.

        Args:
            x: An image path, a folder, a list of paths and/or arrays, or an array batch.
            input_resolution: Maps at each input image's size (default), else at the model's resolution.
            skipped: When given, unreadable inputs are listed here (with a warning) instead of raising.

        Returns:
            Predictions with ``pred_score`` (float, higher = more anomalous), ``anomaly_map`` (``(H, W)``
            float32), ``pred_label`` (bool), ``pred_mask`` (``(H, W)`` bool) and ``image_path``.
        """
        from .engine.predict import predict_images

        self._check_fitted()
        return predict_images(
            self.net_,
            x,
            self.preprocessing_,
            device=self.device_,
            threshold=self.threshold_,
            pixel_threshold=self.pixel_threshold_,
            batch_size=self.trainer.eval_batch_size,
            input_resolution=input_resolution,
            skipped=skipped,
        )

    def decision_function(self, x: Any) -> np.ndarray:
        """Image scores ``(n,)`` float64, higher = more anomalous (maximum of each anomaly map)."""
        return np.asarray([p.pred_score for p in self.predict_maps(x, input_resolution=False)], dtype=np.float64)

    def predict(self, x: Any) -> np.ndarray:
        """Image labels ``(n,)`` int64: 1 when the score exceeds ``threshold_``, else 0."""
        self._check_fitted()
        return (self.decision_function(x) > self.threshold_).astype(np.int64)

    def evaluate(
        self, data: Any, *, return_results: bool = False, shard: bool = False, exact_max_pixels: int | None = None
    ) -> Any:
        """Metrics on labelled test data (design.md names; threshold-free).

        Up to ``exact_max_pixels`` map pixels (images × model resolution) the metrics are computed exactly from
        all maps at once (``metrics_definition``); above, they stream in bounded memory with the binned
        definition (:mod:`ssmad.engine.streaming`; ``metrics["definition"] == "binned"``, with error bounds).

        Args:
            data: A data set folder (its ``test`` split), a list of :class:`~ssmad.data.ImageRecord` or an
                :class:`~ssmad.data.AnomalyImageDataset`.
            return_results: Also return the :class:`~ssmad.engine.evaluate.Collected` maps and scores (a
                :class:`~ssmad.engine.streaming.StreamedResults` without maps when streamed).
            shard: Split the images over the processes of the active process group (every process must call
                this); the metrics equal those of one process and are returned on every process, the results
                on rank 0 only (``None`` elsewhere).
            exact_max_pixels: The exact-metrics budget of one process (default
                :data:`~ssmad.engine.streaming.EXACT_MAX_PIXELS`, 2^28).

        Returns:
            The metrics dict (class means at the top, ``per_category`` below), or ``(metrics, results)``.
        """
        from .engine import distributed, streaming
        from .engine.evaluate import collect, collect_sharded, compute_metrics

        self._check_fitted()
        dataset = self._evaluation_data(data, self.preprocessing_)
        batch = self.trainer.eval_batch_size
        if shard and distributed.is_active():
            sres = collect_sharded(self.net_, dataset, device=self.device_, batch_size=batch)
            metrics = distributed.run_on_main(lambda: compute_metrics(sres, self.metrics_definition))  # type: ignore[arg-type]
            return (metrics, sres) if return_results else metrics
        limit = streaming.EXACT_MAX_PIXELS if exact_max_pixels is None else exact_max_pixels
        if streaming.needs_streaming(len(dataset), self.preprocessing_.output_hw, limit):
            h, w = self.preprocessing_.output_hw
            logger.info(
                "%d images × %d×%d map pixels exceed the exact-metrics budget of %d pixels: streaming binned metrics "
                "(bounded memory; the error bounds are in metrics.json)",
                len(dataset),
                h,
                w,
                limit,
            )
            res = streaming.collect_streaming(self.net_, dataset, device=self.device_, batch_size=batch)
            return (res.metrics, res) if return_results else res.metrics
        res = collect(self.net_, dataset, device=self.device_, batch_size=batch)
        metrics = compute_metrics(res, self.metrics_definition)
        return (metrics, res) if return_results else metrics

    def maps_of(self, data: Any, results: Any, indices: Sequence[int]) -> Any:
        """Recompute the maps of ``results[indices]`` (streamed results keep none) as a ``Collected``.

        Args:
            data: The data given to :meth:`evaluate`.
            results: The results :meth:`evaluate` returned.
            indices: Positions in ``results``.
        """
        from .engine.streaming import maps_of

        self._check_fitted()
        dataset = self._evaluation_data(data, self.preprocessing_)
        return maps_of(
            self.net_, dataset, results, indices, device=self.device_, batch_size=self.trainer.eval_batch_size
        )

    # ------------------------------------------------------------------------------------------ persistence
    def metadata(self) -> dict[str, Any]:
        """What :meth:`save` writes to ``metadata.json``."""
        from .engine.checkpoint import CHECKPOINT_FORMAT, environment

        self._check_fitted()
        try:
            from .metrics import METRICS_VERSION as metrics_version  # type: ignore[attr-defined]
        except ImportError:
            metrics_version = None
        encoder = getattr(self.net_, "encoder", None)
        return {
            "model": self.model_name,
            "format": FORMAT_VERSION,
            "checkpoint_format": CHECKPOINT_FORMAT,
            "config": plain_data(dataclasses.asdict(self.config)),
            "trainer": plain_data(dataclasses.asdict(self.trainer)),
            "threshold_config": plain_data(dataclasses.asdict(self.threshold)),
            "preprocessing": self.preprocessing_.to_dict(),
            "threshold": {"image": self.threshold_, "pixel": self.pixel_threshold_, "how": self.threshold_info_},
            "metrics_definition": self.metrics_definition,
            "metrics_version": metrics_version,
            "training": {
                "n_train": self.n_train_,
                "categories": list(self.categories_),
                "seconds": getattr(self, "train_seconds_", None),
                "history": [{k: v for k, v in r.items() if k != "metrics"} for r in self.history_],
                "encoder_weights": getattr(encoder, "weights_origin", None),
            },
            "ssmad_version": _version(),
            "environment": environment(),
        }

    def save(self, path: str | Path, *, overwrite: bool = False, config: Mapping[str, Any] | None = None) -> Path:
        """Write ``model.safetensors``, ``config.yaml`` and ``metadata.json`` (last) into the folder ``path``.

        Args:
            path: A folder (created when missing).
            overwrite: Replace existing files of the same names; otherwise an existing file is an error and
                nothing is written.
            config: The resolved run configuration for ``config.yaml`` (default: this detector's options).

        Returns:
            The folder.
        """
        from .engine.checkpoint import save_state_dict
        from .engine.runs import atomic_write_json, atomic_write_yaml

        self._check_fitted()
        folder = Path(path)
        names = ("model.safetensors", "config.yaml", "metadata.json")
        if not overwrite:
            existing = [folder / n for n in names if (folder / n).exists()]
            if existing:
                raise InputError(
                    f"{existing[0]} exists already; nothing was written. Fix: save into a new folder, or pass "
                    "overwrite=True."
                )
        folder.mkdir(parents=True, exist_ok=True)
        meta = self.metadata()
        cfg = dict(config) if config is not None else {"model": {"name": self.model_name, **meta["config"]}}
        if config is None:
            cfg.update(trainer=meta["trainer"], threshold=meta["threshold_config"])
            cfg["metrics"] = {"definition": self.metrics_definition}
        save_state_dict(
            self.net_, folder / "model.safetensors", metadata={"model": self.model_name}, overwrite=overwrite
        )
        atomic_write_yaml(folder / "config.yaml", plain_data(cfg), overwrite=overwrite)
        atomic_write_json(folder / "metadata.json", meta, overwrite=overwrite)
        return folder

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> ImageDetector:
        """Load a detector written by :meth:`save` (or a run folder of ``ssmad train``).

        The network is rebuilt from the saved configuration without looking for pretrained encoder weights (the
        saved file holds them), then the weights are loaded strictly.

        Raises:
            InputError: Missing or damaged files, a folder of another model, or weights of another architecture.
        """
        from .data.transforms import Preprocessing
        from .encoders import loading_saved_weights, note_saved_weights
        from .engine.checkpoint import load_weights, read_json
        from .engine.data import resolve_device

        folder = Path(path)
        meta = read_json(folder / "metadata.json")
        if meta.get("model") != cls.model_name:
            raise InputError(
                f"{folder / 'metadata.json'} describes a {meta.get('model')!r} model, not {cls.model_name!r}. Fix: "
                "load it with ssmad.load(folder), which picks the right class."
            )
        options = dict(meta.get("config", {}))
        det = cls(
            trainer={**meta.get("trainer", {}), "device": device},
            threshold=meta.get("threshold_config"),
            metrics_definition=meta.get("metrics_definition", "exact"),
            **options,
        )
        names = {f.name for f in dataclasses.fields(cls.config_class())}
        build = dict(options)
        for key, value in (
            ("pretrained", False),
            ("weights", None),
            ("encoder_weights", None),
            ("allow_download", False),
        ):
            if key in names:
                build[key] = value
        with loading_saved_weights():
            net = det._build_network(det._make_config(build))
        load_weights(net, folder / "model.safetensors")
        note_saved_weights(
            net, folder / "model.safetensors", meta.get("training", {}).get("encoder_weights") or "saved"
        )
        net.to(resolve_device(device)).eval()
        training = meta.get("training", {})
        det.net_ = net
        det.preprocessing_ = Preprocessing.from_dict(meta["preprocessing"])
        det.threshold_ = _float_or_nan(meta["threshold"]["image"])
        det.pixel_threshold_ = _float_or_nan(meta["threshold"]["pixel"])
        det.threshold_info_ = str(meta["threshold"].get("how", ""))
        det.history_ = list(training.get("history", []))
        det.n_train_ = int(training.get("n_train", 0))
        det.categories_ = list(training.get("categories", []))
        return det


def _version() -> str:
    from . import __version__

    return __version__


def _headline(metrics: Mapping[str, Any]) -> str:
    keys = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")
    parts = []
    for k in keys:
        v = metrics.get(k)
        if isinstance(v, int | float) and math.isfinite(v):
            parts.append(f"{k} {v:.4f}")
    return ", ".join(parts) or "no metrics"


class MambaADDetector(ImageDetector):
    """MambaAD (He et al., NeurIPS 2024): frozen CNN encoder → MFF_OCE → Mamba decoder; multi-class.

    Options: the fields of :class:`ssmad.models.mambaad.MambaADConfig` (``encoder``, ``pretrained``,
    ``image_size``, scan settings, ...). Higher score = more anomalous.
    """

    model_name = "mambaad"
    config_path = "ssmad.models.mambaad.config:MambaADConfig"
    network_path = "ssmad.models.mambaad:MambaAD"


class MambaADv2Detector(ImageDetector):
    """MambaADv2, *inspired by* the abstract of arXiv 2606.23126 (no official code or numbers).

    MambaAD with DSS modules (SSD / Mamba-3 HSS-v2 blocks, frequency-enhanced convolutions) and progressive scanning.

    Options: the fields of :class:`ssmad.models.mambaadv2.MambaADv2Config` (``encoder``, ``image_size``, the
    novelty switches ``recurrent_path``, ``matrix_path``, ``trapezoid``, ``rotary``, ``bc_norm``, ``freq_conv``,
    ``progressive`` ...). Higher score = more anomalous.
    """

    model_name = "mambaadv2"
    config_path = "ssmad.models.mambaadv2.config:MambaADv2Config"
    network_path = "ssmad.models.mambaadv2:MambaADv2"


class RD4ADDetector(ImageDetector):
    """Reverse distillation (Deng & Li, CVPR 2022), the CNN analogue of MambaAD, through the same API.

    Options: the fields of :class:`ssmad.models.rd4ad.RD4ADConfig`. Higher score = more anomalous.
    """

    model_name = "rd4ad"
    config_path = "ssmad.models.rd4ad:RD4ADConfig"
    network_path = "ssmad.models.rd4ad:RD4AD"
