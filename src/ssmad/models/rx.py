"""Reed–Xiaoli (RX) anomaly detectors for hyperspectral cubes: global RX and local (dual-window) RX.

RX (Reed & Yu 1990) scores a pixel spectrum ``x`` by its squared Mahalanobis distance to a background
distribution, ``(x − μ)ᵀ Σ⁻¹ (x − μ)``; higher = more anomalous. It is the baseline every hyperspectral anomaly
detection paper reports, and ACMamba applies it to its region residuals (spec C.6).

* **Global RX** (:func:`rx_scores`, :class:`RXDetector`): μ and Σ are the mean and the unbiased (``N − 1``)
  covariance of all pixels; Σ⁻¹ is the pseudo-inverse. With ``reg = 0`` this is exactly ``spectral.rx(X)``.
* **Local RX** (:func:`local_rx_scores`, :class:`LocalRXDetector`): μ and Σ come from the pixels of an ``outer``
  × ``outer`` window around the pixel minus an ``inner`` × ``inner`` guard window (default inner 5, outer 15, as
  in a public LRX implementation; ``15² − 5² = 200`` background pixels). Near the borders both windows are
  shifted to stay inside the image at full size, which is what ``spectral.rx(X, window=(inner, outer))`` does
  (its docstring says the inner window is clipped; its code shifts it), so every pixel has the same number of
  background samples. Window sums of the first moments come from a 2-D integral image; window sums of the second
  moments ``x xᵀ`` are slid row by row (add the row entering, drop the row leaving) and boxed along columns with
  prefix sums, so the work per pixel is O(B²) plus one batched Cholesky solve, and memory is O(W·B²) — there is
  no per-pixel Python loop.

Covariance regularisation: ``Σ + reg · (tr Σ / B) · I`` (a ridge relative to the mean eigenvalue). Local windows
often hold fewer samples than bands (200 < 205 on ABU scenes), which makes Σ singular, so local RX defaults to
``reg = 1e-3``; global RX defaults to ``reg = 0`` (plain pseudo-inverse, as SPy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ._hsi import HyperspectralDetector

logger = logging.getLogger(__name__)

__all__ = ["LocalRXConfig", "LocalRXDetector", "RXConfig", "RXDetector", "local_rx_scores", "rx_scores"]


# ---------------------------------------------------------------------------------------------------------------
# global RX
# ---------------------------------------------------------------------------------------------------------------
def background_stats(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of pixel spectra.

    Args:
        pixels: ``(N, B)`` spectra, N ≥ 2.

    Returns:
        ``mean`` ``(B,)`` and ``cov`` ``(B, B)`` (divided by ``N − 1``), float64.
    """
    x = np.asarray(pixels, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (x.shape[0] - 1)
    return mean, cov


def regularized_inverse(cov: np.ndarray, reg: float = 0.0) -> np.ndarray:
    """Pseudo-inverse of ``cov + reg · (tr(cov) / B) · I`` (symmetric eigendecomposition).

    Args:
        cov: ``(B, B)`` symmetric covariance.
        reg: Relative ridge; 0 gives the plain Moore–Penrose pseudo-inverse (``numpy.linalg.pinv``).

    Returns:
        ``(B, B)`` float64.
    """
    c = np.asarray(cov, dtype=np.float64)
    if reg > 0:
        b = c.shape[0]
        c = c + reg * (np.trace(c) / b) * np.eye(b)
    return np.linalg.pinv(c, hermitian=True)


def mahalanobis_sq(pixels: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances ``(x − mean)ᵀ inv_cov (x − mean)`` of ``(..., B)`` spectra → ``(...)``."""
    d = np.asarray(pixels, dtype=np.float64) - mean
    return np.einsum("...i,...i->...", d @ inv_cov, d)


def rx_scores(cube: np.ndarray, *, reg: float = 0.0) -> np.ndarray:
    """Global RX map of a cube: squared Mahalanobis distance to the scene mean under the scene covariance.

    Args:
        cube: ``(H, W, B)`` real array (validated by the caller).
        reg: Relative covariance ridge (0 = ``spectral.rx``).

    Returns:
        ``(H, W)`` float64, higher = more anomalous.
    """
    h, w, b = cube.shape
    flat = np.asarray(cube, dtype=np.float64).reshape(h * w, b)
    mean, cov = background_stats(flat)
    return mahalanobis_sq(flat, mean, regularized_inverse(cov, reg)).reshape(h, w)


# ---------------------------------------------------------------------------------------------------------------
# local (dual-window) RX
# ---------------------------------------------------------------------------------------------------------------
def window_starts(n: int, size: int) -> np.ndarray:
    """First index of a ``size``-long window centred on each of ``n`` positions, shifted to stay inside ``[0, n)``.

    Returns:
        ``(n,)`` int64 starts ``clip(i − size // 2, 0, n − size)``.
    """
    return np.clip(np.arange(n) - size // 2, 0, n - size)


def _check_windows(inner: int, outer: int, h: int, w: int, b: int, reg: float) -> None:
    if inner < 1 or outer < 1 or inner % 2 == 0 or outer % 2 == 0:
        raise ConfigError(f"lrx: window sizes must be odd positive integers, got inner={inner}, outer={outer}")
    if inner >= outer:
        raise ConfigError(f"lrx: the inner window ({inner}) must be smaller than the outer window ({outer})")
    if outer > min(h, w):
        raise InputError(
            f"cube: the scene is {h}×{w} pixels, smaller than the local RX outer window ({outer}); use a smaller "
            "window (e.g. outer=" + str(max(3, (min(h, w) - 1) // 2 * 2 + 1)) + ") or global RX"
        )
    n = outer * outer - inner * inner
    if n < 2:
        raise ConfigError(f"lrx: the windows leave {n} background pixel(s); use a larger outer window")
    if reg <= 0 and n <= b:
        logger.warning(
            "lrx: %d background pixels per window for %d bands make the local covariance singular; the "
            "pseudo-inverse is used (set reg > 0 for a ridge)",
            n,
            b,
        )


def local_rx_scores(
    cube: np.ndarray,
    *,
    inner: int = 5,
    outer: int = 15,
    reg: float = 1e-3,
    device: str = "cpu",
) -> np.ndarray:
    """Local (dual-window) RX map.

    For every pixel, μ and Σ (unbiased) are computed from the ``outer × outer`` window minus the ``inner × inner``
    guard window, both shifted at the borders to stay inside the image (SPy semantics).

    Args:
        cube: ``(H, W, B)`` real array (validated by the caller).
        inner: Guard window size (odd).
        outer: Background window size (odd, > inner, ≤ min(H, W)).
        reg: Relative covariance ridge ``reg · tr(Σ)/B``; 0 = pseudo-inverse (SPy).
        device: Torch device for the batched solves (``cpu`` or ``cuda``).

    Returns:
        ``(H, W)`` float64, higher = more anomalous.
    """
    h, w, b = cube.shape
    _check_windows(inner, outer, h, w, b, reg)
    dev = torch.device(device)
    x_np = np.asarray(cube, dtype=np.float64)
    x_np = x_np - x_np.reshape(-1, b).mean(axis=0)  # RX is translation invariant; centring keeps sums small
    x = torch.from_numpy(x_np).to(dev)
    n = outer * outer - inner * inner

    r_out, c_out = window_starts(h, outer), window_starts(w, outer)
    r_in, c_in = window_starts(h, inner), window_starts(w, inner)

    # first moments: one 2-D integral image (H+1, W+1, B)
    integral = torch.zeros((h + 1, w + 1, b), dtype=torch.float64, device=dev)
    integral[1:, 1:] = x.cumsum(0).cumsum(1)

    def box1(rs: np.ndarray, cs: np.ndarray, size: int) -> torch.Tensor:
        r0 = torch.as_tensor(rs, device=dev)[:, None]
        c0 = torch.as_tensor(cs, device=dev)[None, :]
        r1, c1 = r0 + size, c0 + size
        return integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]

    s1 = box1(r_out, c_out, outer) - box1(r_in, c_in, inner)  # (H, W, B)
    mean = s1 / n

    # second moments: column sums of x xᵀ over the current row window, slid down the image row by row, then
    # boxed along the columns with prefix sums (windows shifted at the borders, like the rows)
    scores = torch.empty((h, w), dtype=torch.float64, device=dev)
    p_out = _row_moments(x[int(r_out[0]) : int(r_out[0]) + outer])  # (W, B, B)
    p_in = _row_moments(x[int(r_in[0]) : int(r_in[0]) + inner])
    prefix = torch.zeros((w + 1, b, b), dtype=torch.float64, device=dev)
    cov = torch.empty((w, b, b), dtype=torch.float64, device=dev)
    for r in range(h):
        if r > 0:
            _slide_(p_out, x, int(r_out[r - 1]), int(r_out[r]), outer)
            _slide_(p_in, x, int(r_in[r - 1]), int(r_in[r]), inner)
        torch.cumsum(p_out, dim=0, out=prefix[1:])
        _column_boxes_(cov, prefix, outer, subtract=False)
        torch.cumsum(p_in, dim=0, out=prefix[1:])
        _column_boxes_(cov, prefix, inner, subtract=True)  # cov now holds S2, the ring's Σ x xᵀ
        mu = mean[r]  # (W, B)
        cov.baddbmm_(mu.unsqueeze(2), mu.unsqueeze(1), alpha=-n).div_(n - 1)
        if reg > 0:
            diag = torch.diagonal(cov, dim1=-2, dim2=-1)
            diag.add_(reg * diag.mean(-1, keepdim=True))
        scores[r] = _quad_inverse(cov, x[r] - mu)
    return scores.cpu().numpy()


def _row_moments(rows: torch.Tensor) -> torch.Tensor:
    """Per-column sums of outer products over some rows: ``(r, W, B)`` → ``(W, B, B)``."""
    xr = rows.permute(1, 2, 0)  # (W, B, r)
    return torch.bmm(xr, xr.transpose(1, 2))


def _slide_(p: torch.Tensor, x: torch.Tensor, old: int, new: int, size: int) -> None:
    """Move, in place, a row window of second-moment column sums from start ``old`` to ``new`` (new ≥ old)."""
    if new == old:
        return
    if new - old >= size:  # no overlap (cannot happen for unit steps, kept for safety)
        p.copy_(_row_moments(x[new : new + size]))
        return
    leaving = x[old:new].permute(1, 2, 0)  # (W, B, k)
    entering = x[old + size : new + size].permute(1, 2, 0)
    p.baddbmm_(leaving, leaving.transpose(1, 2), alpha=-1).baddbmm_(entering, entering.transpose(1, 2))


def _column_boxes_(out: torch.Tensor, prefix: torch.Tensor, size: int, *, subtract: bool) -> None:
    """Write (or subtract) ``size``-wide column box sums, windows shifted to stay inside the image.

    Args:
        out: ``(W, ...)`` destination, changed in place.
        prefix: ``(W + 1, ...)`` prefix sums along the columns (``prefix[0] = 0``).
        size: Window width (odd, ≤ W).
        subtract: Subtract the boxes from ``out`` instead of writing them.
    """
    w = out.shape[0]
    half = size // 2
    inner = out[half : w - half]  # columns whose window is centred: starts 0 .. W - size
    first = prefix[size] - prefix[0]  # window of the leftmost columns
    last = prefix[w] - prefix[w - size]  # window of the rightmost columns
    if subtract:
        inner.sub_(prefix[size:]).add_(prefix[: w - size + 1])
        out[:half] -= first
        out[w - half :] -= last
    else:
        torch.sub(prefix[size:], prefix[: w - size + 1], out=inner)
        out[:half] = first
        out[w - half :] = last


def _quad_inverse(cov: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``dᵀ cov⁻¹ d`` for a batch: Cholesky where positive definite, pseudo-inverse (SPy) elsewhere.

    Args:
        cov: ``(n, B, B)`` symmetric.
        d: ``(n, B)``.

    Returns:
        ``(n,)``.
    """
    chol, info = torch.linalg.cholesky_ex(cov)
    ok = info == 0
    out = torch.empty(d.shape[0], dtype=cov.dtype, device=cov.device)
    if bool(ok.any()):
        y = torch.linalg.solve_triangular(chol[ok], d[ok].unsqueeze(-1), upper=False)
        out[ok] = y.squeeze(-1).square().sum(-1)
    if not bool(ok.all()):
        bad = ~ok
        inv = torch.linalg.pinv(cov[bad], hermitian=True)
        db = d[bad]
        out[bad] = torch.einsum("nb,nbc,nc->n", db, inv, db)
    return out


# ---------------------------------------------------------------------------------------------------------------
# detectors
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RXConfig:
    """Global RX options.

    Attributes:
        reg: Relative covariance ridge ``reg · tr(Σ)/B``; 0 = plain pseudo-inverse (equals ``spectral.rx``).
        threshold_quantile: Quantile of the fitted scene's scores used as ``threshold_`` (label-free).
        device: Accepted for a uniform API; global RX runs in float64 NumPy on the CPU (it is one B×B inverse).
    """

    reg: float = 0.0
    threshold_quantile: float = 0.99
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_common(self.reg, self.threshold_quantile, "rx")
        _check_device(self.device, "rx")


@dataclass(frozen=True)
class LocalRXConfig:
    """Local (dual-window) RX options.

    Attributes:
        inner: Guard window size in pixels (odd); the pixel's neighbours inside it are not background.
        outer: Background window size in pixels (odd, > inner).
        reg: Relative covariance ridge ``reg · tr(Σ)/B`` (needed when the window holds fewer pixels than bands).
        threshold_quantile: Quantile of the fitted scene's scores used as ``threshold_``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda`` for the batched solves.
    """

    inner: int = 5
    outer: int = 15
    reg: float = 1e-3
    threshold_quantile: float = 0.99
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_common(self.reg, self.threshold_quantile, "lrx")
        for key in ("inner", "outer"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or value % 2 == 0:
                raise ConfigError(f"lrx: {key} must be an odd positive integer, got {value!r}")
        if self.inner >= self.outer:
            raise ConfigError(f"lrx: inner ({self.inner}) must be smaller than outer ({self.outer})")
        _check_device(self.device, "lrx")


def _check_common(reg: float, q: float, model: str) -> None:
    if not isinstance(reg, (int, float)) or reg < 0:
        raise ConfigError(f"{model}: reg must be a number ≥ 0, got {reg!r}")
    if not isinstance(q, (int, float)) or not 0 < q < 1:
        raise ConfigError(f"{model}: threshold_quantile must be in (0, 1), got {q!r}")


def _check_device(device: str, model: str) -> None:
    if not isinstance(device, str) or device.split(":")[0] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{model}: device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU → :class:`ConfigError`."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but no CUDA device is visible; use device='cpu' or 'auto'")
    return device


class RXDetector(HyperspectralDetector):
    """Global RX: squared Mahalanobis distance of each pixel to the scene's background statistics.

    ``fit(cube)`` learns ``mean_`` ``(B,)`` and ``inv_cov_`` ``(B, B)`` from the cube's pixels;
    ``decision_function(other)`` scores another cube against them. Higher = more anomalous.

    Example:
        >>> det = ssmad.create_model("rx")  # doctest: +SKIP
        >>> amap = det.fit_predict(cube)  # (H, W)  # doctest: +SKIP
    """

    model_name = "rx"
    config_class = RXConfig

    def _fit(self, cube: np.ndarray) -> np.ndarray:
        h, w, b = cube.shape
        flat = cube.reshape(h * w, b)
        self.mean_, cov = background_stats(flat)
        self.inv_cov_ = regularized_inverse(cov, self.config.reg)
        return mahalanobis_sq(flat, self.mean_, self.inv_cov_).reshape(h, w)

    def _score(self, cube: np.ndarray) -> np.ndarray:
        return mahalanobis_sq(cube, self.mean_, self.inv_cov_)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"mean_": self.mean_, "inv_cov_": self.inv_cov_} if hasattr(self, "mean_") else {}

    def _load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        if "mean_" in arrays:
            self.mean_, self.inv_cov_ = arrays["mean_"], arrays["inv_cov_"]


class LocalRXDetector(HyperspectralDetector):
    """Local (dual-window) RX: each pixel against the statistics of its own surrounding ring of pixels.

    Local statistics belong to each scene, so ``fit`` only validates and scores; ``decision_function(other)``
    computes the other scene's own local statistics. Higher = more anomalous.
    """

    model_name = "lrx"
    config_class = LocalRXConfig

    def _fit(self, cube: np.ndarray) -> np.ndarray:
        return self._score(cube)

    def _score(self, cube: np.ndarray) -> np.ndarray:
        cfg = self.config
        return local_rx_scores(cube, inner=cfg.inner, outer=cfg.outer, reg=cfg.reg, device=resolve_device(cfg.device))
