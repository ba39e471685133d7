"""The hyperspectral part of ``ssmad predict``: one cube or a folder of cubes, as a job list.

::

    ssmad predict --model acmamba --input scene.mat --out maps/
    ssmad predict --model acmamba --input ABU/ --out maps/            # + rx and lrx, side-by-side table
    ssmad predict --model rx --input cube.hdr --out maps/ --gt gt.png
    ssmad predict --model acmamba --input ABU/ --out maps/ --shard 1/4 -o iterations=50 -o psi=100

Per scene and model: ``<scene>.npy`` (the ``(H, W)`` float64 map, higher = more anomalous), ``<scene>.png`` (image
| ground truth | score map | overlay) and, when the scene has a ground truth, ``<scene>.json`` (the 3-D ROC
metrics ``AUC_DF``, ``AUC_Dtau``, ``AUC_Ftau``, …, the seconds taken and, for ACMamba, its ``diagnostics``: region
homogeneity, gradient conflict, RSAL directions; also in the panel's caption). The main model writes into ``--out``,
the comparison models (``--compare``; for a folder ``rx,lrx`` by default) into ``--out/<model>/``. A folder ends
with a per-scene + mean table of every model side by side, also written as ``summary.json`` / ``summary.csv``.

Scenes are independent jobs: a failing scene (unreadable file, NaN values, a scene too small, …) is reported in
the table and the others go on; the exit code is then 2 when every failure was bad input, else 1. ``--shard K/N``
runs every N-th scene starting at the K-th, so N processes (or cluster jobs) share a folder without changing any
result. Existing outputs are never overwritten unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError, SsmadError

logger = logging.getLogger("ssmad.predict")

#: Models handled here.
HSI_MODELS: tuple[str, ...] = ("acmamba", "rx", "lrx")
#: Comparison models for a folder when ``--compare`` is not given.
DEFAULT_COMPARE: tuple[str, ...] = ("acmamba", "rx", "lrx")
#: Metrics shown in the table.
TABLE_METRICS: tuple[str, ...] = ("AUC_DF", "AUC_Dtau", "AUC_Ftau")
#: Extensions of cube files (a folder is listed with :func:`ssmad.data.hsi.find_cubes`).
CUBE_SUFFIXES: tuple[str, ...] = (".mat", ".hdr", ".npy", ".npz", ".img", ".dat", ".raw", ".bin")


def is_cube_path(path: str | Path) -> bool:
    """Whether ``path`` looks like a hyperspectral input: a cube file, or a folder holding cube files."""
    p = Path(path)
    if p.is_dir():
        return any(q.suffix.lower() in (".mat", ".hdr", ".npy", ".npz") for q in p.iterdir() if q.is_file())
    return p.suffix.lower() in CUBE_SUFFIXES


def add_hsi_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the hyperspectral options of ``ssmad predict`` that the command does not define already.

    ``--model``, ``--input``, ``--out``, ``--run``, ``--device``, ``--gt``, ``--overwrite``, ``--no-overlays`` and the
    dotted ``--model.KEY VALUE`` configuration come from :mod:`ssmad.cli.predict`; this adds ``--seed``,
    ``--data-key``, ``--gt-key``, ``--axes``, ``--compare``, ``--shard`` (and any of the former that is missing, so
    the function also works on a bare parser).
    """
    have = set(parser._option_string_actions)
    g = parser.add_argument_group("hyperspectral cubes (acmamba, rx, lrx)")

    def add(flag: str, *more: str, **kwargs: Any) -> None:
        if flag not in have and not any(m in have for m in more):
            g.add_argument(flag, *more, **kwargs)

    add("--seed", type=int, help="seed of ACMamba's initialisation, samples and masks (default 4, as upstream)")
    add("--data-key", metavar="KEY", help="variable holding the cube in .mat/.npz files (default: data)")
    add("--gt-key", metavar="KEY", help="variable holding the ground truth (default: map)")
    add("--axes", default="HWB", metavar="HWB|BHW|...", help="axis order of the stored array (default HWB)")
    add(
        "--compare",
        metavar="MODELS",
        help="comma-separated models run beside --model for the side-by-side table "
        "(default for a folder: acmamba,rx,lrx; 'none' to skip)",
    )
    add("--shard", metavar="K/N", help="process every N-th scene starting at the K-th (1-based)")
    add("--gt", metavar="FILE", help="ground-truth file for a single cube (image, .npy, .mat, ENVI)")
    add("--overwrite", action="store_true", help="replace existing output files")
    add("--no-overlays", action="store_true", help="do not write the PNG panels")
    add("--device", default="auto", metavar="auto|cpu|cuda", help="where to run (default auto)")
    add(
        "-o",
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="configuration of --model, repeatable (e.g. -o iterations=50; same as --model.iterations 50)",
    )


