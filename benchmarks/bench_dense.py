"""Dense projections: ``F.linear`` (the BLAS) against ``ssmad.layers.dense.linear`` (oneDNN 1×1 convolution).

Times forward + backward (gradients of input, weight and bias) of both, alternating in one run, at the shapes of
MambaAD's ``in_proj`` / ``x_proj`` / ``out_proj`` with ResNet34 features at 256×256, batch 8 (rows = batch ×
positions of a decoder stage), and prints the best time of each, their GFLOP/s and the ratio.

Usage: python benchmarks/bench_dense.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import ssmad.cli  # noqa: F401  (before torch loads: the OpenMP spin count the ssmad command uses)

#: (rows, in, out) of MambaAD's projections at the 64×64, 32×32 and 16×16 decoder stages.
SHAPES = [
    (32768, 64, 256),
    (32768, 128, 288),
    (32768, 128, 64),
    (8192, 128, 512),
    (8192, 256, 320),
    (8192, 256, 128),
    (2048, 256, 1024),
    (2048, 512, 544),
    (2048, 512, 256),
]


def _step(fn, x, w, b, g):  # type: ignore[no-untyped-def]
    import torch

    y = fn(x, w, b)
    torch.autograd.grad(y, (x, w, b), g)


def main() -> None:
    import torch
    import torch.nn.functional as F

    from ssmad.layers import dense

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fns = {"F.linear": F.linear, "dense.linear": dense.linear}
    print(f"{torch.get_num_threads()} threads, float32, forward + backward, best of {args.repeats}")
    print(f"{'rows x in -> out':>22}  {'F.linear ms':>12} {'GFLOP/s':>8}  {'dense ms':>9} {'GFLOP/s':>8}  ratio")
    totals = dict.fromkeys(fns, 0.0)
    for rows, k, n in SHAPES:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(rows, k, generator=gen, requires_grad=True)
        w = torch.randn(n, k, generator=gen, requires_grad=True)
        b = torch.randn(n, generator=gen, requires_grad=True)
        g = torch.randn(rows, n, generator=gen)
        best = dict.fromkeys(fns, float("inf"))
        for fn in fns.values():
            _step(fn, x, w, b, g)  # warm-up
        for r in range(args.repeats):
            for name, fn in fns.items() if r % 2 == 0 else reversed(list(fns.items())):
                t0 = time.perf_counter()
                _step(fn, x, w, b, g)
                best[name] = min(best[name], time.perf_counter() - t0)
        gflop = 6 * rows * k * n / 1e9
        for name in fns:
            totals[name] += best[name]
        a, d = best["F.linear"], best["dense.linear"]
        shape = f"{rows:>8} x {k:>4} -> {n:>4}"
        print(f"{shape}  {a * 1e3:12.2f} {gflop / a:8.0f}  {d * 1e3:9.2f} {gflop / d:8.0f}  {d / a:5.2f}")
    a, d = totals["F.linear"], totals["dense.linear"]
    print(f"{'all shapes':>22}  {a * 1e3:12.2f} {'':>8}  {d * 1e3:9.2f} {'':>8}  {d / a:5.2f}")
    print(f"dense.linear takes the oneDNN path here: {dense._use_onednn(torch.empty(4096, 64), torch.empty(64, 64))}")


if __name__ == "__main__":
    main()
