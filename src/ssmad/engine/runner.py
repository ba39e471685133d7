"""Whole runs behind ``ssmad train``, ``ssmad test`` and ``ssmad predict``.

:func:`train_run` — discover the data, claim a run folder, write ``config.yaml`` at once (so even a failed run
documents itself), train with periodic evaluation and resume checkpoints, evaluate the final model on the test
images, then write ``metrics.json`` / ``metrics.csv``, ``images/`` overlays, ``report.html`` and finally the model
(``model.safetensors`` + ``metadata.json``; a folder with ``metadata.json`` is a finished run). The resume state
in ``checkpoints/`` is removed after success unless ``output.keep_checkpoint``.

:func:`evaluate_run` — evaluate a finished run on (possibly other) labelled data into a new ``tests/v<N>`` folder of
the run.

:func:`predict_run` — score new images with a finished run: ``maps/<name>.npy`` (float32 at the image's
resolution), ``overlays/<name>.png`` and ``scores.json`` (score, label, threshold per image; unreadable files
listed under ``skipped``). Existing outputs are never replaced unless asked.

Under several processes (``torchrun`` or ``--devices N``; :mod:`ssmad.engine.distributed`) every function is a
collective call: rank 0 claims the output folder and tells the others, the work is split over the processes, and
only rank 0 writes files (prediction: each process writes the maps and overlays of its own images, rank 0 writes
``scores.json``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from . import distributed
from .config import RunConfig
from .runs import atomic_write_json, atomic_write_yaml, create_run_dir, list_versions, resolve_run, safe_name

logger = logging.getLogger(__name__)

__all__ = ["RunResult", "evaluate_run", "predict_run", "train_run", "write_evaluation"]

HEADLINE = ("image_AUROC", "image_AP", "image_F1Max", "pixel_AUROC", "pixel_AP", "pixel_F1Max", "pixel_AUPRO")


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        run_dir: The run folder.
        metrics: Final metrics (``ssmad.metrics.evaluate`` dictionary), or ``None`` without test images.
        report: Path of ``report.html`` (``None`` when not written).
        detector: The trained detector.
    """

    run_dir: Path
    metrics: dict[str, Any] | None
    report: Path | None
    detector: Any


def _discover(config: RunConfig) -> tuple[list[Any], list[Any]]:
    from ..data.layout import discover

    if config.data.root is None and config.data.normal_dir is None:
        raise InputError(
            "no training data was given. Fix: pass --data.root DATASET_FOLDER (an MVTec-style root with "
            "<category>/train/good/, or one category folder), or set data.root in the configuration file."
        )
    records = discover(**config.data.discover_kwargs())
    train = [r for r in records if r.split == "train" and r.label == 0]
    test = [r for r in records if r.split == "test"]
    if not train:
        raise InputError(
            f"the data under {config.data.root} holds no normal training image (<category>/train/good/). Fix: "
            "check the folder or --data.categories."
        )
    return train, test


def _category_label(config: RunConfig, train: Sequence[Any]) -> str:
    cats = sorted({r.category for r in train})
    return cats[0] if len(cats) == 1 else "all"


def _select_overlays(results: Any, n: int) -> list[int]:
    """Indices of the images to render: per category, spread over the score order (extremes included)."""
    if n == 0 or len(results) == 0:
        return []
    if n < 0:
        return list(range(len(results)))
    cats = sorted(set(results.categories))
    per_cat = max(1, math.ceil(n / len(cats)))
    chosen: list[int] = []
    for c in cats:
        idx = [i for i, cat in enumerate(results.categories) if cat == c]
        idx.sort(key=lambda i: -results.scores[i])
        if len(idx) <= per_cat:
            chosen += idx
        else:
            picks = np.unique(np.round(np.linspace(0, len(idx) - 1, per_cat)).astype(int))
            chosen += [idx[p] for p in picks]
    return sorted(chosen)[: max(n, len(cats))]


def _overlay_name(path: str, category: str, defect: str) -> str:
    return f"{safe_name(category)}/{safe_name(defect)}_{safe_name(Path(path).stem)}.png"


