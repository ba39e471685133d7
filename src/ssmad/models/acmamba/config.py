"""ACMamba's configuration: one frozen dataclass, defaults equal to the official code (spec C.1–C.6).

The ablation switches let the paper's ablations be rerun with the same code path:

==================  =========================  ==============================================================
switch              default                    ablation
==================  =========================  ==============================================================
``training``        ``"region"``               ``"pixel"``: train on every pixel as its own region (σ = 0, so
                                               the sample is the pixel), same iterations — the baseline of
                                               the region-level speed-up claim
``dual_encoder``    ``True``                   ``False``: one encoder E1 + decoder; loss ``MSE(Dec(E1(s)), s⊙M)``
``gradient_surgery``  ``True``                 ``False``: plain sum of the two losses instead of PCGrad
``masking``         ``True``                   ``False``: no difficulty-aware masking (M = 1 always)
``rx_fusion``       ``True``                   ``False``: score = pixel reconstruction error only
``rsal_directions`` ``2``                      ``1``: forward-only RSAL scans (no reversed scan)
==================  =========================  ==============================================================

Masking rule (spec C.5): the official code masks ``floor(mask_ratio · N_r)`` regions, which is 0 on 100×100
scenes (N_r ≈ 66) — DAM then never acts. The default ``mask_min_regions = 0`` is that official rule (an independent
comparison on the same scenes matched the official code within 0.003 AUC(D,F) with it); ``mask_min_regions = 1``
masks at least one region so that DAM and its ablation act on small scenes too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError

__all__ = ["ACMambaConfig"]


@dataclass(frozen=True)
class ACMambaConfig:
    """ACMamba hyper-parameters.

    Attributes:
        psi: Pixels per SLIC region ψ; ``n_segments = floor(H·W / ψ)``.
        compactness: SLIC compactness.
        sigma: SLIC Gaussian smoothing.
        slic_max_iter: SLIC k-means iterations.
        hidden_dim: Encoder width (decoder output = band count).
        depth: RSAL blocks per network.
        d_state: SSM state size N.
        d_conv: Depthwise convolution taps along the region sequence.
        expand: RSAL inner expansion.
        drop_path_rate: Stochastic depth of the RSAL networks (0.1 upstream, which is 0 for one block).
        iterations: Training iterations (each one full pass over all regions).
        lr: AdamW learning rate.
        betas: AdamW betas.
        weight_decay: AdamW weight decay (applied to every parameter, as upstream).
        sample_scale: Representative samples ``μ + sample_scale·u·σ``, ``u ~ U(−1, 1)``.
        mask_ratio: Share of regions masked per iteration by difficulty-aware masking.
        mask_min_regions: Lower bound on the masked-region count (0 = the official rule, default; 1 = mask at least
            one region on small scenes); the count
            never exceeds ``N_r − 1``, so a one-region scene is not masked.
        training: ``"region"`` (ACMamba) or ``"pixel"`` (ablation).
        dual_encoder: Two encoders + shared decoder (consensus learning); ``False`` = one encoder.
        gradient_surgery: PCGrad on the two losses; ``False`` = plain sum.
        masking: Difficulty-aware masking on/off.
        rx_fusion: Multiply the pixel error by RX of the region residual cube; ``False`` = pixel error only.
        rsal_directions: Scan directions of every RSAL layer: 2 = forward + reversed (the paper), 1 = forward only.
        homogeneity_warn: A region homogeneity ratio above this logs a warning suggesting a smaller ψ (see
            :func:`~ssmad.models.acmamba.superpixels.homogeneity_ratio`).
        rx_reg: Relative ridge of the RX covariance (0 = ``spectral.rx``'s pseudo-inverse, as upstream).
        inference_chunk: Pixels per inference pass; 0 = the whole scene as one sequence (upstream). A positive
            value bounds memory on large scenes by scanning the raster sequence in consecutive pieces (changes
            results slightly: the scan restarts at each piece).
        scan_backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``, ``triton``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        seed: Seed of the network init, the samples and the masks (upstream uses 4).
        threshold_quantile: Quantile of the fitted scene's scores used as ``threshold_`` (label-free).
        progress: Show a progress bar over the training iterations.
    """

    psi: float = 150.0
    compactness: float = 1.0
    sigma: float = 0.5
    slic_max_iter: int = 10
    hidden_dim: int = 256
    depth: int = 1
    d_state: int = 16
    d_conv: int = 3
    expand: int = 2
    drop_path_rate: float = 0.1
    iterations: int = 100
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 5e-4
    sample_scale: float = 2.0
    mask_ratio: float = 0.01
    mask_min_regions: int = 0
    training: str = "region"
    dual_encoder: bool = True
    gradient_surgery: bool = True
    masking: bool = True
    rx_fusion: bool = True
    rsal_directions: int = 2
    homogeneity_warn: float = 0.05
    rx_reg: float = 0.0
    inference_chunk: int = 0
    scan_backend: str = "auto"
    device: str = "auto"
    seed: int = 4
    threshold_quantile: float = 0.99
    progress: bool = False

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"acmamba: {msg}")

        def positive_int(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if allow_zero else 1):
                fail(f"{name} must be an integer ≥ {0 if allow_zero else 1}, got {v!r}")

        for name in ("slic_max_iter", "hidden_dim", "depth", "d_state", "d_conv", "expand", "iterations"):
            positive_int(name)
        for name in ("mask_min_regions", "inference_chunk", "seed"):
            positive_int(name, allow_zero=True)
        if isinstance(self.rsal_directions, bool) or self.rsal_directions not in (1, 2):
            fail(f"rsal_directions must be 1 or 2, got {self.rsal_directions!r}")
        if self.d_conv % 2 == 0:
            fail(f"d_conv must be odd, got {self.d_conv}")
        for name in ("psi", "lr"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                fail(f"{name} must be a positive number, got {v!r}")
        for name in (
            "compactness",
            "sigma",
            "weight_decay",
            "sample_scale",
            "rx_reg",
            "drop_path_rate",
            "homogeneity_warn",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                fail(f"{name} must be a number ≥ 0, got {v!r}")
        if not 0 <= self.mask_ratio <= 1:
            fail(f"mask_ratio must be in [0, 1], got {self.mask_ratio!r}")
        if not 0 < self.threshold_quantile < 1:
            fail(f"threshold_quantile must be in (0, 1), got {self.threshold_quantile!r}")
        if len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            fail(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.training not in ("region", "pixel"):
            fail(f"training must be 'region' or 'pixel', got {self.training!r}")
        if self.scan_backend not in ("auto", "reference", "cpu", "torch", "cuda", "triton"):
            fail(f"scan_backend must be auto, reference, cpu, torch, cuda or triton, got {self.scan_backend!r}")
        if not isinstance(self.device, str) or self.device.split(":")[0] not in ("auto", "cpu", "cuda"):
            fail(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        for name in ("dual_encoder", "gradient_surgery", "masking", "rx_fusion", "progress"):
            if not isinstance(getattr(self, name), bool):
                fail(f"{name} must be true or false, got {getattr(self, name)!r}")
