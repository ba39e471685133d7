"""``ssmad train``: train a detector, evaluate it and write a run folder.

Configuration comes from a YAML file (``--config``: a path or the name of a shipped preset such as
``mambaad_mvtec``) and from dotted overrides of any key, anomalib style::

    ssmad train --config mambaad_mvtec --data.root datasets/MVTecAD --trainer.epochs 100
    ssmad train --model rd4ad --data.root datasets/MVTecAD/bottle --trainer.batch_size 8 --seed 1
    ssmad train --config mambaad_mvtec --data.root datasets/MVTecAD --print_config

Values are read as YAML (``3``, ``true``, ``null``, ``[bottle, cable]``). Precedence: defaults < the file < dotted
overrides < ``--seed`` / ``--deterministic`` / ``--device``. An unknown key is an error (exit 2) naming the file
or option and the valid keys. The run goes to ``results/<model>/<dataset>/<category|all>/v<N>/`` (never over an
existing one); ``--resume`` continues the newest unfinished run (or ``--resume RUN_FOLDER``).

Several processes: ``--trainer.devices N`` starts N worker processes on this machine (one GPU each, or gloo on
the CPU; ``trainer.batch_size`` is the global batch). Several machines: ``torchrun --nnodes M --nproc-per-node N
... -m ssmad train ...`` with the same options (the run folder must be on a shared file system).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import types
from collections.abc import Sequence
from typing import Any

SECTIONS: tuple[str, ...] = ("model", "data", "trainer", "threshold", "metrics", "output")
_DOTTED = re.compile(r"^--(model|data|trainer|threshold|metrics|output)\.([A-Za-z_]\w*)(?:=(.*))?$", re.S)

_DOTTED_HELP = (
    "any configuration key can be set as --SECTION.KEY VALUE (sections: model, data, trainer, threshold, metrics, "
    "output), e.g. --data.root datasets/MVTecAD --trainer.epochs 100 --model.encoder resnet18; values are YAML"
)


def add_dotted_overrides(parser: argparse.ArgumentParser, sections: Sequence[str] = SECTIONS) -> None:
    """Let ``parser`` accept ``--<section>.<key> VALUE`` / ``--<section>.<key>=VALUE`` for ``sections``.

    The pairs are collected, in order, into ``args.overrides`` as ``(section, key, text)`` before argparse sees the
    remaining arguments. argparse has no notion of open-ended option names, so the parser's ``parse_known_args``
    is wrapped on this one parser instance; a dotted option of another section stays unknown (usage error).
    A key given without a value (``--trainer.deterministic``) means ``true``.
    """
    original = parser.parse_known_args
    allowed = set(sections)

    def parse_known_args(
        self: argparse.ArgumentParser, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[argparse.Namespace, list[str]]:
        tokens = list(sys.argv[1:] if args is None else args)
        rest: list[str] = []
        found: list[tuple[str, str, str]] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok == "--":
                rest += tokens[i:]
                break
            m = _DOTTED.match(tok)
            if m and m.group(1) in allowed:
                section, key, value = m.groups()
                if value is None:
                    if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
                        value = tokens[i + 1]
                        i += 1
                    else:
                        value = "true"
                found.append((section, key, value))
            else:
                rest.append(tok)
            i += 1
        ns, extras = original(rest, namespace)
        ns.overrides = list(getattr(ns, "overrides", None) or []) + found
        return ns, extras

    parser.parse_known_args = types.MethodType(parse_known_args, parser)  # type: ignore[method-assign]
    parser.set_defaults(overrides=[])


def overrides_to_dict(overrides: Sequence[tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """``[(section, key, text)]`` → ``{section: {key: yaml value}}`` (later pairs win)."""
    from ..engine.config import parse_value

    out: dict[str, dict[str, Any]] = {}
    for section, key, text in overrides:
        out.setdefault(section, {})[key] = parse_value(text)
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by the commands that build a run configuration (train, demo)."""
    parser.add_argument("--config", metavar="FILE|PRESET", help="YAML configuration file or shipped preset name")
    parser.add_argument("--model", metavar="NAME", help="model name (mambaad, mambaadv2, rd4ad); same as --model.name")
    parser.add_argument("--seed", type=int, help="seed of every random generator (trainer.seed; default 42)")
    parser.add_argument(
        "--deterministic", action="store_true", default=None, help="deterministic kernels (trainer.deterministic)"
    )
    parser.add_argument("--device", metavar="auto|cpu|cuda", help="where to run (trainer.device; default auto)")
    parser.add_argument("--print_config", action="store_true", help="print the resolved configuration and exit")
    add_dotted_overrides(parser)


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The :class:`~ssmad.engine.config.RunConfig` from ``--config``, dotted overrides and shortcuts.

    Returns:
        ``(config, source)`` where ``source`` describes where the values came from (for error messages).
    """
    from ..engine.config import RunConfig, load_yaml, merge, preset_path

    data: dict[str, Any] = dict(base or {})
    sources = []
    if getattr(args, "config", None):
        path = preset_path(args.config)
        data = merge(data, load_yaml(path))
        sources.append(str(path))
    if args.overrides:
        data = merge(data, overrides_to_dict(args.overrides))
        sources.append("the command line")
    shortcuts: dict[str, Any] = {}
    if getattr(args, "model", None):
        shortcuts.setdefault("model", {})["name"] = args.model
    for flag, key in (("seed", "seed"), ("deterministic", "deterministic"), ("device", "device")):
        value = getattr(args, flag, None)
        if value is not None:
            shortcuts.setdefault("trainer", {})[key] = value
    if shortcuts:
        data = merge(data, shortcuts)
    source = " + ".join(sources) or "the defaults"
    return RunConfig.from_dict(data, source=source), source


def check_model_options(config: Any, source: str) -> dict[str, Any]:
    """Validate the ``model`` section with the model's config class; returns it complete (defaults filled in).

    Raises:
        ConfigError: Unknown model, unknown option or invalid value, naming ``source``.
    """
    import dataclasses

    from ..errors import ConfigError
    from ..registry import detector_class

    try:
        cls = detector_class(config.model_name)
        if not hasattr(cls, "_make_config"):
            raise ConfigError(
                f"model {config.model_name!r} is a hyperspectral detector, fitted per scene; use `ssmad predict "
                f"--model {config.model_name} --input CUBE` instead of `ssmad train`"
            )
        model_cfg = cls._make_config(config.model_options)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err
    from ..engine.runs import plain_data

    return {"name": config.model_name, **plain_data(dataclasses.asdict(model_cfg))}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a detector on normal images, evaluate it and write a run folder",
        description=__doc__,
        epilog=_DOTTED_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="RUN",
        help="continue the newest unfinished run of this model/data set (or the given run folder)",
    )
    parser.add_argument("--threshold", type=float, help="fixed image and pixel threshold (threshold.value)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``ssmad train``."""
    import yaml

    from ..engine.config import RunConfig
    from ..engine.runner import train_run

    config, source = resolve_config(args)
    model_section = check_model_options(config, source)
    if args.threshold is not None:
        config = RunConfig.from_dict(
            {**config.to_dict(), "threshold": {**config.to_dict()["threshold"], "value": args.threshold}}
        )
    if args.print_config:
        print(yaml.safe_dump({**config.to_dict(), "model": model_section}, sort_keys=False), end="")
        return 0
    from ..engine import distributed

    devices = distributed.check_devices(config.trainer.devices, config.trainer.device, option="--trainer.devices")
    if devices > 1 and not distributed.in_launched_worker():
        return distributed.launch(args.argv, devices, config.trainer.device)
    local = os.environ.get("LOCAL_WORLD_SIZE")
    if distributed.in_launched_worker() and devices > 1 and local and int(local) != devices:
        logging.getLogger(__name__).warning(
            "--trainer.devices %d differs from the %s processes per machine that torchrun started; torchrun decides",
            devices,
            local,
        )
    result = train_run(config, resume=args.resume)
    if distributed.is_main():
        print_summary(result.run_dir, result.metrics, result.report)
    return 0


def print_summary(run_dir: Any, metrics: dict[str, Any] | None, report: Any) -> None:
    """Print the per-category metrics table (×100) and where the outputs are."""
    from rich.console import Console
    from rich.table import Table

    from ..engine.runner import HEADLINE

    console = Console()
    if not console.is_terminal:  # a pipe or a log file: no 80-column limit that would truncate metric names
        console = Console(width=max(console.width, 160))
    if metrics:
        cols = [k for k in HEADLINE if k in metrics]
        table = Table(title="metrics (×100, final epoch)")
        table.add_column("category")
        for c in cols:
            table.add_column(c, justify="right")
        for cat, values in sorted((metrics.get("per_category") or {}).items()):
            table.add_row(cat, *[_fmt(values.get(c)) for c in cols])
        table.add_row("mean", *[_fmt(metrics.get(c)) for c in cols], style="bold")
        console.print(table)
    console.print(f"run folder: {run_dir}")
    if report is not None:
        console.print(f"report:     {report}")


def _fmt(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, int | float) and value == value else "–"
