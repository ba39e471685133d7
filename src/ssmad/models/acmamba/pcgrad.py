"""Gradient surgery (PCGrad, Yu et al. 2020) over flattened gradients, as ACMamba's consensus learning uses it.

For losses ``L_1 … L_K`` with full gradients ``g_k`` (all parameters flattened into one vector, zeros where a
loss does not reach a parameter):

1. for each ``i``, start from ``g_i`` and visit every ``g_j`` (the original, unprojected gradients, in a random
   order); when ``g_i · g_j < 0`` (they conflict) remove the conflicting component:
   ``g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j``;
2. merge: on parameters that every loss reaches, the **mean** of the projected gradients; on the others, their
   **sum** (so a parameter owned by one branch keeps that branch's full step).

In ACMamba the decoder is shared (mean) while each encoder is reached by one loss only (sum). One optimiser step
follows. The order of step 1 is drawn from the given generator, so runs are reproducible.

:func:`pcgrad_backward` also reports, from the gradients it has already computed (no extra backward pass), the
diagnostics ACMamba's consensus learning rests on (:class:`PCGradStats`): the cosine between the first two
losses' gradients on the *shared* parameters (those every loss reaches) before any projection, and whether any
projection happened. A cosine that is rarely negative means the two losses do not conflict and gradient surgery
does nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PCGradStats", "pcgrad_backward", "project_conflicting"]


@dataclass(frozen=True)
class PCGradStats:
    """What one PCGrad step saw.

    Attributes:
        cosine: Cosine between the gradients of the first two losses restricted to the shared parameters, before
            projection (NaN when either is zero there or nothing is shared).
        projected: Whether any projection happened (some pair of full gradients had a negative dot product).
    """

    cosine: float
    projected: bool


def project_conflicting(
    grads: Sequence[Tensor], reached: Sequence[Tensor], generator: torch.Generator | None = None
) -> Tensor:
    """Project conflicting gradients and merge them.

    Args:
        grads: K flattened gradients, each ``(P,)``.
        reached: K boolean masks ``(P,)``: which entries each loss reaches.
        generator: CPU generator for the visiting order.

    Returns:
        Merged gradient ``(P,)``.
    """
    k = len(grads)
    projected = []
    for i in range(k):
        g = grads[i].clone()
        for j in torch.randperm(k, generator=generator).tolist():
            gj = grads[j]
            dot = torch.dot(g, gj)
            if dot < 0:
                g = g - dot / gj.dot(gj) * gj
        projected.append(g)
    stacked = torch.stack(projected)
    shared = torch.stack(list(reached)).all(dim=0)
    return torch.where(shared, stacked.mean(dim=0), stacked.sum(dim=0))


def pcgrad_backward(
    losses: Sequence[Tensor], params: Sequence[torch.nn.Parameter], generator: torch.Generator | None = None
) -> PCGradStats:
    """Set ``p.grad`` of ``params`` to the PCGrad merge of the losses' gradients (replacing any old value).

    Same result as :func:`project_conflicting` on the flattened gradients; since "reached" is a property of whole
    parameters, the merge (mean on shared parameters, sum elsewhere) is applied as one per-entry scale.

    Args:
        losses: K ≥ 2 scalar losses sharing one graph.
        params: The parameters to update.
        generator: CPU generator for the visiting order of the projections.

    Returns:
        :class:`PCGradStats` of this step (cosine of losses 0 and 1 on the shared parameters, projection flag).
    """
    k = len(losses)
    flats = []
    hits = torch.zeros(len(params), dtype=torch.long)
    for n, loss in enumerate(losses):
        gs = torch.autograd.grad(loss, params, retain_graph=n < k - 1, allow_unused=True)
        parts = [(torch.zeros_like(p) if g is None else g).reshape(-1) for p, g in zip(params, gs, strict=True)]
        flats.append(torch.cat(parts))
        hits += torch.tensor([g is not None for g in gs], dtype=torch.long)
    # Every projected g_i stays in the span of the original gradients, so the projections run on coefficients
    # against their Gram matrix (k² dot products) and the big vectors are combined once at the end — the same
    # result as project_conflicting's vector arithmetic, without a (K, P) temporary per step.
    gram = torch.empty(k, k, dtype=torch.float64)
    for i in range(k):
        for j in range(i, k):
            gram[i, j] = gram[j, i] = float(torch.dot(flats[i], flats[j]))
    weights = torch.zeros(k, dtype=torch.float64)  # merged sum = Σ_j weights[j] g_j
    projected = False
    for i in range(k):
        coef = torch.zeros(k, dtype=torch.float64)
        coef[i] = 1.0
        for j in torch.randperm(k, generator=generator).tolist():
            dot = float(coef @ gram[:, j])  # g_i' · g_j
            if dot < 0:
                coef[j] -= dot / float(gram[j, j])
                projected = True
        weights += coef
    cosine = _shared_cosine(flats[0], flats[1], params, hits == k) if k >= 2 else math.nan
    merged = flats[0] * float(weights[0])
    for j in range(1, k):
        merged.add_(flats[j], alpha=float(weights[j]))
    offset = 0
    for p, hit in zip(params, hits.tolist(), strict=True):
        n = p.numel()
        grad = merged[offset : offset + n].view_as(p)
        if hit == k:  # reached by every loss: mean instead of sum
            grad.div_(k)
        p.grad = grad
        offset += n
    return PCGradStats(cosine=cosine, projected=projected)


def _shared_cosine(g0: Tensor, g1: Tensor, params: Sequence[torch.nn.Parameter], shared: Tensor) -> float:
    """Cosine of two flattened gradients over the entries of the parameters flagged in ``shared``."""
    dot = n0 = n1 = 0.0
    offset = 0
    for p, flag in zip(params, shared.tolist(), strict=True):
        n = p.numel()
        if flag:
            a, b = g0[offset : offset + n].double(), g1[offset : offset + n].double()
            dot += float(a.dot(b))
            n0 += float(a.dot(a))
            n1 += float(b.dot(b))
        offset += n
    norm = math.sqrt(n0 * n1)
    return dot / norm if norm > 0 else math.nan