# ---------------------------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class SceneResult:
    """What one (scene, model) job produced."""

    scene: str
    model: str
    seconds: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    input_error: bool = False
    outputs: list[str] = field(default_factory=list)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["iterations=50", "betas=[0.9, 0.999]"]`` → ``{"iterations": 50, "betas": (0.9, 0.999)}``.

    Raises:
        ConfigError: An item without ``=`` or with an unparsable value.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--model-option {item!r}: expected KEY=VALUE, e.g. -o iterations=50")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"--model-option {item!r}: cannot parse the value ({err})") from err
        out[key.strip().replace("-", "_")] = tuple(value) if isinstance(value, list) else value
    return out


def parse_shard(spec: str | None) -> tuple[int, int]:
    """``"2/4"`` → ``(1, 4)`` (0-based index, count); ``None`` → ``(0, 1)``."""
    if not spec:
        return 0, 1
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {spec!r}: expected K/N with 1 ≤ K ≤ N, e.g. --shard 1/4")
    return k - 1, n


def model_list(main: str, compare: str | None, folder: bool) -> list[str]:
    """The main model first, then the comparison models (no duplicates)."""
    if compare is None:
        extra = list(DEFAULT_COMPARE) if folder else []
    elif compare.strip().lower() in ("", "none"):
        extra = []
    else:
        extra = [m.strip().lower() for m in compare.split(",") if m.strip()]
    models = [main]
    for m in extra:
        if m not in HSI_MODELS:
            raise ConfigError(f"--compare: unknown hyperspectral model {m!r}; choose from {', '.join(HSI_MODELS)}")
        if m not in models:
            models.append(m)
    return models


def output_paths(out: Path, scene: str, model: str, main: str) -> dict[str, Path]:
    """Where a job writes: ``--out`` for the main model, ``--out/<model>/`` for comparison models."""
    folder = out if model == main else out / model
    return {"npy": folder / f"{scene}.npy", "png": folder / f"{scene}.png", "json": folder / f"{scene}.json"}


def diagnostics_caption(diag: dict[str, Any]) -> str:
    """One line for the panel: region count, homogeneity ratio (flagged when high), share of PCGrad projections."""
    parts = [f"{diag['n_regions']} regions"]
    if diag.get("homogeneity_ratio") is not None:
        flag = " (high: try a smaller psi)" if diag.get("homogeneity_warning") else ""
        parts.append(f"homogeneity {diag['homogeneity_ratio']:.3f}{flag}")
    if diag.get("conflict_fraction") is not None:
        cos = diag.get("conflict_cosine_mean")
        parts.append(f"gradient conflict {100 * diag['conflict_fraction']:.0f}% of steps (mean cos {cos:+.2f})")
    if diag.get("rsal_directions", 2) != 2:
        parts.append(f"{diag['rsal_directions']}-direction RSAL")
    return " · ".join(parts)


