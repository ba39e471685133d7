"""What the progressive scan plan saves against Hilbert × 8 directions, stage by stage (MambaADv2 decoder).

One MambaADv2 network is run twice on the same input with the same weights — once with a scan plan (directions
per stage, coarsest first; the K directions share parameters, so only the plan changes) and once with 8 directions
at every stage — and each decoder stage is measured:

* **scan FLOPs**: ``9 · batch · D · L · N`` per scan call (the convention of ``ssmad bench mambaad``);
* **stage FLOPs**: everything :class:`~torch.utils.flop_counter.FlopCounterMode` sees plus the scan FLOPs;
* **time**: CPU seconds of the stage's forward (``time.process_time``, no grad, one thread), the minimum over
  interleaved rounds (plan, ×8, plan, ×8, …), so machine load touches both alike; wall seconds are printed too.

::

    python benchmarks/bench_mambaadv2_scanning.py --encoder resnet34 --size 256 --batch 2 --plan 8 4 2 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from einops import rearrange
from torch.utils.flop_counter import FlopCounterMode

from ssmad.bench.mambaad import record_scans
from ssmad.models.mambaadv2 import MambaADv2, MambaADv2Config


def _stage_inputs(net: MambaADv2, images: torch.Tensor) -> list[torch.Tensor]:
    """Channels-last input of every decoder stage (computed once with the plan in the buffer)."""
    with torch.no_grad():
        x = rearrange(net.mff_oce(net.encoder(images)), "b c h w -> b h w c")
        inputs = []
        for i, stage in enumerate(net.decoder.layers_up):
            inputs.append(x)
            x = stage(x, int(net.decoder.scan_plan[i]))
    return inputs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default="resnet34")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--plan", type=int, nargs=4, default=[8, 4, 2, 1], help="directions per stage, coarsest first")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = MambaADv2(MambaADv2Config(encoder=args.encoder, pretrained=False, image_size=args.size)).eval()
    net.decoder.scan_plan.copy_(torch.tensor(args.plan))
    images = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    inputs = _stage_inputs(net, images)
    variants = {"plan": list(args.plan), "x8": [8, 8, 8, 8]}
    load = os.getloadavg()[0]
    rows = []
    for i, stage in enumerate(net.decoder.layers_up):
        flops, scans = {}, {}
        for name, plan in variants.items():
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), record_scans(run=False) as calls, counter:
                stage(inputs[i], plan[i])
            scans[name] = sum(c.flops for c in calls)
            flops[name] = counter.get_total_flops() + scans[name]
        cpu = {n: [] for n in variants}
        wall = {n: [] for n in variants}
        with torch.no_grad():
            for plan in variants.values():  # warm-up
                stage(inputs[i], plan[i])
            for _ in range(args.repeats):
                for name, plan in variants.items():
                    t, w = time.process_time(), time.perf_counter()
                    stage(inputs[i], plan[i])
                    cpu[name].append(time.process_time() - t)
                    wall[name].append(time.perf_counter() - w)
        h, w = inputs[i].shape[1:3]
        if i > 0:
            h, w = 2 * h, 2 * w
        rows.append((i, h, w, variants["plan"][i], scans, flops, {n: min(v) for n, v in cpu.items()}, wall))
    b = args.batch
    print(
        f"settings: {args.encoder} (random weights), {args.size}×{args.size}, batch {b}, 1 thread, "
        f"plan {args.plan} vs Hilbert × 8; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"({os.cpu_count()} CPUs)\n"
    )
    print(
        "| stage | map | K (plan) | scan GFLOPs/img plan / ×8 | stage GFLOPs/img plan / ×8 | FLOPs saved | "
        "CPU ms/img plan / ×8 | time saved |"
    )
    print("|---|---|---|---|---|---|---|---|")
    tot = {"fp": 0.0, "f8": 0.0, "tp": 0.0, "t8": 0.0}
    for i, h, w, k, scans, flops, cpu, _ in rows:
        tot["fp"] += flops["plan"]
        tot["f8"] += flops["x8"]
        tot["tp"] += cpu["plan"]
        tot["t8"] += cpu["x8"]
        print(
            f"| {i} | {h}×{w} | {k} | {scans['plan'] / b / 1e9:.3f} / {scans['x8'] / b / 1e9:.3f} | "
            f"{flops['plan'] / b / 1e9:.3f} / {flops['x8'] / b / 1e9:.3f} | {1 - flops['plan'] / flops['x8']:.0%} | "
            f"{cpu['plan'] / b * 1e3:.1f} / {cpu['x8'] / b * 1e3:.1f} | {1 - cpu['plan'] / cpu['x8']:.0%} |"
        )
    print(
        f"| decoder | | | | {tot['fp'] / b / 1e9:.3f} / {tot['f8'] / b / 1e9:.3f} | {1 - tot['fp'] / tot['f8']:.0%} | "
        f"{tot['tp'] / b * 1e3:.1f} / {tot['t8'] / b * 1e3:.1f} | {1 - tot['tp'] / tot['t8']:.0%} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
