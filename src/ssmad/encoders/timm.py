"""Frozen multi-scale CNN encoders built on timm's ``features_only`` models.

MambaAD (and RD4AD) compare a decoder's features with those of a frozen ImageNet CNN at three scales, strides
4, 8 and 16 of the input (ResNet34 ``layer1``–``layer3``: 64@64², 128@32², 256@16² for a 256² image, spec A.1).
:class:`TimmEncoder` wraps any timm architecture that exposes those strides:

* the feature stages are chosen by stride from timm's ``feature_info`` (``out_indices`` (1, 2, 3) for ResNets,
  EfficientNets and MobileNetV2), and their channels are read from it (:attr:`TimmEncoder.channels`);
* unused trailing stages are not built or run (timm's EfficientNet feature model keeps them; they are cut);
* the encoder is frozen: parameters without gradients, forward under ``torch.no_grad``, and always in eval mode
  (``train()`` is overridden) so BatchNorm statistics never move;
* :attr:`TimmEncoder.mean` / :attr:`TimmEncoder.std` are the normalisation of the pretrained weights (ImageNet
  for ResNets and MobileNetV2, 0.5/0.5 for ``tf_efficientnet_lite*``), to be recorded in the preprocessing;
* weights come from :mod:`ssmad.encoders.weights` (offline first; ``pretrained=False`` is random on purpose).

Tested architectures are listed in :data:`ENCODERS`; any other timm name with strides 4/8/16 works too.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path

import timm
import timm.models
import torch
from torch import Tensor, nn

from ..errors import ConfigError, InputError
from .weights import find_weights, load_into, missing_weights_error, read_state_dict

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STRIDES",
    "ENCODERS",
    "TimmEncoder",
    "create_encoder",
    "loading_saved_weights",
    "note_saved_weights",
    "split_name",
]

#: Set inside :func:`loading_saved_weights`: the caller fills encoders with saved weights right after building them.
_SAVED_WEIGHTS_FOLLOW: ContextVar[bool] = ContextVar("ssmad_saved_weights_follow", default=False)

#: Strides of the three feature maps MambaAD and RD4AD use.
DEFAULT_STRIDES: tuple[int, int, int] = (4, 8, 16)

#: Tested encoders → channels at strides 4/8/16 (for documentation; the code reads timm's feature info).
ENCODERS: dict[str, tuple[int, int, int]] = {
    "resnet18": (64, 128, 256),
    "resnet34": (64, 128, 256),
    "wide_resnet50_2": (256, 512, 1024),
    "tf_efficientnet_lite0": (24, 40, 112),
    "tf_efficientnet_lite1": (24, 40, 112),
    "tf_efficientnet_lite2": (24, 48, 120),
    "mobilenetv2_100": (24, 32, 96),
}


def split_name(name: str) -> tuple[str, str | None]:
    """``"resnet34.tv_in1k"`` → ``("resnet34", "tv_in1k")``; a name without a tag gives ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def _check_arch(arch: str) -> None:
    if timm.models.is_model(arch):
        return
    close = difflib.get_close_matches(arch, list(ENCODERS) + timm.list_models(), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown encoder {arch!r}.{hint} Tested encoders: {', '.join(ENCODERS)}; any timm model with feature maps "
        "at strides 4, 8 and 16 also works (see timm.list_models())."
    )


