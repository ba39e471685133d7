"""MambaAD's model configuration: one frozen dataclass, defaults equal to the paper's official code (spec A.1–A.8).

Training hyper-parameters (AdamW, lr 0.005·bs/16, the ×0.1 step at 80 %, clip 5, seed 42 — spec A.9) belong to the
run's ``trainer`` section (:class:`ssmad.engine.config.TrainerConfig`); this class holds what defines the network,
its loss and its anomaly map.

Decoder widths. The decoder's last three stages are compared with the encoder's stride-16/8/4 features, so their
widths are the encoder's channels; the bottleneck (stride 32) is twice the stride-16 width::

    decoder_dims = (2·c16, c16, c8, c4)      ResNet18/34: (512, 256, 128, 64) — the paper's widths
                                             WideResNet50-2: (2048, 1024, 512, 256)
                                             EfficientNet-lite0: (224, 112, 40, 24)

``bottleneck_dim`` overrides the first entry (it must be a multiple of 4: MFF_OCE ends in ResNet bottleneck blocks
of expansion 4). Input sizes must be multiples of 32 (e.g. 224, 256, 288, 320): the bottleneck sits at stride 32
and is upsampled ×2 three times; other sizes are rejected with a clear error rather than silently resized.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from ...scans import SCAN_NAMES
from .._recon import MapLossConfigMixin, ReconConfigMixin

__all__ = ["MambaADConfig"]

SCAN_BACKENDS = ("auto", "reference", "cpu", "torch", "cuda", "triton")


@dataclass(frozen=True)
class MambaADConfig(MapLossConfigMixin, ReconConfigMixin):
    """MambaAD network, loss and anomaly-map options.

    Attributes:
        encoder: timm encoder name (:data:`ssmad.encoders.ENCODERS`; paper: ``resnet34``).
        pretrained: Load ImageNet weights for the encoder (offline; see :mod:`ssmad.encoders.weights`).
        encoder_weights: Explicit encoder weights file.
        allow_download: Let timm download encoder weights when none are found locally.
        image_size: Network input size, an int or ``(height, width)``; multiples of 32, at least 64.
        decoder_depths: HSS blocks per decoder stage (stride 32, 16, 8, 4); a depth divisible by 3 becomes LSS
            modules of 3 blocks, else one divisible by 2 becomes modules of 2 blocks.
        bottleneck_dim: Width of the stride-32 bottleneck (default ``2 ×`` the encoder's stride-16 channels).
        oce_blocks: ResNet bottleneck blocks in the one-class embedding of MFF_OCE.
        d_state: SSM state size N.
        d_conv: Depthwise convolution kernel inside SS2D.
        expand: SS2D inner expansion.
        dt_rank: SS2D step-projection rank (``"auto"`` = ``ceil(C/16)``).
        scan_type: Scan curve: ``hilbert`` (paper), ``sweep``, ``scan``, ``zorder``, ``zigzag``.
        num_directions: Scan directions K (1, 2, 4, 8; paper: 8).
        drop_path_rate: Largest stochastic-depth rate of the decoder (schedule: spec A.3).
        lss_kernel_sizes: Depthwise kernels of the LSS local branches (paper: 5 and 7).
        loss: ``mse`` (official code: ``5 · Σ MSE``) or ``cosine`` (ADer's flattened ``CosLoss``).
        loss_weight: Loss factor (default 5 for ``mse``, 1 for ``cosine``).
        sigma: Gaussian σ of the anomaly-map smoothing (0: none).
        map_divisor: Constant the summed map is divided by (ADer: 9 = 3 scales × Σ weights; irrelevant to
            rankings, kept for comparable map values).
        scan_backend: Selective-scan backend (``auto``, ``reference``, ``cpu``, ``torch``, ``cuda``, ``triton``).
    """

    model_key = "mambaad"  # error-message name (a plain class attribute, not a dataclass field)

    encoder: str = "resnet34"
    pretrained: bool = True
    encoder_weights: str | None = None
    allow_download: bool = False
    image_size: int | tuple[int, int] = 256
    decoder_depths: tuple[int, ...] = (3, 4, 6, 3)
    bottleneck_dim: int | None = None
    oce_blocks: int = 3
    d_state: int = 16
    d_conv: int = 3
    expand: float = 2.0
    dt_rank: int | str = "auto"
    scan_type: str = "hilbert"
    num_directions: int = 8
    drop_path_rate: float = 0.2
    lss_kernel_sizes: tuple[int, ...] = (5, 7)
    loss: str = "mse"
    loss_weight: float | None = None
    sigma: float = 4.0
    map_divisor: float = 9.0
    scan_backend: str = "auto"

    def __post_init__(self) -> None:
        def fail(msg: str) -> None:
            raise ConfigError(f"mambaad: {msg}")

        self._check_encoder_and_size("resnet34", "instance norms")
        depths = tuple(int(d) for d in self.decoder_depths)
        if len(depths) != 4 or any(d < 1 or (d % 3 and d % 2) for d in depths):
            fail(f"decoder_depths must be 4 depths, each divisible by 2 or 3 (paper: 3, 4, 6, 3), got {depths}")
        object.__setattr__(self, "decoder_depths", depths)
        if self.bottleneck_dim is not None and (int(self.bottleneck_dim) < 4 or int(self.bottleneck_dim) % 4):
            fail(f"bottleneck_dim must be a positive multiple of 4, got {self.bottleneck_dim!r}")
        for name in ("oce_blocks", "d_state", "d_conv"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                fail(f"{name} must be a positive integer, got {v!r}")
        if self.d_conv % 2 == 0:
            fail(f"d_conv must be odd, got {self.d_conv}")
        if float(self.expand) <= 0:
            fail(f"expand must be positive, got {self.expand!r}")
        if self.scan_type not in SCAN_NAMES:
            fail(f"scan_type must be one of {', '.join(SCAN_NAMES)}, got {self.scan_type!r}")
        if self.num_directions not in (1, 2, 4, 8):
            fail(f"num_directions must be 1, 2, 4 or 8 (paper: 8), got {self.num_directions!r}")
        if not 0.0 <= float(self.drop_path_rate) < 1.0:
            fail(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")
        kernels = tuple(int(k) for k in self.lss_kernel_sizes)
        if any(k < 1 or k % 2 == 0 for k in kernels) or len(set(kernels)) != len(kernels):
            fail(f"lss_kernel_sizes must be distinct odd integers (paper: 5, 7), got {self.lss_kernel_sizes!r}")
        object.__setattr__(self, "lss_kernel_sizes", kernels)
        self._check_loss_and_map(fail)
        if self.scan_backend not in SCAN_BACKENDS:
            fail(f"scan_backend must be one of {', '.join(SCAN_BACKENDS)}, got {self.scan_backend!r}")
