"""ssd_scan: the reference against independent oracles, the chunked path against the reference (values and grads)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from ssmad.errors import InputError
from ssmad.ssm import selective_scan_ref, ssd_scan, ssd_scan_ref
from ssmad.ssm.ssd_chunked import decay_matrix, scalar_decay_scan, segsum

F64 = torch.float64


def make_ssd(
    batch=2,
    length=37,
    heads=4,
    headdim=3,
    groups=2,
    dstate=5,
    *,
    dtype=F64,
    seed=0,
    requires_grad=True,
    softplus=True,
):
    """Inputs with realistic ranges: dt ~ 0.01..1 after softplus, A = -(0.5..8), B, C ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=g, dtype=F64) * scale + shift).to(dtype)

    dt = rnd(batch, length, heads, scale=0.7, shift=-1.5) if softplus else (torch.rand(batch, length, heads) * 0.5)
    t = dict(
        x=rnd(batch, length, heads, headdim),
        dt=dt.to(dtype),
        A=(-torch.exp(torch.rand(heads, generator=g, dtype=F64) * 2.8 - 0.7)).to(dtype),
        B=rnd(batch, length, groups, dstate),
        C=rnd(batch, length, groups, dstate),
        D=rnd(heads),
        z=rnd(batch, length, heads, headdim),
        dt_bias=rnd(heads, scale=0.3),
    )
    if requires_grad:
        for v in t.values():
            v.requires_grad_(True)
    return t


def assert_rel(actual, expected, tol=1e-9, what=""):
    """Every element within ``tol`` of the expected value, relative to the expected tensor's largest entry."""
    scale = expected.detach().abs().max().item() or 1.0
    err = (actual.detach() - expected.detach()).abs().max().item() / scale
    assert err <= tol, f"{what}: max relative error {err:.3g} > {tol:g}"


def scalar_loop(x, dt, A, B, C, D, z):
    """Independent per-head, per-channel, per-state Python loop (float64); dt already final."""
    batch, length, heads, headdim = x.shape
    groups, dstate = B.shape[2], B.shape[3]
    out = torch.zeros(batch, length, heads, headdim, dtype=F64)
    last = torch.zeros(batch, heads, headdim, dstate, dtype=F64)
    for b in range(batch):
        for h in range(heads):
            g = h // (heads // groups)
            for p in range(headdim):
                s = [0.0] * dstate
                for t in range(length):
                    d = float(dt[b, t, h])
                    y = 0.0
                    for n in range(dstate):
                        s[n] = math.exp(d * float(A[h])) * s[n] + d * float(x[b, t, h, p]) * float(B[b, t, g, n])
                        y += s[n] * float(C[b, t, g, n])
                    y += float(D[h]) * float(x[b, t, h, p])
                    zz = float(z[b, t, h, p])
                    out[b, t, h, p] = y * zz / (1.0 + math.exp(-zz))
                last[b, h, p] = torch.tensor(s, dtype=F64)
    return out, last


def test_reference_tiny_hand_vector():
    # one head, P = N = 1, A = -1, B = C = 1, dt = 1, x = [1, 0, 0] -> y = [1, e^-1, e^-2], last state e^-2
    x = torch.tensor([1.0, 0.0, 0.0]).reshape(1, 3, 1, 1)
    ones = torch.ones(1, 3, 1, 1)
    y, h = ssd_scan_ref(x, torch.ones(1, 3, 1), -torch.ones(1), ones, ones, return_final_states=True)
    torch.testing.assert_close(y.flatten(), torch.tensor([1.0, math.exp(-1), math.exp(-2)]))
    torch.testing.assert_close(h.flatten(), torch.tensor([math.exp(-2)]))


def test_reference_matches_scalar_loop():
    t = make_ssd(batch=1, length=9, heads=4, headdim=2, groups=2, dstate=3, requires_grad=False)
    y, h = ssd_scan_ref(**t, dt_softplus=True, return_final_states=True)
    dt = F.softplus(t["dt"] + t["dt_bias"])
    y_loop, h_loop = scalar_loop(t["x"], dt, t["A"], t["B"], t["C"], t["D"], t["z"])
    assert_rel(y, y_loop, 1e-12, "y")
    assert_rel(h, h_loop, 1e-12, "state")


