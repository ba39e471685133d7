"""``ssmad``: the command-line entry point.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (a callable ``(args) -> int``). Registration must stay cheap: heavy imports happen
inside ``func``.

Exit codes: 0 success, 1 runtime error, 2 usage, configuration or input error. Errors raised on purpose by ssmad
(:mod:`ssmad.errors`) are printed as one paragraph, never as a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import ConfigError, InputError, MissingDependencyError, SsmadError

#: Modules of :mod:`ssmad.cli` that define a sub-command, in help order. A module that is not (yet) part of the
#: package is skipped, so rooms can land their commands independently.
COMMANDS: tuple[str, ...] = ("train", "test", "predict", "demo", "data", "convert", "export", "bench", "info")

logger = logging.getLogger("ssmad")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose < 0 else logging.INFO if verbose == 0 else logging.DEBUG
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_path=False, show_time=False, markup=False)
    except ImportError:  # pragma: no cover - rich is a core dependency
        handler = logging.StreamHandler()
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = argparse.ArgumentParser(
        prog="ssmad",
        description="State-Space Models for Anomaly Detection: MambaAD, MambaADv2, ACMamba and baselines.",
    )
    parser.add_argument("--version", action="version", version=f"ssmad {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeat for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = f"{__package__}.{name}"
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the console script)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --devices N hands to its worker processes
    _setup_logging(-1 if args.quiet else args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (InputError, ConfigError, MissingDependencyError) as err:
        if args.debug:
            raise
        if os.environ.get("RANK", "0") in ("", "0"):  # worker processes: rank 0 reports the same error
            print(f"ssmad {args.command}: error: {err}", file=sys.stderr)
        return 2
    except SsmadError as err:
        if args.debug:
            raise
        print(f"ssmad {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ssmad: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
