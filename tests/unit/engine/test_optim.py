"""The training recipe of spec A.9 against hand computation: AdamW, weight-decay groups, batch-scaled lr, the single
×0.1 step at 80 % of the iterations, global grad-norm clip 5."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ssmad.engine.config import TrainerConfig
from ssmad.engine.optim import build_optimizer, build_scheduler, param_groups
from ssmad.engine.train import train_network


class ToyNet(nn.Module):
    """Frozen encoder + a decoder with every kind of parameter the decay rule distinguishes."""

    def __init__(self, loss_scale: float = 1.0) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 4, 1)
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        self.norm = nn.GroupNorm(2, 4)  # 1-D weight and bias: no decay
        self.proj = nn.Conv2d(4, 4, 1)  # 4-D weight: decay; bias: no decay
        self.A_logs = nn.Parameter(torch.randn(4, 1) * 0.5)  # 2-D, not a bias: decay (as MambaAD's A_logs)
        self.Ds = nn.Parameter(torch.ones(4))  # 1-D: no decay
        self.loss_scale = loss_scale

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        with torch.no_grad():
            e = self.encoder(x)
        d = self.proj(self.norm(e)) * self.Ds[:, None, None] + self.A_logs[:, :, None]
        return [e], [d]

    def loss(self, enc: list[Tensor], dec: list[Tensor]) -> Tensor:
        return self.loss_scale * F.mse_loss(dec[0], enc[0])


class ImageList(Dataset):
    """Items ``{"image": (3, H, W)}`` as the training loop reads them."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"image": self.images[i]}


def test_weight_decay_groups_follow_the_spec_rule() -> None:
    groups = param_groups(ToyNet(), weight_decay=1e-4)
    by_decay = {g["weight_decay"]: set(g["names"]) for g in groups}
    assert by_decay == {1e-4: {"proj.weight", "A_logs"}, 0.0: {"norm.weight", "norm.bias", "proj.bias", "Ds"}}
    # the frozen encoder is not optimised at all
    opt = build_optimizer(ToyNet(), 0.01)
    assert isinstance(opt, torch.optim.AdamW)
    assert sum(len(g["params"]) for g in opt.param_groups) == 6
    assert all(g["betas"] == (0.9, 0.999) and g["eps"] == 1e-8 and not g["amsgrad"] for g in opt.param_groups)


def test_weight_decay_groups_of_mambaad_match_spec_names() -> None:
    """Spec A.9: ``A_logs``, ``dt_projs_bias``, ``x_proj_weight`` (≥ 2-D) decayed; ``Ds``, norms, biases not."""
    import ssmad

    det = ssmad.create_model(
        "mambaad", encoder="resnet18", pretrained=False, image_size=64, decoder_depths=(2, 2, 2, 2), d_state=4
    )
    net = det._build_network()
    groups = {g["weight_decay"]: g["names"] for g in param_groups(net, 1e-4)}
    decayed, plain = set(groups[1e-4]), set(groups[0.0])
    named = {n: p for n, p in net.named_parameters()}
    assert not any(n.startswith("encoder.") for n in decayed | plain)
    assert decayed | plain == {n for n, p in named.items() if p.requires_grad}
    for suffix, expect_decay in (("A_logs", True), ("dt_projs_bias", True), ("x_proj_weight", True), ("Ds", False)):
        hits = [n for n in named if n.endswith(suffix)]
        assert hits, suffix
        assert all((n in decayed) == expect_decay for n in hits), suffix
    norms = [f"{n}.weight" for n, m in net.named_modules() if isinstance(m, nn.LayerNorm | nn.BatchNorm2d)]
    assert norms and not any(n in decayed for n in norms)
    assert not any(n.endswith(".bias") for n in decayed)


def test_learning_rate_scales_with_the_batch() -> None:
    assert TrainerConfig().learning_rate() == pytest.approx(0.005)
    assert TrainerConfig(batch_size=32).learning_rate() == pytest.approx(0.01)
    assert TrainerConfig(batch_size=8, base_lr=0.004).learning_rate() == pytest.approx(0.002)
    assert TrainerConfig(batch_size=32, lr=0.003).learning_rate() == pytest.approx(0.003)  # explicit: no scaling