def _out_indices(arch: str, strides: Sequence[int]) -> list[int]:
    """Feature indices of ``arch`` at ``strides``, probed on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        probe = timm.create_model(arch, pretrained=False, features_only=True)
    reductions = list(probe.feature_info.reduction())
    try:
        return [reductions.index(s) for s in strides]
    except ValueError:
        raise ConfigError(
            f"encoder {arch!r} has feature maps at strides {reductions}, not at all of {list(strides)}; "
            f"choose an encoder with stride-{'/'.join(map(str, strides))} stages (e.g. {', '.join(ENCODERS)})."
        ) from None


def _trim_unused_stages(body: nn.Module) -> None:
    """Cut the blocks after the last requested stage of a timm ``EfficientNetFeatures`` model (not run anyway)."""
    stage_idx = getattr(body, "_stage_out_idx", None)
    blocks = getattr(body, "blocks", None)
    if stage_idx and getattr(body, "feature_hooks", "absent") is None and isinstance(blocks, nn.Sequential):
        keep = max(stage_idx)
        if keep < len(blocks):
            body.blocks = blocks[:keep]


def _pretrained_stats(arch: str, tag: str | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    name = f"{arch}.{tag}" if tag else arch
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        raise ConfigError(
            f"encoder {name!r}: timm knows no pretrained tag {tag!r}; see timm.list_pretrained('{arch}*')"
        )
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


class TimmEncoder(nn.Module):
    """A frozen timm CNN returning feature maps at strides 4, 8 and 16.

    Args:
        name: timm architecture, optionally with a pretrained tag (``"resnet34"``, ``"resnet34.tv_in1k"``).
        pretrained: Load ImageNet weights (resolved offline, see :mod:`ssmad.encoders.weights`); ``False`` gives
            a random initialisation on purpose.
        weights: An explicit weights file (torchvision or timm format); implies ``pretrained``.
        allow_download: Let timm download the weights when none are found locally.
        strides: Strides of the returned maps.

    Attributes:
        channels: Channels of the returned maps, e.g. ``(64, 128, 256)`` for ResNet34.
        strides: Their strides.
        mean: Per-channel normalisation mean of the pretrained weights (RGB, inputs scaled to [0, 1]).
        std: Per-channel normalisation std.
        weights_origin: ``"random"``, ``"file"``, ``"torch-hub"``, ``"hf-cache"``, ``"package:<module>"`` or
            ``"download"``; after :func:`note_saved_weights`, the origin recorded with the saved network (or
            ``"saved"``, ``"official-checkpoint"``).
        weights_path: The file the weights came from (``None`` for random or downloaded weights).
    """

    def __init__(
        self,
        name: str = "resnet34",
        *,
        pretrained: bool = True,
        weights: str | Path | None = None,
        allow_download: bool = False,
        strides: Sequence[int] = DEFAULT_STRIDES,
    ) -> None:
        super().__init__()
        if not isinstance(name, str) or not name:
            raise ConfigError(f"encoder must be a timm model name such as 'resnet34', got {name!r}")
        arch, tag = split_name(name)
        _check_arch(arch)
        self.name = name
        self.arch = arch
        self.strides = tuple(int(s) for s in strides)
        self.mean, self.std = _pretrained_stats(arch, tag)
        out_indices = _out_indices(arch, self.strides)
        pretrained = pretrained or weights is not None
        source = find_weights(arch, weights, tag=tag) if pretrained else None
        download = pretrained and source is None
        if download and not allow_download:
            raise missing_weights_error(name)
        self.body = timm.create_model(name, pretrained=download, features_only=True, out_indices=out_indices)
        _trim_unused_stages(self.body)
        self.channels = tuple(int(c) for c in self.body.feature_info.channels())
        if source is not None:
            self._load(source.path, arch)
            self.weights_origin, self.weights_path = source.origin, str(source.path)
            logger.info("encoder %s: weights from %s (%s)", name, source.path, source.origin)
        else:
            self.weights_origin = "download" if download else "random"
            self.weights_path = None
            if not download and _SAVED_WEIGHTS_FOLLOW.get():
                logger.debug("encoder %s: built without weights; the caller loads saved ones next", name)
            elif not download:
                logger.info("encoder %s: random initialisation (pretrained=False)", name)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def _load(self, path: Path, arch: str) -> None:
        state = read_state_dict(path)
        target = self.body.state_dict()
        needed = [k for k in target if not k.endswith("num_batches_tracked")]
        by_name = all(k in state and state[k].shape == target[k].shape for k in needed)
        full = None
        if not by_name:  # tensors may follow the complete classifier's order under other names
            with torch.device("meta"):
                full = timm.create_model(arch, pretrained=False).state_dict()
            if any(k not in full for k in needed):  # pragma: no cover - timm keeps module names in feature models
                raise InputError(f"{path}: cannot map weights onto the feature model of {arch}")
        load_into(self.body, state, full, origin=f"{path} (encoder {self.name})")

    def train(self, mode: bool = True) -> TimmEncoder:
        """Keep the frozen encoder in eval mode whatever ``mode`` says (BatchNorm statistics never change)."""
        return super().train(False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Extract the feature maps.

        Args:
            x: Normalised images, shape ``(batch, 3, H, W)``.

        Returns:
            One map per stride, shapes ``(batch, channels[i], H / strides[i], W / strides[i])`` (floor division
            for sizes that are not multiples of the stride), without gradients.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise InputError(
                f"encoder {self.name} expects normalised RGB images of shape (batch, 3, H, W), got {tuple(x.shape)}"
            )
        with torch.no_grad():
            return [f.detach() for f in self.body(x)]

    def extra_repr(self) -> str:
        """Summary shown by ``print(module)``."""
        return f"name={self.name!r}, channels={self.channels}, strides={self.strides}, weights={self.weights_origin!r}"


@contextlib.contextmanager
def loading_saved_weights() -> Iterator[None]:
    """Build networks whose weights, the encoder's included, are loaded from a saved file right after.

    Encoders built inside the block (with ``pretrained=False``) do not announce a random initialisation that is
    about to be overwritten; the caller reports the real source with :func:`note_saved_weights` once the weights
    are in.
    """
    token = _SAVED_WEIGHTS_FOLLOW.set(True)
    try:
        yield
    finally:
        _SAVED_WEIGHTS_FOLLOW.reset(token)


def note_saved_weights(net: nn.Module, path: str | Path, origin: str | None = None) -> None:
    """Record and log that ``net``'s encoder (if it has a :class:`TimmEncoder`) now holds the weights in ``path``.

    Args:
        net: A network with an ``encoder`` attribute (networks without one are left alone).
        path: The file the weights were loaded from (a run's ``model.safetensors``, an official checkpoint).
        origin: The new :attr:`TimmEncoder.weights_origin` (default: keep the current one).
    """
    encoder = getattr(net, "encoder", None)
    if not isinstance(encoder, TimmEncoder):
        return
    encoder.weights_path = str(path)
    if origin is not None:
        encoder.weights_origin = origin
    logger.info("encoder %s: weights from %s", encoder.name, path)


def create_encoder(
    name: str = "resnet34",
    *,
    pretrained: bool = True,
    weights: str | Path | None = None,
    allow_download: bool = False,
) -> TimmEncoder:
    """Create a frozen encoder; see :class:`TimmEncoder`."""
    return TimmEncoder(name, pretrained=pretrained, weights=weights, allow_download=allow_download)
