"""MambaADv2's model configuration: one frozen dataclass (*inspired-by*: no official code or defaults exist).

Shared with MambaAD (:class:`~ssmad.models.mambaad.MambaADConfig`): encoder, image size, MFF_OCE, loss and
anomaly map. New: the DSS decoder's HSS-v2 blocks (SSD heads, Mamba-3 switches, the two paths), the frequency-
enhanced convolution and the progressive scan plan. Every novelty is one boolean, so an ablation switches it off:

==================  =============================================================================================
switch              off means
==================  =============================================================================================
``recurrent_path``  no scan path (the block keeps only the matrix path)
``matrix_path``     no global matrix path (the block keeps only the recurrent scans)
``trapezoid``       Mamba-2's Euler/ZOH step instead of the exponential-trapezoidal rule
``rotary``          real state (no data-dependent rotary B/C)
``bc_norm``         no RMSNorm + bias on B/C
``freq_conv``       MambaAD's 5×5 / 7×7 depthwise branches (``lss_kernel_sizes``) instead of the frequency conv
``progressive``     ``num_directions`` directions at every stage (MambaAD: Hilbert × 8) instead of the plan
==================  =============================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...scans import SCAN_NAMES
from .._recon import MapLossConfigMixin, ReconConfigMixin, size_pair

__all__ = ["MambaADv2Config"]

SSD_BACKENDS = ("auto", "ssd", "selective", "reference")


@dataclass(frozen=True)
class MambaADv2Config(MapLossConfigMixin, ReconConfigMixin):
    """MambaADv2 network, loss and anomaly-map options.

    Attributes:
        encoder: timm encoder name (as MambaAD; ``resnet34`` by default).
        pretrained: Load ImageNet weights for the encoder (offline).
        encoder_weights: Explicit encoder weights file.
        allow_download: Let timm download encoder weights when none are found locally.
        image_size: Network input size, an int or ``(height, width)``; multiples of 32, at least 64.
        decoder_depths: HSS-v2 blocks per decoder stage (split into DSS modules of 3 or 2 blocks, as MambaAD).
        bottleneck_dim: Width of the stride-32 bottleneck (default ``2 ×`` the encoder's stride-16 channels).
        oce_blocks: ResNet bottleneck blocks in MFF_OCE.
        d_state: SSD state size N (even with ``rotary``).
        headdim: Channels per SSD head P.
        expand: Inner expansion of the HSS-v2 layer.
        d_conv: Depthwise 2-D convolution kernel on ``x, B, C`` (odd; 1 = none).
        chunk_size: Chunk length of the SSD scan.
        scan_type: Scan curve (``hilbert`` …).
        num_directions: Directions per stage without the progressive plan, and the coarsest stage's with it.
        progressive: Semantics-adaptive progressive scan plan (:mod:`ssmad.models.mambaadv2.scanning`).
        rho_low: Plan threshold below which a stage gets twice its base directions.
        rho_high: Plan threshold from which a stage gets half its base directions.
        recurrent_path: HSS-v2 recurrent (scan) path.
        matrix_path: HSS-v2 parallel matrix (global comparison) path.
        trapezoid: Mamba-3 exponential-trapezoidal discretisation.
        rotary: Mamba-3 data-dependent rotary state.
        bc_norm: Mamba-3 RMSNorm + bias on B and C.
        freq_conv: Frequency-enhanced convolution in the DSS modules (off: MambaAD's depthwise branches).
        lss_kernel_sizes: MambaAD's depthwise kernels, used when ``freq_conv`` is off.
        drop_path_rate: Largest stochastic-depth rate of the decoder (MambaAD's schedule).
        loss: ``mse`` (``5 · Σ MSE``) or ``cosine``.
        loss_weight: Loss factor (default 5 for ``mse``, 1 for ``cosine``).
        sigma: Gaussian σ of the anomaly-map smoothing.
        map_divisor: Constant the summed map is divided by.
        scan_backend: Recurrent-path kernel (``auto``, ``ssd``, ``selective``, ``reference``; see
            :func:`ssmad.layers.hss2.sequence_ssd`).
    """

    model_key = "mambaadv2"

    encoder: str = "resnet34"
    pretrained: bool = True
    encoder_weights: str | None = None
    allow_download: bool = False
    image_size: int | tuple[int, int] = 256
    decoder_depths: tuple[int, ...] = (3, 4, 6, 3)
    bottleneck_dim: int | None = None
    oce_blocks: int = 3
    d_state: int = 16
    headdim: int = 16
    expand: float = 2.0
    d_conv: int = 3
    chunk_size: int = 64
    scan_type: str = "hilbert"
    num_directions: int = 8
    progressive: bool = True
    rho_low: float = 0.1
    rho_high: float = 0.3
    recurrent_path: bool = True
    matrix_path: bool = True
    trapezoid: bool = True
    rotary: bool = True
    bc_norm: bool = True
    freq_conv: bool = True
    lss_kernel_sizes: tuple[int, ...] = (5, 7)
    drop_path_rate: float = 0.2
    loss: str = "mse"
    loss_weight: float | None = None
    sigma: float = 4.0
    map_divisor: float = 9.0
    scan_backend: str = "auto"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"mambaadv2: {msg}")

        if not isinstance(self.encoder, str) or not self.encoder:
            fail(f"encoder must be a timm model name such as 'resnet34', got {self.encoder!r}")
        flags = (
            "pretrained",
            "allow_download",
            "progressive",
            "recurrent_path",
            "matrix_path",
            "trapezoid",
            "rotary",
            "bc_norm",
            "freq_conv",
        )
        for name in flags:
            if not isinstance(getattr(self, name), bool):
                fail(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not (self.recurrent_path or self.matrix_path):
            fail("switch on at least one of recurrent_path and matrix_path")
        h, w = size_pair(self.image_size, "mambaadv2")
        if h < 64 or w < 64 or h % 32 or w % 32:
            fail(
                f"image_size must be a multiple of 32 and at least 64 on both sides (e.g. 128, 256), got "
                f"{self.image_size!r}: the decoder upsamples the stride-32 bottleneck ×2 three times"
            )
        object.__setattr__(self, "image_size", self.image_size if isinstance(self.image_size, int) else (h, w))
        depths = tuple(int(d) for d in self.decoder_depths)
        if len(depths) != 4 or any(d < 1 or (d % 3 and d % 2) for d in depths):
            fail(f"decoder_depths must be 4 depths, each divisible by 2 or 3 (e.g. 3, 4, 6, 3), got {depths}")
        object.__setattr__(self, "decoder_depths", depths)
        if self.bottleneck_dim is not None and (int(self.bottleneck_dim) < 4 or int(self.bottleneck_dim) % 4):
            fail(f"bottleneck_dim must be a positive multiple of 4, got {self.bottleneck_dim!r}")
        for name in ("oce_blocks", "d_state", "headdim", "d_conv", "chunk_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                fail(f"{name} must be a positive integer, got {v!r}")
        if self.d_conv % 2 == 0:
            fail(f"d_conv must be odd, got {self.d_conv}")
        if self.rotary and self.d_state % 2:
            fail(f"rotary needs an even d_state (pairs of state dimensions rotate), got {self.d_state}")
        if float(self.expand) <= 0:
            fail(f"expand must be positive, got {self.expand!r}")
        if self.scan_type not in SCAN_NAMES:
            fail(f"scan_type must be one of {', '.join(SCAN_NAMES)}, got {self.scan_type!r}")
        if self.num_directions not in (1, 2, 4, 8):
            fail(f"num_directions must be 1, 2, 4 or 8, got {self.num_directions!r}")
        if not float(self.rho_low) <= float(self.rho_high):
            fail(f"rho_low must not exceed rho_high, got {self.rho_low!r} > {self.rho_high!r}")
        if not 0.0 <= float(self.drop_path_rate) < 1.0:
            fail(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")
        kernels = tuple(int(k) for k in self.lss_kernel_sizes)
        if any(k < 1 or k % 2 == 0 for k in kernels) or len(set(kernels)) != len(kernels):
            fail(f"lss_kernel_sizes must be distinct odd integers (MambaAD: 5, 7), got {self.lss_kernel_sizes!r}")
        if not self.freq_conv and not kernels:
            fail("freq_conv is off and lss_kernel_sizes is empty: the DSS modules would have no local branch")
        object.__setattr__(self, "lss_kernel_sizes", kernels)
        self._check_loss_and_map(fail)
        if self.scan_backend not in SSD_BACKENDS:
            fail(f"scan_backend must be one of {', '.join(SSD_BACKENDS)}, got {self.scan_backend!r}")
