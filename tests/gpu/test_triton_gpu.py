"""The ``triton`` backend compiled for a real GPU, against the float64 reference (run by ``ssmad bench gpu``).

Select with ``pytest -m gpu tests/gpu``; skipped without a CUDA device. Shapes are the reduced benchmark shapes
of tests/unit/ssm/test_backends.py plus edge cases, at the default chunk and tile sizes (the unit tests run the
same kernels in Triton's interpreter with tiny chunks).
"""

from __future__ import annotations

import pytest
import torch

from ssmad.ssm import backend_available, directional_scan, directional_scan_ref, resolve_backend, selective_scan
from tests.unit.ssm.conftest import make_inputs
from tests.unit.ssm.test_directional import make_case

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
RTOL = 1e-4


def _close(got: torch.Tensor, want: torch.Tensor, name: str, rtol: float = RTOL) -> None:
    want = want.double().cpu()
    scale = want.abs().max().item()
    torch.testing.assert_close(got.double().cpu(), want, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{name}: {m}")


def _compare(backend: str, batch, dim, dstate, length, groups, seed=0, rtol=RTOL, **opts) -> None:
    x = make_inputs(batch, dim, dstate, length, groups, seed=seed, **opts)
    fast = {
        k: None if v is None else v.detach().cuda().requires_grad_(True) for k, v in zip(NAMES, x.args(), strict=True)
    }
    ref = {
        k: None if v is None else v.detach().double().requires_grad_(True) for k, v in zip(NAMES, x.args(), strict=True)
    }
    out, last = selective_scan(**fast, delta_softplus=True, return_last_state=True, backend=backend)
    out_ref, last_ref = selective_scan(**ref, delta_softplus=True, return_last_state=True, backend="reference")
    _close(out, out_ref, "out", rtol)
    _close(last, last_ref, "last", rtol)
    g = torch.Generator().manual_seed(1)
    w, wl = torch.randn(out.shape, generator=g, dtype=torch.float64), torch.randn(last.shape, generator=g).double()
    names = [k for k, v in fast.items() if v is not None]
    got = torch.autograd.grad(
        (out * w.float().cuda()).sum() + (last * wl.float().cuda()).sum(), [fast[k] for k in names]
    )
    want = torch.autograd.grad((out_ref * w).sum() + (last_ref * wl).sum(), [ref[k] for k in names])
    for name, a, b in zip(names, got, want, strict=True):
        _close(a, b, f"d{name}", rtol)


SHAPES = {
    "mad_s3-reduced": (2, 32, 16, 150, 8),
    "mad_s2-reduced": (2, 64, 16, 100, 8),
    "acm_infer-reduced": (1, 16, 16, 300, 2),
    "L1": (2, 8, 4, 1, 2),
    "N1-ungrouped": (2, 8, 1, 40, None),
    "D5-G5": (2, 5, 3, 29, 5),
    "many-blocks": (1, 256, 16, 70, 2),
}


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_triton_matches_float64_reference_on_gpu(shape):
    _compare("triton", *SHAPES[shape], seed=len(shape))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_low_precision_on_gpu(dtype):
    x = make_inputs(2, 16, 8, 77, 2, dtype=dtype, requires_grad=False, seed=3)
    args = [None if t is None else t.cuda() for t in x.args()]
    out = selective_scan(*args, delta_softplus=True, backend="triton")
    assert out.dtype == dtype
    expected = selective_scan(
        *[None if t is None else t.float() for t in x.args()], delta_softplus=True, backend="reference"
    )
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float().cpu(), expected, rtol=2 * eps, atol=2 * eps)


@pytest.mark.parametrize(
    "shape",
    [dict(batch=2, length=300, dim=48, k=8, rank=4, dstate=16), dict(batch=1, length=1, dim=8, k=2, rank=1, dstate=3)],
)
def test_fused_directional_scan_on_gpu(shape):
    args = make_case(**shape, dtype=torch.float32)
    with torch.no_grad():
        got = directional_scan(*[a.cuda() for a in args], backend="triton")
    want = directional_scan_ref(*[a.double() if a.is_floating_point() else a for a in args])
    _close(got, want, "directional")


def test_auto_on_this_gpu():
    expected = "cuda" if backend_available("cuda", "cuda") else "triton"
    assert resolve_backend("auto", "cuda") == expected


@pytest.mark.skipif(not backend_available("cuda", "cuda"), reason="mamba-ssm is not importable")
def test_mamba_ssm_backend_agrees_with_the_reference():
    _compare("cuda", 2, 32, 16, 150, 8, seed=5, rtol=1e-3)


def mambaad_agreement(backend: str, device: str) -> None:
    """A tiny MambaAD on ``backend`` against the same net on ``torch``: inference outputs and training gradients."""
    from ssmad.models.mambaad import MambaAD
    from tests.unit.models.test_mambaad import tiny

    torch.manual_seed(0)
    ref = MambaAD(tiny(scan_backend="torch")).to(device)
    fast = MambaAD(tiny(scan_backend=backend), encoder=ref.encoder).to(device)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 64, 64, device=device)
    ref.eval(), fast.eval()
    with torch.no_grad():  # inference takes the fused directional kernel where the backend has one
        for a, b in zip(ref(x)[1], fast(x)[1], strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    ref.train(), fast.train()
    grads = []
    for net in (ref, fast):
        torch.manual_seed(1)  # same drop-path draws
        enc, dec = net(x)
        net.zero_grad(set_to_none=True)
        net.loss(enc, dec).backward()
        grads.append({n: p.grad for n, p in net.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-3, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


def test_mambaad_on_triton_agrees_with_torch_in_inference_and_training(monkeypatch):
    # TF32 convolutions/matmuls would differ between the two nets by far more than the scans do
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    mambaad_agreement("triton", "cuda")