def write_evaluation(
    out_dir: Path,
    metrics: Mapping[str, Any],
    results: Any,
    *,
    pixel_threshold: float | None,
    images: int,
    report: bool,
    title: str,
    info: Mapping[str, Any],
    maps_for: Callable[[list[int]], Any] | None = None,
) -> Path | None:
    """Write ``metrics.json`` / ``metrics.csv``, ``images/`` overlays and ``report.html`` into ``out_dir``.

    Streamed results (:class:`~ssmad.engine.streaming.StreamedResults`, no maps kept) get the maps of the pictures
    shown — the overlays and the report's cases — from ``maps_for(indices)``; the report's curves then come from
    the streamed histograms over all images.

    Returns:
        The report path (``None`` when ``report`` is false).
    """
    from ..viz import global_range, save_overlay, write_metrics_files, write_report
    from .streaming import StreamedResults, shown_indices

    write_metrics_files(out_dir, metrics)
    chosen = _select_overlays(results, images)
    curves = None
    if isinstance(results, StreamedResults):
        if maps_for is None:
            raise InputError("write_evaluation: streamed results need maps_for to draw their pictures.")
        n, n_anomalous = len(results), int(results.labels.sum())
        shown = shown_indices(results, chosen) if report else sorted(chosen)
        curves = results.curves
        info = {**info, "images": f"{n} ({n - n_anomalous} normal, {n_anomalous} anomalous; maps recomputed for the "
                f"{len(shown)} pictured)"}  # fmt: skip
        position = {i: k for k, i in enumerate(shown)}
        chosen = [position[i] for i in chosen]
        results = maps_for(shown) if shown else results
    if chosen:
        lo_hi = global_range(results.maps[i] for i in chosen)
        for i in chosen:
            has_gt = results.labels[i] == 1 and bool(results.has_mask[i])
            save_overlay(
                out_dir / "images" / _overlay_name(results.paths[i], results.categories[i], results.defect_types[i]),
                results.paths[i],
                results.maps[i],
                gt_mask=results.masks[i] if has_gt else None,
                pred_mask=None if pixel_threshold is None else results.maps[i] > pixel_threshold,
                value_range=lo_hi,
                caption=f"{results.categories[i]} / {results.defect_types[i]}  score {results.scores[i]:.4g}",
            )
        logger.info("wrote %d overlays to %s", len(chosen), out_dir / "images")
    if not report:
        return None
    records = [
        {
            "image_path": results.paths[i],
            "category": results.categories[i],
            "label": int(results.labels[i]),
            "score": float(results.scores[i]),
            "anomaly_map": results.maps[i],
            "gt_mask": results.masks[i] if results.labels[i] == 1 and results.has_mask[i] else None,
            "pred_mask": None if pixel_threshold is None else results.maps[i] > pixel_threshold,
        }
        for i in range(len(results))
    ]
    return write_report(
        out_dir, metrics, records, curves=curves, title=title, info={k: str(v) for k, v in info.items()}
    )


def _metrics_lines(metrics: Mapping[str, Any]) -> str:
    parts = []
    for key in HEADLINE:
        value = metrics.get(key)
        if isinstance(value, int | float) and math.isfinite(value):
            parts.append(f"{key} {100 * value:.1f}")
    return ", ".join(parts)


