"""3-D ROC (spec C.10) on hand cases: perfect detector, inverted detector, a small continuous case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ssmad.errors import InputError
from ssmad.metrics import HSI_METRICS, hsi_metrics


def _derived(df: float, dt: float, ft: float) -> dict[str, float]:
    return {
        "AUC_DF": df,
        "AUC_Dtau": dt,
        "AUC_Ftau": ft,
        "AUC_TD": df + dt,
        "AUC_BS": df - ft,
        "AUC_TDBS": dt - ft,
        "AUC_ODP": dt + 1 - ft,
        "AUC_OD": df + dt - ft,
        "AUC_SNPR": dt / ft,
    }


def test_perfect_detector() -> None:
    gt = np.zeros((5, 5), bool)
    gt[1:3, 2] = True
    # normalised map: targets 1, background 0 → thresholds {1, 0}: P_D = (1, 1), P_F = (0, 1) at τ = (1, 0)
    got = hsi_metrics(gt * 7.0 + 2.0, gt)
    assert got == pytest.approx(_derived(1.0, 1.0, 0.5), abs=1e-12)
    assert list(got) == list(HSI_METRICS)


def test_inverted_detector() -> None:
    gt = np.zeros((4, 6), bool)
    gt[0, :3] = True
    # targets 0, background 1 → at τ = 1: P_D = 0, P_F = 1; at τ = 0: both 1
    got = hsi_metrics((~gt).astype(float), gt)
    assert got == pytest.approx(_derived(0.0, 0.5, 1.0), abs=1e-12)


def test_small_continuous_case() -> None:
    # scores 0, 1, 2, 3, 4 → τ = 0, .25, .5, .75, 1; anomalous at τ = .75 and 1 (P = 2), background N = 3.
    # P_D(τ) for τ = 1, .75, .5, .25, 0: .5, 1, 1, 1, 1 → area over τ: .25·(.5+1)/2 + .75 = .9375
    # P_F(τ): 0, 0, 1/3, 2/3, 1 → area: 0 + .25·(1/3)/2 + .25·(1/3 + 2/3)/2 + .25·(2/3 + 1)/2 = .375
    scores = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    gt = np.array([[0, 0, 0, 1, 1]])
    got = hsi_metrics(scores, gt)
    assert got == pytest.approx(_derived(1.0, 0.9375, 0.375), abs=1e-12)
    # a tie across the classes moves AUC_DF below 1 exactly as sklearn says
    tied = np.array([[0.0, 1.0, 3.0, 3.0, 4.0]])
    assert hsi_metrics(tied, gt)["AUC_DF"] == pytest.approx(roc_auc_score(gt.ravel(), tied.ravel()))


def test_undefined_cases(caplog: pytest.LogCaptureFixture) -> None:
    assert all(np.isnan(v) for v in hsi_metrics(np.random.default_rng(0).random((4, 4)), np.zeros((4, 4))).values())
    const = hsi_metrics(np.ones((4, 4)), np.eye(4))
    assert const["AUC_DF"] == 0.5 and np.isnan(const["AUC_Dtau"])
    assert "undefined" in caplog.text
    with pytest.raises(InputError, match="differ in shape"):
        hsi_metrics(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InputError, match="NaN"):
        hsi_metrics(np.full((4, 4), np.nan), np.eye(4))