def test_reference_equals_selective_scan_with_broadcast_decay():
    # SSD is the selective scan with A[h*P + p, n] = A[h] for every n and dt shared by a head's P channels
    t = make_ssd(batch=2, length=11, heads=4, headdim=3, groups=2, dstate=5, requires_grad=False)
    heads, headdim, dstate = 4, 3, 5
    y, h = ssd_scan_ref(**t, dt_softplus=True, return_final_states=True)
    y_sel, h_sel = selective_scan_ref(
        rearrange(t["x"], "b l h p -> b (h p) l"),
        repeat(t["dt"], "b l h -> b (h p) l", p=headdim),
        repeat(t["A"], "h -> (h p) n", p=headdim, n=dstate),
        rearrange(t["B"], "b l g n -> b g n l"),
        rearrange(t["C"], "b l g n -> b g n l"),
        repeat(t["D"], "h -> (h p)", p=headdim),
        rearrange(t["z"], "b l h p -> b (h p) l"),
        repeat(t["dt_bias"], "h -> (h p)", p=headdim),
        delta_softplus=True,
        return_last_state=True,
    )
    assert_rel(y, rearrange(y_sel, "b (h p) l -> b l h p", h=heads), 1e-12, "y")
    assert_rel(h, rearrange(h_sel, "b (h p) n -> b h p n", h=heads), 1e-12, "state")


def test_segsum_is_the_direct_sum():
    a = torch.randn(3, 7, dtype=F64)
    s = segsum(a)
    for i in range(7):
        for j in range(7):
            expected = a[:, j + 1 : i + 1].sum(-1) if i >= j else torch.full((3,), -math.inf, dtype=F64)
            torch.testing.assert_close(s[:, i, j], expected, rtol=1e-14, atol=1e-14)


def test_decay_matrix_is_exp_of_segsum():
    a = -torch.rand(2, 3, 16, dtype=F64) * 4
    torch.testing.assert_close(decay_matrix(a), torch.exp(segsum(a)), rtol=1e-14, atol=0)


def test_scalar_decay_scan_by_blocks_matches_a_loop():
    # n = 100 steps with blocks of 4: three levels of recursion
    g = torch.Generator().manual_seed(0)
    log_decay = -torch.rand(2, 100, generator=g, dtype=F64)
    S = torch.randn(2, 100, 3, generator=g, dtype=F64)
    h, expected = torch.zeros(2, 3, dtype=F64), []
    for t in range(100):
        h = torch.exp(log_decay[:, t, None]) * h + S[:, t]
        expected.append(h)
    assert_rel(scalar_decay_scan(log_decay, S, block=4), torch.stack(expected, dim=1), 1e-13, "states")


CASES = [
    # (length, chunk, groups, softplus, extras)
    (37, 16, 2, True, "all"),  # not a multiple of the chunk, G < H
    (70, 64, 1, False, "all"),  # one full chunk and a partial one, one group
    (1, 64, 4, True, "all"),  # L = 1, G = H
    (48, 16, 2, False, "none"),  # exact multiple, no optional inputs
    (150, 4, 2, True, "all"),  # 38 chunks: the inter-chunk recurrence goes by blocks
]


@pytest.mark.parametrize(("length", "chunk", "groups", "softplus", "extras"), CASES)
def test_chunked_equals_reference_values_and_grads(length, chunk, groups, softplus, extras):
    t = make_ssd(length=length, groups=groups, softplus=softplus, seed=length)
    if extras == "none":
        for k in ("D", "z", "dt_bias"):
            t.pop(k)
    init = torch.randn(2, 4, 3, 5, dtype=F64, requires_grad=True) if extras == "all" else None
    inputs = {**t, "initial_states": init} if init is not None else t
    results = {}
    for backend in ("torch", "reference"):
        y, h = ssd_scan(**inputs, dt_softplus=softplus, chunk_size=chunk, return_final_states=True, backend=backend)
        g = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=g, dtype=F64)).sum() + (
            h * torch.randn(h.shape, generator=g, dtype=F64)
        ).sum()
        leaves = {k: v for k, v in inputs.items() if v is not None}
        grads = torch.autograd.grad(loss, list(leaves.values()))
        results[backend] = (y, h, dict(zip(leaves, grads, strict=True)))
    (y, h, gr), (y_ref, h_ref, gr_ref) = results["torch"], results["reference"]
    assert_rel(y, y_ref, what="y")
    assert_rel(h, h_ref, what="final state")
    for name in gr_ref:
        assert_rel(gr[name], gr_ref[name], what=f"grad {name}")