def run_job(
    scene_path: Path,
    model: str,
    *,
    main: str,
    out: Path,
    config: dict[str, Any],
    load_kwargs: dict[str, Any],
    overwrite: bool,
    png: bool,
    loaded: Any = None,
    detector: Any = None,
    callback: Any = None,
) -> SceneResult:
    """Load a scene (or reuse ``loaded``), score it with one model and write its outputs.

    Never raises for a problem of the scene: the error is returned in the :class:`SceneResult`.
    """
    import numpy as np

    import ssmad

    from ..viz._io import check_writable, write_bytes_atomic, write_text_atomic

    scene = scene_path.stem
    result = SceneResult(scene, model)
    try:
        paths = output_paths(out, scene, model, main)
        for key, p in paths.items():
            if key != "png" or png:
                check_writable(p, overwrite)
        if loaded is None:
            from ..data.hsi import load_cube

            loaded = load_cube(scene_path, **load_kwargs)
        cube, gt = loaded[0], loaded[1]
        t0 = time.perf_counter()
        det = detector if detector is not None else ssmad.create_model(model, **config)
        if detector is not None:
            amap = det.decision_function(cube)
        elif model == "acmamba":
            amap = det.fit(cube, callback=callback).decision_scores_
        else:
            amap = det.fit_predict(cube)
        result.seconds = time.perf_counter() - t0
        buf = io.BytesIO()
        np.save(buf, np.asarray(amap, dtype=np.float64))
        write_bytes_atomic(paths["npy"], buf.getvalue(), overwrite=overwrite)
        result.outputs.append(str(paths["npy"]))
        if gt is not None:
            from ..metrics import hsi_metrics

            result.metrics = {k: float(v) for k, v in hsi_metrics(amap, gt).items()}
        record = {
            "scene": str(scene_path),
            "model": model,
            "shape": list(cube.shape),
            "seconds": result.seconds,
            "higher_is_anomalous": True,
            "config": det.get_params(),
            "metrics": result.metrics or None,
        }
        if hasattr(det, "timings_"):
            record["timings"] = det.timings_
        if hasattr(det, "n_regions_"):
            record["n_regions"] = int(det.n_regions_)
        diagnostics = getattr(det, "diagnostics_", None) if hasattr(det, "conflict_cosine_") else None
        if diagnostics is not None:
            record["diagnostics"] = diagnostics
        write_text_atomic(paths["json"], json.dumps(record, indent=2, default=str), overwrite=overwrite)
        result.outputs.append(str(paths["json"]))
        if png:
            from ..viz.hsi import save_hsi_panel

            caption = f"{scene} — {model}" + (f" · {diagnostics_caption(diagnostics)}" if diagnostics else "")
            save_hsi_panel(paths["png"], cube, amap, gt, overwrite=overwrite, caption=caption)
            result.outputs.append(str(paths["png"]))
    except (InputError, ConfigError) as err:
        result.error, result.input_error = str(err), True
    except SsmadError as err:
        result.error = str(err)
    except Exception as err:  # a failing scene must not stop the job list
        logger.debug("job %s/%s failed", scene, model, exc_info=True)
        result.error = f"{type(err).__name__}: {err}"
    return result


