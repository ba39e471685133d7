"""ACMamba sweeps: one option over several values, on a folder of scenes, mean over seeds (``ssmad bench acmamba``).

::

    ssmad bench acmamba --sweep psi=50,100,150,300 --input ABU/ --seeds 4,0,1
    ssmad bench acmamba --sweep rsal_directions=1,2              # on generated scenes

For every value of the swept option, ACMamba is fitted on every scene with every seed (all other options as given
with ``-o``, else the defaults); the row reports the mean ``AUC(D,F)`` and ``AUC(F,τ)`` over scenes and seeds,
the margin of ``AUC(D,F)`` over global RX on the same scenes (RX has no seed and no swept option, so it is fitted
once per scene and printed as its own row), the seconds per fit, the range of the per-seed ``AUC(D,F)`` means
(one seed moves ACMamba by a few points, so differences inside that range are noise), and the mean of the
diagnostics that explain a result: the region homogeneity ratio and the share of training steps in which the two
consensus losses conflicted (PCGrad projected).

Scenes: every cube with a ground truth in ``--input`` (cubes without one are skipped with a warning); without
``--input``, scenes drawn by the synthetic generator (:func:`ssmad.data.synthetic.hsi.make_hsi_scene`) at the sizes
of ``--scenes``. Scene order, seeds and values are fixed before any fit, so two runs print the same AUCs. One
untimed warm-up fit of RX and of ACMamba (one iteration) comes first, so one-off costs (imports, loading the
compiled scan kernel) do not land on the first row.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError

logger = logging.getLogger(__name__)

__all__ = ["SweepRow", "format_sweep", "parse_sweep", "run_acmamba_sweep", "sweep_scenes"]

#: Generated scenes when no ``--input`` is given (``HxWxB``).
DEFAULT_SCENES = "80x80x60,64x96x48"


@dataclass
class SweepRow:
    """The figures of one swept value (or of the RX reference row, ``value = None``).

    Attributes:
        value: The option's value; ``None`` for RX.
        auc_df: Mean ``AUC(D,F)`` over scenes and seeds.
        auc_ftau: Mean ``AUC(F,τ)`` (lower = better background suppression).
        margin_vs_rx: ``auc_df`` minus RX's mean ``AUC(D,F)`` on the same scenes.
        seconds: Mean seconds per fit (``fit_predict`` of one scene).
        seed_range: ``(min, max)`` over seeds of the per-seed mean ``AUC(D,F)``.
        homogeneity: Mean region homogeneity ratio.
        conflict_fraction: Mean share of training steps with a PCGrad projection (NaN where not measured).
        per_fit: One dict per (scene, seed): scene, seed, AUC_DF, AUC_Ftau, seconds and the diagnostics.
    """

    value: Any
    auc_df: float
    auc_ftau: float
    margin_vs_rx: float
    seconds: float
    seed_range: tuple[float, float] = (math.nan, math.nan)
    homogeneity: float = math.nan
    conflict_fraction: float = math.nan
    per_fit: list[dict[str, Any]] = field(default_factory=list)


def parse_sweep(spec: str) -> tuple[str, list[Any]]:
    """``"psi=50,100"`` → ``("psi", [50, 100])``; values are read as YAML scalars.

    Raises:
        ConfigError: No ``=``, no values, a value that does not parse, or a key ACMamba does not have.
    """
    import yaml

    from ..models.acmamba.config import ACMambaConfig

    key, sep, raw = spec.partition("=")
    key = key.strip().replace("-", "_")
    known = sorted(f.name for f in fields(ACMambaConfig))
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--sweep {spec!r}: expected KEY=V1,V2,… e.g. --sweep psi=50,100,150,300")
    if key not in known:
        raise ConfigError(f"--sweep {spec!r}: ACMamba has no option {key!r}; options: {', '.join(known)}")
    values = []
    for item in raw.split(","):
        try:
            values.append(yaml.safe_load(item.strip()))
        except yaml.YAMLError as err:
            raise ConfigError(f"--sweep {spec!r}: cannot read the value {item!r} ({err})") from err
    if any(v is None for v in values):
        raise ConfigError(f"--sweep {spec!r}: an empty value; separate the values with single commas")
    return key, values


def sweep_scenes(input_dir: str | Path | None, scenes: str = DEFAULT_SCENES) -> list[tuple[str, Any, Any]]:
    """``(name, cube (H, W, B), gt (H, W))`` of every scene with a ground truth.

    Raises:
        InputError: The folder holds no readable cube with a ground truth, or ``scenes`` is malformed.
    """
    if input_dir is not None:
        from ..data.hsi import find_cubes, load_cube

        out = []
        for path in find_cubes(input_dir):
            cube, gt, _ = load_cube(path)
            if gt is None:
                logger.warning("%s: no ground truth, skipped (the sweep needs one to compute AUCs)", path)
                continue
            out.append((path.stem, cube, gt))
        if not out:
            raise InputError(
                f"{input_dir}: none of the cubes has a ground truth; the sweep needs one per scene (a 'map'/'gt' "
                "variable in the .mat file, or a <name>_gt file). Fix: point --input at labelled scenes."
            )
        return out
    from ..data.synthetic.hsi import make_hsi_scene

    out = []
    for i, item in enumerate(s for s in scenes.split(",") if s.strip()):
        try:
            h, w, b = (int(v) for v in item.lower().split("x"))
        except ValueError as err:
            raise InputError(f"--scenes {item!r}: expected HxWxB, e.g. 80x80x60") from err
        scene = make_hsi_scene(h, w, b, seed=i)
        out.append((f"synthetic-{item}-seed{i}", scene.cube, scene.gt))
    if not out:
        raise InputError("--scenes is empty; give sizes like 80x80x60,64x96x48")
    return out


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def run_acmamba_sweep(
    key: str,
    values: Sequence[Any],
    scenes: Sequence[tuple[str, Any, Any]],
    *,
    seeds: Sequence[int] = (4,),
    options: dict[str, Any] | None = None,
    on_fit: Callable[[str], None] | None = None,
) -> tuple[SweepRow, list[SweepRow]]:
    """Fit RX once per scene and ACMamba per value × scene × seed.

    Args:
        key: The swept ACMamba option.
        values: Its values, in the order of the rows.
        scenes: ``(name, cube, gt)`` triples (:func:`sweep_scenes`).
        seeds: ACMamba seeds; each row is the mean over them.
        options: Other ACMamba options, the same for every fit.
        on_fit: Called with a short description before every fit (progress).

    Returns:
        The RX reference row and one row per value.

    Raises:
        ConfigError: ``options`` fix the swept key too, or a value is not valid for the option.
    """
    import ssmad
    from ssmad.metrics import hsi_metrics

    options = dict(options or {})
    if key in options:
        raise ConfigError(f"--sweep {key} and -o {key}=… both set {key}; keep one")
    if "seed" in options or key == "seed":
        raise ConfigError("seeds are given with --seeds, not as an option")
    for v in values:  # every configuration is validated before the first fit
        ssmad.create_model("acmamba", **{**options, key: v})

    # warm-up, not timed: imports, kernel loading and first-call allocations would otherwise land on the first row
    _name, cube0, _gt = scenes[0]
    hsi_metrics(ssmad.create_model("rx").fit_predict(cube0), scenes[0][2])
    ssmad.create_model("acmamba", **{**options, key: values[0], "iterations": 1}).fit(cube0)

    rx_auc = {}
    rx_fits = []
    for name, cube, gt in scenes:
        if on_fit:
            on_fit(f"rx · {name}")
        t0 = time.perf_counter()
        amap = ssmad.create_model("rx").fit_predict(cube)
        seconds = time.perf_counter() - t0
        m = hsi_metrics(amap, gt)
        rx_auc[name] = m["AUC_DF"]
        rx_fits.append({"scene": name, "AUC_DF": m["AUC_DF"], "AUC_Ftau": m["AUC_Ftau"], "seconds": seconds})
    rx_mean = _mean(list(rx_auc.values()))
    rx_row = SweepRow(None, rx_mean, _mean([f["AUC_Ftau"] for f in rx_fits]), 0.0,
                      _mean([f["seconds"] for f in rx_fits]), per_fit=rx_fits)  # fmt: skip

    rows = []
    for v in values:
        fits = []
        for seed in seeds:
            for name, cube, gt in scenes:
                if on_fit:
                    on_fit(f"acmamba {key}={v} · seed {seed} · {name}")
                t0 = time.perf_counter()
                det = ssmad.create_model("acmamba", **{**options, key: v, "seed": int(seed)}).fit(cube)
                seconds = time.perf_counter() - t0
                m = hsi_metrics(det.decision_scores_, gt)
                diag = det.diagnostics_
                fits.append({"scene": name, "seed": int(seed), "AUC_DF": m["AUC_DF"], "AUC_Ftau": m["AUC_Ftau"],
                             "seconds": seconds, "n_regions": diag["n_regions"],
                             "homogeneity_ratio": diag["homogeneity_ratio"],
                             "conflict_fraction": diag["conflict_fraction"]})  # fmt: skip
        per_seed = [_mean([f["AUC_DF"] for f in fits if f["seed"] == s]) for s in seeds]
        auc = _mean([f["AUC_DF"] for f in fits])
        rows.append(
            SweepRow(
                value=v,
                auc_df=auc,
                auc_ftau=_mean([f["AUC_Ftau"] for f in fits]),
                margin_vs_rx=auc - rx_mean,
                seconds=_mean([f["seconds"] for f in fits]),
                seed_range=(min(per_seed), max(per_seed)),
                homogeneity=_mean([f["homogeneity_ratio"] for f in fits]),
                conflict_fraction=_mean([f["conflict_fraction"] for f in fits]),
                per_fit=fits,
            )
        )
    return rx_row, rows


def _fmt(v: float, spec: str = ".4f") -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, spec)


def format_sweep(key: str, rx: SweepRow, rows: Sequence[SweepRow], n_scenes: int, seeds: Sequence[int]) -> str:
    """The sweep as a Markdown table: one row per value, then RX."""
    lines = [
        f"ACMamba sweep of {key} on {n_scenes} scene(s), mean over seeds {', '.join(str(s) for s in seeds)}",
        "",
        f"| {key} | AUC(D,F) | AUC(F,τ) | vs RX | seed range AUC(D,F) | s / fit | homogeneity | conflict steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lo, hi = r.seed_range
        lines.append(
            f"| {r.value} | {_fmt(r.auc_df)} | {_fmt(r.auc_ftau)} | {_fmt(r.margin_vs_rx, '+.4f')} | "
            f"{_fmt(lo)}–{_fmt(hi)} | {_fmt(r.seconds, '.2f')} | {_fmt(r.homogeneity, '.3f')} | "
            f"{_fmt(100 * r.conflict_fraction, '.0f')}{'' if not math.isfinite(r.conflict_fraction) else ' %'} |"
        )
    lines.append(f"| rx (reference) | {_fmt(rx.auc_df)} | {_fmt(rx.auc_ftau)} | | | {_fmt(rx.seconds, '.2f')} | | |")
    return "\n".join(lines)


def write_sweep_json(path: str | Path, key: str, rx: SweepRow, rows: Sequence[SweepRow], meta: dict[str, Any]) -> Path:
    """The sweep as JSON, written atomically; an existing file is never replaced.

    Raises:
        OutputExistsError: ``path`` exists.
    """
    from dataclasses import asdict

    from ..engine.runs import atomic_write_json

    payload = {"key": key, **meta, "rx": asdict(rx), "rows": [asdict(r) for r in rows]}
    return atomic_write_json(path, payload, overwrite=False)


def machine_line() -> str:
    """Threads and load average, printed beside the table (shared machines slow every figure)."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    return f"torch threads {torch.get_num_threads()}, load average {load:.2f}"


def check_json_target(path: str | Path | None) -> None:
    """Refuse an existing ``--json`` target before any work.

    Raises:
        InputError: The file exists.
    """
    if path is not None and Path(path).exists():
        raise InputError(f"{path} exists already; the sweep never writes over a file. Fix: pass a new --json path.")
