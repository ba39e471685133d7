"""``ssmad info``: versions, devices and which selective-scan backend each device gets, and why."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show versions, devices and the selective-scan backend each device gets")
    p.set_defaults(func=run)


def backend_lines(device: str) -> list[str]:
    """What ``auto`` picks on ``device`` and every candidate backend's status, one line each."""
    import os

    from ..ssm import backend_status, explain_backends
    from ..ssm.interface import ENV_VAR

    chosen, rows = explain_backends(device)
    lines = [f"selective-scan backend on {device}: auto -> {chosen}"]
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced and forced != "auto":
        lines[0] += f" (but ${ENV_VAR}={forced} replaces auto)"
    if device == "cpu":  # an explicit choice only on a CPU (Triton's interpreter)
        rows = [*rows, ("triton", *backend_status("triton", device))]
    for name, ok, why in rows:
        mark = "picked" if name == chosen else ("yes" if ok else "no")
        lines.append(f"  {name:<10} {mark:<7} {why}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the environment summary."""
    import platform

    import torch

    from .. import __version__

    print(f"ssmad {__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"cpu: {platform.machine()}  threads {torch.get_num_threads()}")
    print("\n".join(backend_lines("cpu")))
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name(0)}")
    else:
        print("cuda: not available")
    print("\n".join(backend_lines("cuda")))
    return 0