def train_run(
    config: RunConfig,
    *,
    resume: str | Path | bool | None = None,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train, evaluate and save one run (see the module docstring).

    Args:
        config: The resolved run configuration.
        resume: ``True`` → continue the newest unfinished run of this model / data set / category; a path →
            continue that run folder; ``None`` / ``False`` → a new ``v<N>`` folder.
        callbacks: Passed to the training loop.

    Returns:
        The :class:`RunResult`.
    """
    from ..registry import create_model

    distributed.setup(config.trainer.device)  # joins the process group when started by torchrun / --devices
    train, test = _discover(config)
    category = _category_label(config, train)
    dataset_name = config.data.dataset_name()
    det = create_model(
        config.model_name,
        trainer=config.trainer,
        threshold=config.threshold,
        metrics_definition=config.metrics.definition,
        **config.model_options,
    )
    resolved = {**config.to_dict(), "model": {"name": config.model_name, **_model_dict(det)}}
    det.check_network()  # an unknown encoder or foreign weights fail here, before a run folder is claimed

    def claim() -> Path:
        if resume:
            found = _resume_dir(config, dataset_name, category, resume)
            logger.info("resuming the run in %s", found)
            return found
        new = create_run_dir(config.output.root, config.model_name, dataset_name, category)
        atomic_write_yaml(new / "config.yaml", resolved)
        return new

    run_dir = distributed.run_on_main(claim)  # one folder, claimed by rank 0
    checkpoint_dir = run_dir / "checkpoints"
    history_path = run_dir / "metrics_history.json"

    det.fit(
        train,
        checkpoint_dir=checkpoint_dir,
        resume=bool(resume),
        callbacks=callbacks,
        evaluate_on=test if test and config.trainer.eval_every else None,
    )
    evaluations = [{"epoch": r["epoch"], **r["metrics"]} for r in det.history_ if "metrics" in r]
    metrics: dict[str, Any] | None = None
    report = None
    info = {
        "model": config.model_name,
        "dataset": dataset_name,
        "categories": ", ".join(det.categories_),
        "run folder": str(run_dir),
        "epochs": config.trainer.epochs,
        "threshold": f"{det.threshold_:.5g} ({det.threshold_info_})",
    }
    results: Any = None
    if test:
        metrics, results = det.evaluate(test, return_results=True, shard=True)
        metrics["epoch"] = config.trainer.epochs
    if not distributed.is_main():  # the other processes are done: rank 0 writes
        return RunResult(run_dir=run_dir, metrics=metrics, report=None, detector=det)
    if metrics is not None:
        evaluations.append({"epoch": config.trainer.epochs, **{k: v for k, v in metrics.items() if k in HEADLINE}})
        report = write_evaluation(
            run_dir,
            metrics,
            results,
            pixel_threshold=det.pixel_threshold_,
            images=config.output.images,
            report=config.output.report,
            title=f"{config.model_name} on {dataset_name} ({category})",
            info=info,
            maps_for=lambda indices: det.maps_of(test, results, indices),
        )
        logger.info("final metrics (×100): %s", _metrics_lines(metrics))
    else:
        logger.warning("no test images were found: the run has no metrics")
    atomic_write_json(history_path, {"history": det.history_, "evaluations": evaluations}, overwrite=True)
    _finish(det, run_dir, resolved)
    if not config.output.keep_checkpoint and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return RunResult(run_dir=run_dir, metrics=metrics, report=report, detector=det)


def _model_dict(det: Any) -> dict[str, Any]:
    from ..engine.runs import plain_data

    return plain_data(dataclasses.asdict(det.config))


def _finish(det: Any, run_dir: Path, resolved: Mapping[str, Any]) -> None:
    """Write the model files; ``config.yaml`` may exist already (written at the start of the run)."""
    from .checkpoint import save_state_dict

    save_state_dict(det.net_, run_dir / "model.safetensors", metadata={"model": det.model_name}, overwrite=True)
    if not (run_dir / "config.yaml").exists():
        atomic_write_yaml(run_dir / "config.yaml", dict(resolved))
    atomic_write_json(run_dir / "metadata.json", det.metadata())
    logger.info("saved the model to %s", run_dir)


def _resume_dir(config: RunConfig, dataset: str, category: str, resume: str | Path | bool) -> Path:
    from .runs import run_parent

    if resume is True:
        parent = run_parent(config.output.root, config.model_name, dataset, category)
        unfinished = [v for v in list_versions(parent) if not (parent / f"v{v}" / "metadata.json").exists()]
        if not unfinished:
            raise InputError(
                f"there is no unfinished run under {parent} to resume (every run there has a metadata.json, or there "
                "is none). Fix: start a new run without --resume, or pass the run folder: --resume PATH."
            )
        return parent / f"v{unfinished[-1]}"
    run_dir = Path(resume)
    if run_dir.name == "latest":
        run_dir = run_dir.resolve()
    if not run_dir.is_dir():
        raise InputError(f"the run folder {run_dir} given to --resume does not exist. Fix: check the path.")
    if (run_dir / "metadata.json").exists():
        raise InputError(
            f"the run in {run_dir} has finished already (it has a metadata.json); nothing to resume. Fix: start a "
            "new run, or evaluate this one with `ssmad test --run`."
        )
    if not (run_dir / "checkpoints").is_dir():
        logger.warning("%s has no checkpoints/: the training restarts from the first epoch in this folder", run_dir)
    return run_dir


def evaluate_run(
    run: str | Path,
    *,
    data: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
    definition: str | None = None,
    images: int = 64,
    report: bool = True,
    threshold: float | None = None,
    device: str = "auto",
) -> tuple[Path, dict[str, Any]]:
    """Evaluate a finished run on labelled data.

    Args:
        run: The run folder (or ``latest``).
        data: Data options overriding the run's ``data`` section (e.g. ``{"root": ...}``).
        out_dir: Output folder (default: a new ``<run>/tests/v<N>``); must not hold results already.
        definition: Metric definition (default: the run's).
        images: Overlays to write (-1 all, 0 none).
        report: Write ``report.html``.
        threshold: Override the image and pixel thresholds used for predicted masks.
        device: Where to run.

    Returns:
        ``(output folder, metrics)``.
    """
    import os

    from ..data.layout import discover
    from ..registry import load
    from .config import DataConfig, build_section, load_yaml

    dev = distributed.setup(device)  # joins the process group when started by --devices / torchrun
    run_dir = resolve_run(run)
    det = load(run_dir) if device == "auto" and not distributed.is_active() else _load_on(run_dir, str(dev))
    saved = load_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    data_values = {**(saved.get("data") or {}), **(data or {})}
    data_cfg = build_section(DataConfig, data_values, "data", f"{run_dir / 'config.yaml'} + command line")
    if data_cfg.root is None and data_cfg.normal_dir is None:
        raise InputError(f"{run_dir}: the run records no data root. Fix: pass --data.root DATASET_FOLDER.")
    records = [r for r in discover(**{**data_cfg.discover_kwargs(), "split": "test"}) if r.split == "test"]
    if not records:
        raise InputError(
            f"no test images were found under {data_cfg.root} (expected <category>/test/...). Fix: point --data.root "
            "at a data set with a test split."
        )
    if definition is not None:
        det.metrics_definition = definition
    if threshold is not None:
        det.set_threshold(threshold, threshold)
    metrics, results = det.evaluate(records, return_results=True, shard=True)

    def claim() -> Path:
        if out_dir is not None:
            chosen = Path(out_dir)
            chosen.mkdir(parents=True, exist_ok=True)
            return chosen
        parent = run_dir / "tests"
        parent.mkdir(exist_ok=True)
        n = (list_versions(parent) or [0])[-1] + 1
        while True:
            try:
                os.mkdir(parent / f"v{n}")
                return parent / f"v{n}"
            except FileExistsError:
                n += 1

    out = distributed.run_on_main(claim)
    if not distributed.is_main():
        return out, metrics
    dataset_name = data_cfg.dataset_name()
    path = write_evaluation(
        out,
        metrics,
        results,
        pixel_threshold=det.pixel_threshold_,
        images=images,
        report=report,
        title=f"{det.model_name} on {dataset_name}",
        info={"model": det.model_name, "run": str(run_dir), "dataset": dataset_name, "data root": data_cfg.root},
        maps_for=lambda indices: det.maps_of(records, results, indices),
    )
    logger.info("metrics (×100): %s", _metrics_lines(metrics))
    if path is not None:
        logger.info("report: %s", path)
    return out, metrics


def _load_on(run_dir: Path, device: str) -> Any:
    from ..registry import detector_class
    from .checkpoint import read_json

    name = read_json(run_dir / "metadata.json").get("model")
    return detector_class(str(name)).load(run_dir, device=device)


#: Largest input image, in pixels, for which ``ssmad predict`` writes maps and overlays at the input resolution
#: (2^23, e.g. 2896×2896). Peak memory grows by about 130 bytes per input pixel (float map, mask, overlay panels):
#: a 4096×4096 image needs about 2.1 GB (``benchmarks/bench_memory.py``).
MAX_PREDICT_PIXELS = 2**23
#: Bytes of peak memory per input pixel at the input resolution (measured at 4096×4096, rounded up).
BYTES_PER_PIXEL = 130


def _input_pixels(source: Any) -> tuple[int, int] | None:
    """``(width, height)`` of an input image from its header or array shape, ``None`` when unreadable."""
    from ..data.imageio import image_size

    if isinstance(source, str | Path):
        try:
            return image_size(source)
        except InputError:
            return None  # the prediction loop lists it as skipped
    shape = np.shape(source)
    if len(shape) == 3 and shape[-1] not in (1, 3, 4) and shape[0] in (1, 3, 4):
        shape = shape[1:]  # channels first
    return (int(shape[1]), int(shape[0])) if len(shape) >= 2 else None


def check_predict_sizes(items: Sequence[tuple[Any, str]], max_pixels: int, model_hw: Sequence[int]) -> None:
    """Refuse inputs too large for maps and overlays at their own resolution, before anything is decoded.

    Raises:
        InputError: An input of more than ``max_pixels`` pixels (the message gives the limit and the fixes).
    """
    for source, name in items:
        wh = _input_pixels(source)
        if wh is None or wh[0] * wh[1] <= max_pixels:
            continue
        w, h = wh
        need = w * h * BYTES_PER_PIXEL / 2**30
        raise InputError(
            f"{name} is {w}×{h} = {w * h:,} pixels, more than the limit of {max_pixels:,} pixels for which ssmad "
            f"predict writes anomaly maps and overlays at the input resolution (they would need about {need:.1f} GB "
            f"of memory). Nothing was written. Fix: add --map-resolution model (maps and overlays at the model's "
            f"{model_hw[0]}×{model_hw[1]}; the scores are the same), or --max-pixels {w * h} if the memory is "
            "there, or downscale the image."
        )


def predict_run(
    run: str | Path,
    inputs: Any,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    threshold: float | None = None,
    pixel_threshold: float | None = None,
    save_maps: bool = True,
    overlays: bool = True,
    device: str = "auto",
    map_resolution: str = "input",
    max_pixels: int = MAX_PREDICT_PIXELS,
) -> dict[str, Any]:
    """Score new images with a finished run and write maps, overlays and ``scores.json``.

    With maps at the input resolution each input may have at most ``max_pixels`` pixels, checked from the file
    headers before any work.

    Args:
        run: The run folder (or a folder written by ``det.save``).
        inputs: An image file, a folder of images, a list of paths, or an array batch.
        out_dir: Output folder (created); existing files in it are not replaced unless ``overwrite``.
        overwrite: Replace existing outputs.
        threshold: Override the image threshold.
        pixel_threshold: Override the pixel threshold (default: ``threshold`` when that is given).
        save_maps: Write ``maps/<name>.npy``.
        overlays: Write ``overlays/<name>.png``.
        device: Where to run.
        map_resolution: ``input`` (maps, masks and overlays at each image's size) or ``model`` (at the model's
            input size: bounded memory for any image size).
        max_pixels: Largest input (pixels) accepted with ``map_resolution="input"``.

    Returns:
        The content of ``scores.json``.

    Raises:
        InputError: Unusable inputs, an input above ``max_pixels``, or existing outputs.
    """
    from ..data.images import _expand_inputs
    from ..registry import load
    from ..viz import save_overlay
    from .predict import predict_images

    dev = distributed.setup(device)  # joins the process group when started by --devices / torchrun
    if map_resolution not in ("input", "model"):
        raise InputError(f"map_resolution must be input or model, got {map_resolution!r}")
    at_input = map_resolution == "input"
    run_dir = resolve_run(run)
    det = load(run_dir) if device == "auto" and not distributed.is_active() else _load_on(run_dir, str(dev))
    if threshold is not None or pixel_threshold is not None:
        det.set_threshold(threshold, pixel_threshold if pixel_threshold is not None else threshold)
    out = Path(out_dir)
    scores_path = out / "scores.json"

    def check_out() -> None:
        if scores_path.exists() and not overwrite:
            raise InputError(
                f"{scores_path} exists already; nothing was written. Fix: choose another --out folder or pass "
                "--overwrite."
            )

    distributed.run_on_main(check_out)
    if at_input:
        check_predict_sizes(_expand_inputs(inputs), max_pixels, det.preprocessing_.output_hw)
    skipped: list[str] = []
    if distributed.is_active():  # this process's share of the inputs
        preds = predict_images(
            det.net_,
            inputs,
            det.preprocessing_,
            device=det.device_,
            threshold=det.threshold_,
            pixel_threshold=det.pixel_threshold_,
            batch_size=det.trainer.eval_batch_size,
            skipped=skipped,
            shard=True,
            input_resolution=at_input,
        )
    else:
        preds = det.predict_maps(inputs, input_resolution=at_input, skipped=skipped)
    # file names are chosen over all inputs in order (as one process would), then each process takes its own
    gathered = distributed.gather_to_main([p.image_path for p in preds])
    names = distributed.run_on_main(lambda: _split_names(gathered or []))[distributed.rank()]
    rows = []
    failure: Exception | None = None
    try:
        for p, name in zip(preds, names, strict=True):
            row: dict[str, Any] = {
                "image_path": p.image_path,
                "pred_score": p.pred_score,
                "pred_label": int(bool(p.pred_label)),
                "anomalous_pixels": int(p.pred_mask.sum()) if p.pred_mask is not None else None,
            }
            if save_maps:
                import io

                from .runs import atomic_write_bytes

                buf = io.BytesIO()
                np.save(buf, p.anomaly_map.astype(np.float32), allow_pickle=False)
                atomic_write_bytes(out / "maps" / f"{name}.npy", buf.getvalue(), overwrite=overwrite)
                row["map"] = f"maps/{name}.npy"
            if overlays:
                image = p.image_path if not p.image_path.startswith("array[") else _array_item(inputs, p.image_path)
                save_overlay(
                    out / "overlays" / f"{name}.png",
                    image,
                    p.anomaly_map,
                    pred_mask=p.pred_mask,
                    overwrite=overwrite,
                    size=None if at_input else p.anomaly_map.shape,
                    caption=f"score {p.pred_score:.4g} ({'anomalous' if p.pred_label else 'normal'})",
                )
                row["overlay"] = f"overlays/{name}.png"
            rows.append(row)
    except Exception as err:
        if not distributed.is_active():
            raise
        failure = err  # handed to rank 0 below, so no process waits for one that failed
    parts = distributed.gather_to_main((rows, skipped, failure))
    return distributed.run_on_main(
        lambda: _write_scores(parts or [], run_dir, det, scores_path, overwrite, out, map_resolution)
    )


def _split_names(paths_by_rank: list[list[str]]) -> list[list[str]]:
    """Output file stems for the predictions of every process, unique over all of them, in input order."""
    used: set[str] = set()
    out: list[list[str]] = []
    for paths in paths_by_rank:
        names = []
        for path in paths:
            stem = safe_name(Path(path).stem if not path.startswith("array[") else path)
            name, k = stem, 1
            while name in used:
                k += 1
                name = f"{stem}_{k}"
            used.add(name)
            names.append(name)
        out.append(names)
    return out


def _write_scores(
    parts: list[tuple[list[dict[str, Any]], list[str], Exception | None]],
    run_dir: Path,
    det: Any,
    scores_path: Path,
    overwrite: bool,
    out: Path,
    map_resolution: str,
) -> dict[str, Any]:
    """Rank 0: join the rows of every process (rank order = input order) and write ``scores.json``."""
    for _, _, failure in parts:
        if failure is not None:
            raise failure
    rows = [row for part_rows, _, _ in parts for row in part_rows]
    skipped = [msg for _, part_skipped, _ in parts for msg in part_skipped]
    summary = {
        "run": str(run_dir),
        "model": det.model_name,
        "threshold": det.threshold_,
        "pixel_threshold": det.pixel_threshold_,
        "map_resolution": map_resolution,
        "n_images": len(rows),
        "n_anomalous": sum(r["pred_label"] for r in rows),
        "images": rows,
        "skipped": skipped,
    }
    atomic_write_json(scores_path, summary, overwrite=overwrite)
    logger.info("scored %d image(s) (%d anomalous) → %s", len(rows), summary["n_anomalous"], out)
    return summary


def _array_item(inputs: Any, name: str) -> Any:
    """The in-memory image called ``array[i]`` in ``inputs`` (named as :class:`~ssmad.data.InferenceDataset` does)."""
    i = int(name[len("array[") : -1])
    if hasattr(inputs, "shape") and not isinstance(inputs, Sequence):
        arr = np.asarray(inputs)
        stacked = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4) and arr.shape[0] not in (1, 3, 4))
        return arr[i] if stacked else arr
    if isinstance(inputs, Sequence) and not isinstance(inputs, str):
        return inputs[i]
    return inputs