# ---------------------------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------------------------
def run_hsi_predict(args: argparse.Namespace) -> int:
    """Execute ``ssmad predict`` for hyperspectral models; returns the exit code.

    Reads ``args.input``, ``args.out``, ``args.model`` (default acmamba), ``args.run`` (a saved hyperspectral
    detector, optional), ``args.device``, ``args.seed`` and the options of :func:`add_hsi_arguments`.

    Raises:
        InputError: A single input that cannot be read or scored (exit 2 through the CLI).
        ConfigError: Bad options.
    """
    from ..data.hsi import find_cubes

    src = Path(_get(args, "input") or "")
    if not str(_get(args, "input") or ""):
        raise InputError("ssmad predict: --input is required (a cube file or a folder of cubes)")
    if not src.exists():
        raise InputError(f"{src}: no such file or folder; pass a cube (.mat, .hdr, .npy, .npz) or a folder of them")
    out = Path(_get(args, "out") or "predictions")
    run_dir = _get(args, "run")
    detector = None
    if run_dir:
        import ssmad

        detector = ssmad.load(run_dir)
        main = detector.model_name
        if main not in HSI_MODELS:
            raise ConfigError(f"{run_dir}: holds a {main!r} model, not a hyperspectral one ({', '.join(HSI_MODELS)})")
    else:
        main = str(_get(args, "model") or "acmamba").lower()
        if main not in HSI_MODELS:
            raise ConfigError(f"--model {main!r} is not a hyperspectral model; choose from {', '.join(HSI_MODELS)}")
    folder = src.is_dir()
    models = model_list(main, _get(args, "compare"), folder)
    options = {**_dotted_options(args), **parse_options(_get(args, "model_option") or [])}
    configs = {m: _model_config(m, args, options if m == main else {}) for m in models}
    for m, cfg in configs.items():  # validate every configuration before any work
        import ssmad

        ssmad.create_model(m, **cfg)
    load_kwargs = {
        "data_key": _get(args, "data_key"),
        "gt_key": _get(args, "gt_key"),
        "axes": _get(args, "axes") or "HWB",
    }
    gt_path = _get(args, "gt")
    if gt_path:
        if folder:
            raise ConfigError("--gt names the ground truth of one cube; a folder's cubes carry their own (--gt-key)")
        load_kwargs["gt_path"] = gt_path
    scenes = find_cubes(src) if folder else [src]
    k, n = parse_shard(_get(args, "shard"))
    scenes = scenes[k::n]
    if not scenes:
        raise InputError(f"{src}: shard {k + 1}/{n} holds no scenes (only {len(find_cubes(src))} in the folder)")
    overwrite = bool(_get(args, "overwrite"))
    png = not (_get(args, "no_overlays") or _get(args, "no_png"))

    results = _run_jobs(scenes, models, main, out, configs, load_kwargs, overwrite, png, detector)
    failures = [r for r in results if r.error]
    if not folder and len(models) == 1 and failures:
        err = failures[0]
        raise (InputError if err.input_error else SsmadError)(f"{src}: {err.error}")
    suffix = "" if n == 1 else f".shard-{k + 1}-of-{n}"
    _report(results, models, scenes, out, folder or len(models) > 1, overwrite, suffix)
    if failures:
        return 2 if all(r.input_error for r in failures) else 1
    return 0


