"""``ssmad info``: versions, devices and which selective-scan backends work here."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser("info", help="show versions, devices and available selective-scan backends")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the environment summary."""
    import platform

    import torch

    from .. import __version__
    from ..ssm import available_backends

    print(f"ssmad {__version__}  python {platform.python_version()}  torch {torch.__version__}")
    print(f"cpu: {platform.machine()}  threads {torch.get_num_threads()}")
    print(f"selective-scan backends on cpu: {', '.join(available_backends('cpu'))}")
    if torch.cuda.is_available():
        print(f"cuda: {torch.cuda.get_device_name(0)}")
        print(f"selective-scan backends on cuda: {', '.join(available_backends('cuda'))}")
    else:
        print("cuda: not available")
    return 0