@pytest.mark.parametrize("total", [1, 2, 3, 7, 10, 13, 50, 101])
def test_schedule_is_one_step_at_80_percent(total: int) -> None:
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, total, decay_at=0.8, factor=0.1)
    used = []
    for _ in range(total):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    decay_t = max(1, math.floor(0.8 * total))
    expected = [1.0 if t < decay_t else 0.1 for t in range(total)]
    assert used == pytest.approx(expected)


def _hand_training(
    net: ToyNet,
    images: Tensor,
    steps: int,
    lr: float,
    *,
    weight_decay: float,
    clip: float | None,
    decay_everything: bool = False,
    schedule: bool = True,
) -> tuple[dict[str, Tensor], list[float]]:
    """AdamW + clip + step schedule written out by hand (float64 moments), full batch every step."""
    b1, b2, eps = 0.9, 0.999, 1e-8
    params = {n: p for n, p in net.named_parameters() if p.requires_grad}
    m = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    v = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    decay_t = max(1, math.floor(0.8 * steps))
    norms = []
    for t in range(steps):
        lr_t = lr * (0.1 ** (t // decay_t) if schedule else 1.0)
        for p in params.values():
            p.grad = None
        enc, dec = net(images)
        net.loss(enc, dec).backward()
        grads = {n: p.grad.detach().double() for n, p in params.items()}
        norm = math.sqrt(sum(float((g**2).sum()) for g in grads.values()))
        norms.append(norm)
        if clip is not None and norm > clip:
            grads = {n: g * (clip / (norm + 1e-6)) for n, g in grads.items()}
        with torch.no_grad():
            for n, p in params.items():
                decays = decay_everything or (p.ndim > 1 and not n.endswith(".bias"))
                w = p.detach().double() * (1 - lr_t * (weight_decay if decays else 0.0))
                m[n] = b1 * m[n] + (1 - b1) * grads[n]
                v[n] = b2 * v[n] + (1 - b2) * grads[n] ** 2
                m_hat = m[n] / (1 - b1 ** (t + 1))
                v_hat = v[n] / (1 - b2 ** (t + 1))
                p.copy_((w - lr_t * m_hat / (v_hat.sqrt() + eps)).float())
    return {n: p.detach().clone() for n, p in params.items()}, norms


def test_training_loop_matches_hand_computed_adamw() -> None:
    torch.manual_seed(3)
    net = ToyNet(loss_scale=2000.0)  # gradients far above the clip norm of 5
    images = torch.randn(4, 3, 6, 6)
    start = copy.deepcopy(net.state_dict())
    steps, wd = 10, 0.5
    cfg = TrainerConfig(
        epochs=steps, batch_size=4, base_lr=0.08, weight_decay=wd, clip_grad=5.0, device="cpu", progress=False
    )
    lr = cfg.learning_rate(4)
    assert lr == pytest.approx(0.08 * 4 / 16)
    history = train_network(net, ImageList(images), cfg, device=torch.device("cpu"))
    assert [r["iterations"] for r in history] == [1] * steps
    assert [r["lr"] for r in history] == pytest.approx([lr] * 8 + [lr * 0.1] * 2)  # the rate each step used
    trained = {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}

    def reference(**kw: object) -> dict[str, Tensor]:
        ref = ToyNet(loss_scale=2000.0)
        ref.load_state_dict(start)
        out, norms = _hand_training(ref, images, steps, lr, weight_decay=wd, **kw)  # type: ignore[arg-type]
        reference.norms = norms  # type: ignore[attr-defined]
        return out

    expected = reference(clip=5.0)
    assert min(reference.norms) > 5.0  # type: ignore[attr-defined]  # the clip acted at every step
    for n in expected:
        torch.testing.assert_close(trained[n], expected[n], rtol=1e-4, atol=1e-6)
    # the frozen encoder did not move
    torch.testing.assert_close(net.encoder.weight, start["encoder.weight"], rtol=0, atol=0)

    # each ingredient matters: leaving one out gives other weights
    for variant in ({"clip": None}, {"clip": 5.0, "schedule": False}, {"clip": 5.0, "decay_everything": True}):
        other = reference(**variant)
        assert any(not torch.allclose(trained[n], other[n], rtol=1e-4, atol=1e-6) for n in other), variant