def test_chunk_size_changes_only_rounding():
    t = make_ssd(length=50, requires_grad=False)
    outs = [ssd_scan(**t, chunk_size=q, dt_softplus=True) for q in (1, 7, 16, 64, 200)]
    for y in outs[1:]:
        assert_rel(y, outs[0], 1e-12, "y")


def test_gradcheck_small():
    t = make_ssd(batch=1, length=5, heads=2, headdim=2, groups=1, dstate=2, seed=3)
    names = list(t)

    def fn(*args):
        return ssd_scan(**dict(zip(names, args, strict=True)), chunk_size=2, dt_softplus=True, backend="torch")

    assert torch.autograd.gradcheck(fn, tuple(t.values()), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_inputs_compute_in_float32(dtype):
    t = make_ssd(length=40, dtype=dtype, requires_grad=False)
    y, h = ssd_scan(**t, dt_softplus=True, return_final_states=True, chunk_size=16)
    assert y.dtype == dtype and h.dtype == torch.float32
    exact, h_exact = ssd_scan_ref(**{k: v.double() for k, v in t.items()}, dt_softplus=True, return_final_states=True)
    # the only rounding beyond float32 is the final cast of y to the input dtype
    out_tol = {torch.float16: 2e-3, torch.bfloat16: 1e-2, torch.float32: 1e-5}[dtype]
    assert_rel(y.double(), exact, out_tol, "y")
    assert_rel(h.double(), h_exact, 1e-5, "state")


def test_segment_sums_do_not_cancel():
    # 128 big steps drive the cumulative log-decay to -6400, then 128 tiny ones whose short segments matter: a
    # difference of two cumulative sums loses ~5e-4 of each tiny segment in float32 (measured error 4e-5 on y)
    t = make_ssd(batch=1, length=256, heads=2, headdim=2, groups=1, dstate=4, dtype=torch.float32, requires_grad=False)
    t["A"] = torch.tensor([-1.0, -0.5])
    t["dt"] = torch.full_like(t["dt"], 0.01)
    t["dt"][:, :128] = 50.0
    y = ssd_scan(**t, chunk_size=256)
    exact = ssd_scan_ref(**{k: v.double() for k, v in t.items()})
    assert_rel(y.double(), exact, 1e-6, "y")


def _bad(**changes):
    t = make_ssd(batch=2, length=6, heads=4, headdim=3, groups=2, dstate=5, requires_grad=False)
    t.update(changes)
    return t


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"x": torch.randn(2, 6, 12)}, "x must be"),
        ({"dt": torch.randn(2, 6, 3)}, "dt must be"),
        ({"A": -torch.rand(4, 5)}, "A must be"),
        ({"A": torch.tensor([-1.0, 0.5, -1.0, -1.0])}, "A must be <= 0"),
        ({"B": torch.randn(2, 6, 3, 5)}, "G dividing H"),
        ({"C": torch.randn(2, 6, 2, 4)}, "same shape"),
        ({"D": torch.randn(5)}, "D must be"),
        ({"z": torch.randn(2, 6, 4, 2)}, "z must have"),
        ({"dt_bias": torch.randn(3)}, "dt_bias must be"),
        ({"initial_states": torch.randn(2, 4, 3, 4)}, "initial_states must be"),
        ({"trapezoid_lambda": torch.rand(2, 6)}, "trapezoid_lambda must be"),
        ({"x": torch.randint(0, 3, (2, 6, 4, 3))}, "floating-point"),
    ],
)
def test_bad_inputs_raise_input_error(changes, message):
    with pytest.raises(InputError, match=message):
        ssd_scan(**_bad(**changes))


@pytest.mark.parametrize(("kwargs", "message"), [({"chunk_size": 0}, "chunk_size"), ({"backend": "cuda"}, "backend")])
def test_bad_options_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        ssd_scan(**_bad(), **kwargs)
