"""MambaAD's CPU training paths against the plain PyTorch compositions they replace, side by side in one run.

* ``instance_norm_silu``: the compiled InstanceNorm + SiLU kernel on channels-last maps (``layers.norm_act``)
  against ``F.silu(F.instance_norm(x))``, at the local branches' shapes (lite0 and ResNet34 features, batch 8);
* ``layer_norm_silu_gate``: SS2D's ``out_norm(y) * silu(z)`` as one kernel (``layers.norm_act``) against the
  composition, at the decoder stages' shapes;
* ``linear_split``: ``in_proj`` as one product per output part (``layers.dense.linear_split``) against one product
  split with ``chunk``, each followed by SS2D's use of the parts (``x`` kept, ``z`` through the SiLU gate);
* AdamW: ``engine.optim.build_optimizer`` (PyTorch's fused kernel where it exists) against the per-tensor loop,
  on MambaAD's trainable parameters (EfficientNet-lite0 features).

Forward + backward, alternating the two in every round; prints the median of each and their ratio.

Usage: python benchmarks/bench_layer_paths.py [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import ssmad.cli  # noqa: F401  (before torch loads: the OpenMP spin count the ssmad command uses)

#: (batch, channels, map side) of the local branches' InstanceNorm inputs.
NORM_SHAPES = [(8, 24, 64), (8, 40, 32), (8, 112, 16), (8, 64, 64), (8, 128, 32), (8, 256, 16)]
#: (batch, map side, d_model) of SS2D's in_proj (output 2 × 2 · d_model).
PROJ_SHAPES = [(8, 64, 24), (8, 32, 40), (8, 16, 112), (8, 64, 64), (8, 32, 128)]


def _alternate(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up (and the kernel's first build)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items() if r % 2 == 0 else reversed(list(fns.items())):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def _row(label: str, med: dict[str, float], new: str, old: str) -> None:
    print(f"{label:>28}  {med[old] * 1e3:9.2f}  {med[new] * 1e3:9.2f}  {med[new] / med[old]:5.2f}")


def main() -> None:
    import torch
    import torch.nn.functional as F

    from ssmad.bench.mambaad import _build
    from ssmad.encoders import TimmEncoder
    from ssmad.engine.optim import build_optimizer
    from ssmad.layers import dense, norm_act

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} threads, float32, medians of {args.repeats} alternating rounds (ms)")

    def compare(label: str, old: str, new: str, fns: dict, inputs: list, grad) -> None:  # type: ignore[no-untyped-def]
        """Forward + backward of each of ``fns`` (name -> function of ``inputs``), alternating; one table row."""

        def fwd_bwd(fn):  # type: ignore[no-untyped-def]
            leaves = [t.detach().requires_grad_(True) for t in inputs]
            torch.autograd.grad(fn(*leaves), leaves, grad)

        _row(label, _alternate({name: lambda fn=fn: fwd_bwd(fn) for name, fn in fns.items()}, args.repeats), new, old)

    print(f"\nInstanceNorm + SiLU, forward + backward (kernel built: {norm_act.load_library() is not None})")
    print(f"{'batch, channels, side':>28}  {'torch':>9}  {'kernel':>9}  ratio")
    for b, c, s in NORM_SHAPES:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(b, c, s, s, generator=gen).contiguous(memory_format=torch.channels_last)
        g = torch.randn(b, c, s, s, generator=gen).contiguous(memory_format=torch.channels_last)
        fns = {"torch": lambda t: F.silu(F.instance_norm(t)), "kernel": norm_act.instance_norm_silu}
        compare(f"{b}, {c}, {s}", "torch", "kernel", fns, [x], g)

    print("\nLayerNorm(y) * SiLU(z), forward + backward (gradients of y, z, weight and bias)")
    print(f"{'batch, side, channels':>28}  {'torch':>9}  {'kernel':>9}  ratio")
    for b, s, d in PROJ_SHAPES:
        gen = torch.Generator().manual_seed(0)
        c = 2 * d
        y, z, g = (torch.randn(b, s, s, c, generator=gen) for _ in range(3))
        w, bias = (torch.randn(c, generator=gen) for _ in range(2))
        fns = {
            "torch": lambda y, z, w, bb: F.layer_norm(y, (y.shape[-1],), w, bb) * F.silu(z),
            "kernel": norm_act.layer_norm_silu_gate,
        }
        compare(f"{b}, {s}, {c}", "torch", "kernel", fns, [y, z, w, bias], g)

    print("\nin_proj and its parts (x kept, SiLU(z) gate), forward + backward")
    print(f"{'batch, side, d_model':>28}  {'chunk':>9}  {'split':>9}  ratio")
    for b, s, d in PROJ_SHAPES:
        gen = torch.Generator().manual_seed(0)
        inner = 2 * d
        x = torch.randn(b, s, s, d, generator=gen)
        w = torch.randn(2 * inner, d, generator=gen) / d**0.5
        gy = torch.randn(b, s, s, inner, generator=gen)

        def use(u, z, gy=gy):  # type: ignore[no-untyped-def]
            return u * 2 + F.silu(z) * gy

        fns = {
            "chunk": lambda xi, wi: use(*dense.linear(xi, wi).chunk(2, dim=-1)),
            "split": lambda xi, wi, inner=inner: use(*dense.linear_split(xi, wi, None, (inner, inner))),
        }
        compare(f"{b}, {s}, {d}", "chunk", "split", fns, [x, w], gy)

    print("\nAdamW step on MambaAD's trainable parameters (tf_efficientnet_lite0 features)")
    model = _build("mambaad", "tf_efficientnet_lite0", 256, TimmEncoder("tf_efficientnet_lite0", pretrained=False))
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    ours = build_optimizer(model, lr=1e-3)
    loop = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4, foreach=False)
    print(
        f"{len(params)} tensors, {sum(p.numel() for p in params) / 1e6:.2f} M values; "
        f"build_optimizer uses the fused kernel: {bool(ours.defaults.get('fused'))}"
    )
    print(f"{'':>28}  {'loop':>9}  {'ours':>9}  ratio")
    _row("one step", _alternate({"loop": loop.step, "ours": ours.step}, args.repeats), "ours", "loop")


if __name__ == "__main__":
    main()