def _get(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _dotted_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--model.KEY VALUE`` pairs collected by the predict command into ``args.overrides``."""
    items = [f"{key}={text}" for section, key, text in (_get(args, "overrides") or []) if section == "model"]
    return parse_options(items)


def _model_config(model: str, args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    device = _get(args, "device")
    if device:
        cfg["device"] = device
    seed = _get(args, "seed")
    if model == "acmamba" and seed is not None:
        cfg["seed"] = int(seed)
    cfg.update(options)
    return cfg


def _run_jobs(
    scenes: list[Path],
    models: list[str],
    main: str,
    out: Path,
    configs: dict[str, dict[str, Any]],
    load_kwargs: dict[str, Any],
    overwrite: bool,
    png: bool,
    detector: Any,
) -> list[SceneResult]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data.hsi import load_cube

    results: list[SceneResult] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=False, disable=logger.getEffectiveLevel() > logging.WARNING) as bar:
        jobs = bar.add_task("scenes", total=len(scenes) * len(models))
        iters = bar.add_task("training", total=None, visible=False)

        def on_iteration(done: int, total: int) -> None:
            bar.update(iters, completed=done, total=total, visible=True)

        for path in scenes:
            loaded: Any = None
            load_error: SceneResult | None = None
            try:
                loaded = load_cube(path, **load_kwargs)
            except (InputError, ConfigError) as err:
                load_error = SceneResult(path.stem, main, error=str(err), input_error=True)
            except Exception as err:
                load_error = SceneResult(path.stem, main, error=f"{type(err).__name__}: {err}")
            for model in models:
                bar.update(jobs, description=f"{path.name} · {model}")
                if load_error is not None:
                    results.append(SceneResult(path.stem, model, error=load_error.error,
                                               input_error=load_error.input_error))  # fmt: skip
                else:
                    bar.update(iters, completed=0, visible=False, description=f"{model} training")
                    results.append(
                        run_job(
                            path, model, main=main, out=out, config=configs[model], load_kwargs=load_kwargs,
                            overwrite=overwrite, png=png, loaded=loaded,
                            detector=detector if model == main else None, callback=on_iteration,
                        )
                    )  # fmt: skip
                    bar.update(iters, visible=False)
                last = results[-1]
                if last.error and len(scenes) * len(models) > 1:  # a lone job's error is raised by the caller
                    logger.warning("%s · %s failed: %s", path.name, model, last.error)
                bar.advance(jobs)
    return results


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.{digits}f}"


def _report(
    results: list[SceneResult],
    models: list[str],
    scenes: list[Path],
    out: Path,
    table: bool,
    overwrite: bool,
    suffix: str = "",
) -> None:
    """Print the per-scene + mean table and write ``summary.json`` / ``summary.csv``."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from ..viz._io import write_text_atomic

    by = {(r.scene, r.model): r for r in results}
    names = [p.stem for p in scenes]
    rows: list[dict[str, Any]] = []
    for scene in names:
        for m in models:
            r = by[(scene, m)]
            rows.append({"scene": scene, "model": m, "seconds": r.seconds, **r.metrics, "error": r.error})
    means: dict[str, dict[str, float]] = {}
    for m in models:
        ok = [by[(s, m)] for s in names if not by[(s, m)].error]
        means[m] = {"seconds": float(np.mean([r.seconds for r in ok])) if ok else float("nan")}
        for key in TABLE_METRICS:
            vals = [r.metrics[key] for r in ok if key in r.metrics]
            means[m][key] = float(np.mean(vals)) if vals else float("nan")
        means[m]["scenes"] = len(ok)

    console = Console(stderr=False)
    if table:
        t = Table(
            title=f"hyperspectral anomaly detection, {len(names)} scene(s)",
            caption="AUC_DF, AUC_Dτ: higher is better; AUC_Fτ: lower is better; s: seconds per scene",
        )
        t.add_column("scene")
        t.add_column("model")
        for key in TABLE_METRICS:
            t.add_column(key.replace("tau", "τ"), justify="right")
        t.add_column("s", justify="right")
        for scene in names:
            for i, m in enumerate(models):
                r = by[(scene, m)]
                values = ["failed", "", ""] if r.error else [_fmt(r.metrics.get(k)) for k in TABLE_METRICS]
                t.add_row(scene if i == 0 else "", m, *values, _fmt(r.seconds, 1), end_section=i == len(models) - 1)
        for i, m in enumerate(models):
            label = f"mean ({means[m]['scenes']})" if i == 0 else ""
            t.add_row(label, m, *(_fmt(means[m][k]) for k in TABLE_METRICS), _fmt(means[m]["seconds"], 1), style="bold")
        console.print(t)
    for r in results:
        if r.error:
            console.print(f"[red]failed[/red] {r.scene} · {r.model}: {r.error}", markup=True, highlight=False)
    if not table:
        r = results[0]
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items() if k in TABLE_METRICS)
        console.print(f"{r.scene} · {r.model}: {r.seconds:.1f}s" + (f", {metrics}" if metrics else "")
                      + f" → {', '.join(r.outputs)}", highlight=False)  # fmt: skip
        return
    summary = {"models": models, "scenes": rows, "mean": means}
    json_path, csv_path = out / f"summary{suffix}.json", out / f"summary{suffix}.csv"
    if not overwrite and (json_path.exists() or csv_path.exists()):
        logger.warning("%s exists already and was left unchanged (pass --overwrite to replace it)", json_path)
        return
    write_text_atomic(json_path, json.dumps(summary, indent=2, default=str), overwrite=True)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["scene", "model", *TABLE_METRICS, "seconds", "error"])
    for row in rows:
        writer.writerow([row["scene"], row["model"], *(row.get(k, "") for k in TABLE_METRICS), row["seconds"],
                         row["error"] or ""])  # fmt: skip
    for m in models:
        writer.writerow(["mean", m, *(means[m][k] for k in TABLE_METRICS), means[m]["seconds"], ""])
    write_text_atomic(csv_path, buf.getvalue(), overwrite=True)
    console.print(f"maps and metrics in {out} ({json_path.name}, {csv_path.name})", highlight=False)
