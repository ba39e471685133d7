"""Convert an official MambaAD checkpoint (``lewandofskee/MambaAD`` or ADer) into an ssmad detector folder.

The official network is ``MAMBAAD`` with three children (spec A.1, A.4): ``net_t`` (the frozen timm encoder),
``mff_oce`` and ``net_s`` (the Mamba decoder). Our :class:`~ssmad.models.mambaad.MambaAD` keeps the internal
names, so the mapping is by prefix plus two fixes::

    net_t.<k>                         → encoder.body.<k>
    mff_oce.<k>                       → mff_oce.<k>
    net_s.<k>                         → decoder.<k>
    ….conv1b3.* / ….conv1a3.*         → ….conv1b7.* / ….conv1a7.*   (ADer's names for the 7×7 branch wrappers)
    ….conv33.*                        dropped (ADer's unused depthwise 3×3)
    ….self_attention.scans.index_flat(_inv)   dropped after validation (we build the scan tables on the fly)

The stored scan tables (one raster permutation per SS2D, length ``s²`` for a stage of ``s × s`` cells) are
compared with our curves: they give the scan curve and the input size (stage 0 is ``image_size / 32`` cells
wide), and a table that matches none of our curves stops the conversion. The other options (encoder, decoder
depths, state size, directions, widths) are read from the tensor shapes; the converted weights must then fit the
network built from those options exactly (no missing, unexpected or reshaped tensor).

Files are read with ``torch.load(weights_only=True)``; nested checkpoints (``{"net": ...}`` as ADer's trainer
saves them, ``"state_dict"``, ``"model"``) and DDP's ``module.`` prefixes are unwrapped.
"""

from __future__ import annotations

import hashlib
import logging
import math
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..encoders import loading_saved_weights, note_saved_weights
from ..errors import InputError
from ..scans import SCAN_NAMES, order

logger = logging.getLogger(__name__)

__all__ = ["Conversion", "convert_official", "infer_options", "map_official_state", "read_checkpoint"]

#: Containers a checkpoint may nest its state dict in, tried in this order.
NEST_KEYS: tuple[str, ...] = ("net", "state_dict", "model", "module", "model_state_dict")

#: Encoders recognised from the official ``net_t`` layout: (block type, blocks of layer1–3, layer1 width).
KNOWN_ENCODERS: dict[tuple[str, tuple[int, int, int], int], str] = {
    ("basic", (2, 2, 2), 64): "resnet18",
    ("basic", (3, 4, 6), 64): "resnet34",
    ("bottleneck", (3, 4, 6), 64): "resnet50",
    ("bottleneck", (3, 4, 6), 128): "wide_resnet50_2",
}

_TABLE = re.compile(
    r"^decoder\.layers_up\.(\d+)\.blocks\.(\d+)\.smm_blocks\.(\d+)\.self_attention\.scans\.(index_flat(?:_inv)?)$"
)
_ADER_BRANCH = re.compile(r"\.conv1([ab])3\.")
_ADER_UNUSED = re.compile(r"\.conv33\.")


@dataclass
class Conversion:
    """The outcome of :func:`map_official_state`.

    Attributes:
        state: Tensors under our names (scan tables and unused tensors removed).
        options: Model options inferred from the checkpoint (for :class:`~ssmad.models.mambaad.MambaADConfig`).
        renamed: ``(upstream, ours)`` pairs whose name changed beyond the prefix (ADer's 7×7 branch names).
        dropped: Upstream names not carried over (validated scan tables, ADer's unused ``conv33``).
        naming: ``mambaad`` (the MambaAD repository's names) or ``ader`` (ADer's ``conv1b3``/``conv1a3``).
    """

    state: dict[str, Tensor]
    options: dict[str, Any]
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    naming: str = "mambaad"


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Read the network's state dict out of an official checkpoint file.

    Raises:
        InputError: Missing file, not a PyTorch file, Python objects that ``weights_only`` refuses, or no state
            dict inside.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"the checkpoint {path} does not exist{' (it is a folder)' if path.exists() else ''}. Fix: pass the .pth "
            "file released with MambaAD (or written by its / ADer's trainer)."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(
            f"{path}: the file holds Python objects besides tensors, which the safe loader (weights_only=True) refuses "
            f"({str(err).splitlines()[0]}). Fix: if you trust the file, re-save only its network weights, e.g. "
            "torch.save(torch.load(f, weights_only=False)['net'], 'net.pth'), and convert that."
        ) from err
    except Exception as err:  # a damaged file makes the unpickler fail in many ways (EOF, index, zip, ...)
        first = str(err).splitlines()[0] if str(err) else ""
        raise InputError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first}). The file is damaged, "
            "incomplete or of another format; download it again."
        ) from err
    for _ in range(4):
        if _is_state_dict(obj):
            break
        if isinstance(obj, Mapping):
            inner = next((obj[k] for k in NEST_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
                if tensors and any(str(k).startswith(("net_s.", "module.net_s.")) for k in tensors):
                    obj = tensors
                    break
                keys = ", ".join(map(str, list(obj)[:8]))
                raise InputError(
                    f"{path}: no network state dict found (top-level keys: {keys}). Fix: pass the checkpoint of a "
                    "MambaAD network (a dict of tensors, or a dict with one under 'net' or 'state_dict')."
                )
            obj = inner
    if not _is_state_dict(obj):
        raise InputError(f"{path}: no network state dict found (a {type(obj).__name__}); not a MambaAD checkpoint.")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _rename(key: str) -> tuple[str | None, bool]:
    """Our name for one upstream key (``None``: not a MambaAD key) and whether it was an ADer-specific rename."""
    for src, dst in (("net_t.", "encoder.body."), ("mff_oce.", "mff_oce."), ("net_s.", "decoder.")):
        if key.startswith(src):
            ours = dst + key[len(src) :]
            renamed = _ADER_BRANCH.sub(lambda m: f".conv1{m.group(1)}7.", ours)
            return renamed, renamed != ours
    return None, False


def _check_tables(tables: dict[tuple[int, int, int], dict[str, Tensor]], source: str) -> tuple[str, int]:
    """Scan curve and stage-0 side length of the stored tables, checked against our curves.

    Raises:
        InputError: Tables that are not permutations of square stages, or match none of our curves.
    """
    sides: dict[int, int] = {}
    perms: dict[tuple[int, int, int], np.ndarray] = {}
    for where, pair in sorted(tables.items()):
        fwd = pair.get("index_flat")
        if fwd is None:
            raise InputError(f"{source}: decoder block {where} stores index_flat_inv without index_flat; damaged file")
        perm = fwd.reshape(-1).long().numpy()
        side = math.isqrt(perm.size)
        if side * side != perm.size or not np.array_equal(np.sort(perm), np.arange(perm.size)):
            raise InputError(
                f"{source}: the scan table of decoder stage {where[0]} is not a permutation of a square map "
                f"(length {perm.size}); the file is damaged or not a MambaAD checkpoint."
            )
        inv = pair.get("index_flat_inv")
        if inv is not None and not np.array_equal(inv.reshape(-1).long().numpy(), np.argsort(perm)):
            raise InputError(f"{source}: the inverse scan table of decoder stage {where[0]} does not invert its table")
        if sides.setdefault(where[0], side) != side:
            raise InputError(f"{source}: decoder stage {where[0]} stores scan tables of different sizes")
        perms[where] = perm
    stage0 = sides.get(0)
    if stage0 is None:
        raise InputError(f"{source}: scan tables are stored for some decoder stages but not for stage 0")
    for stage, side in sides.items():
        if side != stage0 << stage:
            raise InputError(
                f"{source}: decoder stage {stage} scans a {side}×{side} map, expected {stage0 << stage}×"
                f"{stage0 << stage} (twice the previous stage)"
            )
    for name in SCAN_NAMES:
        if all(np.array_equal(p, order(name, sides[w[0]], sides[w[0]])) for w, p in perms.items()):
            return name, stage0
    raise InputError(
        f"{source}: the stored scan tables match none of the scan curves ssmad implements ({', '.join(SCAN_NAMES)}); "
        "the checkpoint was trained with another scan order, so its decoder would read the maps in a different "
        "order here. Conversion stopped."
    )


def _block_count(state: Mapping[str, Tensor], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pat.match(k))}
    return max(found) + 1 if found else 0


def _infer_encoder(state: Mapping[str, Tensor], source: str) -> str:
    counts = tuple(_block_count(state, f"encoder.body.layer{i}.") for i in (1, 2, 3))
    if 0 in counts:
        raise InputError(
            f"{source}: the checkpoint holds no complete encoder (net_t.layer1–3); found {counts} blocks. Fix: pass "
            "--encoder NAME if the encoder is stored under other names, or use a checkpoint of the whole network."
        )
    kind = "bottleneck" if "encoder.body.layer1.0.conv3.weight" in state else "basic"
    width = int(state["encoder.body.layer1.0.conv1.weight"].shape[0])
    if kind == "bottleneck":
        width = width * 4 * 64 // int(state["encoder.body.layer1.0.conv3.weight"].shape[0])
    name = KNOWN_ENCODERS.get((kind, counts, width))  # type: ignore[arg-type]
    if name is None:
        raise InputError(
            f"{source}: cannot tell the encoder from its layout ({kind} blocks {counts}, width {width}). Fix: pass "
            "--encoder NAME (the timm name, e.g. resnet34)."
        )
    return name


def infer_options(state: Mapping[str, Tensor], source: str = "the checkpoint") -> dict[str, Any]:
    """MambaAD options read from tensor shapes (our names; scan tables already removed).

    Returns:
        ``decoder_depths``, ``bottleneck_dim``, ``oce_blocks``, ``d_state``, ``d_conv``, ``expand``, ``dt_rank``,
        ``num_directions`` and ``lss_kernel_sizes``.

    Raises:
        InputError: The decoder or MFF_OCE is missing or inconsistent.
    """
    n_stages = _block_count(state, "decoder.layers_up.")
    if n_stages != 4 or "mff_oce.conv1.weight" not in state:
        raise InputError(
            f"{source}: not a MambaAD checkpoint: expected net_s.layers_up.0–3 (the Mamba decoder) and mff_oce.*, "
            f"found {n_stages} decoder stage(s). Fix: pass the .pth of a MambaAD network."
        )
    try:
        return _infer(state, source)
    except (KeyError, IndexError, ValueError) as err:
        raise InputError(
            f"{source}: the tensor {err} that a MambaAD network needs is missing or malformed; the checkpoint is "
            "incomplete or of another architecture."
        ) from err


def _infer(state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    depths, ranks, dims = [], [], []
    for i in range(4):
        stage = f"decoder.layers_up.{i}.blocks."
        n_mod = _block_count(state, stage)
        per = _block_count(state, f"{stage}0.smm_blocks.")
        if not n_mod or not per:
            raise InputError(f"{source}: decoder stage {i} holds no LSS module; the file is damaged")
        depths.append(n_mod * per)
        attn = f"{stage}0.smm_blocks.0.self_attention."
        c = int(state[f"{stage}0.smm_blocks.0.ln_1.weight"].shape[0])
        dims.append(c)
        r_2n = int(state[attn + "x_proj_weight"].shape[1])
        ranks.append((r_2n - 2 * int(state[attn + "A_logs"].shape[1]), math.ceil(c / 16)))
    first = "decoder.layers_up.0.blocks.0.smm_blocks.0.self_attention."
    k, _, d_inner = state[first + "x_proj_weight"].shape
    c0 = dims[0]
    d_state = int(state[first + "A_logs"].shape[1])
    dt_rank: int | str = "auto" if all(r == auto for r, auto in ranks) else ranks[0][0]
    kernels = sorted(
        {int(m.group(1)) for key in state if (m := re.search(r"\.blocks\.\d+\.conv(\d)\1\.0\.weight$", key))}
    )
    bottleneck = (
        int(state["mff_oce.bn_layer.0.conv3.weight"].shape[0]) if "mff_oce.bn_layer.0.conv3.weight" in state else None
    )
    c16 = int(state["mff_oce.conv2.weight"].shape[0])
    return {
        "decoder_depths": depths,
        "bottleneck_dim": None if bottleneck in (None, 2 * c16) else bottleneck,
        "oce_blocks": _block_count(state, "mff_oce.bn_layer."),
        "d_state": d_state,
        "d_conv": int(state[first + "conv2d.weight"].shape[-1]),
        "expand": float(int(d_inner) / c0),
        "dt_rank": dt_rank,
        "num_directions": int(k),
        "lss_kernel_sizes": kernels,
    }


def map_official_state(
    upstream: Mapping[str, Tensor], source: str = "the checkpoint", *, encoder: str | None = None
) -> Conversion:
    """Rename an official state dict to ours, validate and drop the scan tables, infer the model options.

    Args:
        upstream: The official network's state dict (``net_t.*``, ``mff_oce.*``, ``net_s.*``).
        source: How to name the file in messages.
        encoder: The timm encoder name (default: recognised from the ``net_t`` layout).

    Raises:
        InputError: Keys of another network, or scan tables that match none of our curves.
    """
    state: dict[str, Tensor] = {}
    renamed: list[tuple[str, str]] = []
    dropped: list[str] = []
    tables: dict[tuple[int, int, int], dict[str, Tensor]] = {}
    foreign: list[str] = []
    for key, value in upstream.items():
        ours, ader = _rename(key)
        if ours is None:
            foreign.append(key)
            continue
        m = _TABLE.match(ours)
        if m:
            tables.setdefault((int(m.group(1)), int(m.group(2)), int(m.group(3))), {})[m.group(4)] = value
            dropped.append(key)
            continue
        if _ADER_UNUSED.search(ours):
            dropped.append(key)
            continue
        if ader:
            renamed.append((key, ours))
        state[ours] = value
    if foreign:
        if not state:
            raise InputError(
                f"{source}: not a MambaAD checkpoint: none of its {len(upstream)} tensors belongs to net_t, mff_oce "
                f"or net_s (e.g. {', '.join(foreign[:3])}). Fix: pass the .pth of a MambaAD network."
            )
        raise InputError(
            f"{source}: {len(foreign)} tensor(s) belong to no part of MambaAD (e.g. {', '.join(foreign[:3])}); the "
            "checkpoint is of another architecture or version. Conversion stopped."
        )
    options = infer_options(state, source)
    if tables:
        scan_type, side = _check_tables(tables, source)
        options.update(scan_type=scan_type, image_size=32 * side)
    else:
        logger.warning("%s stores no scan tables: assuming the official hilbert curve and 256×256 input", source)
        options.update(scan_type="hilbert", image_size=256)
    try:
        options["encoder"] = encoder or _infer_encoder(state, source)
    except KeyError as err:
        raise InputError(f"{source}: the encoder tensor {err} is missing; pass --encoder NAME") from err
    naming = "ader" if renamed or any(_ADER_UNUSED.search(k) for k in upstream) else "mambaad"
    return Conversion(state=state, options=options, renamed=renamed, dropped=dropped, naming=naming)


def _check_fit(net: torch.nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    from ..engine.checkpoint import state_dict_mismatch

    mismatch = state_dict_mismatch(net.state_dict(), state, extra="unmapped")
    if mismatch:
        raise InputError(
            f"{source}: the converted weights do not fit the MambaAD network built from the options read off the "
            f"checkpoint: {mismatch} tensors. Fix: pass --encoder if the encoder was guessed wrong; otherwise "
            "the checkpoint is of another MambaAD variant."
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_official(
    path: str | Path,
    out: str | Path,
    *,
    encoder: str | None = None,
    threshold: float | None = None,
    normal: str | Path | None = None,
    overwrite: bool = False,
) -> tuple[Any, Conversion]:
    """Convert an official MambaAD checkpoint into a detector folder that :func:`ssmad.load` reads.

    The folder is written by :meth:`~ssmad.detectors.ImageDetector.save` (``model.safetensors``, ``config.yaml``,
    ``metadata.json``), plus ``conversion.json`` (source file, its SHA-256, renamed and dropped tensors).

    Args:
        path: The official ``.pth`` file.
        out: The detector folder to write.
        encoder: The timm encoder name (default: recognised from the checkpoint).
        threshold: A fixed image and pixel threshold.
        normal: Normal images (same forms as ``det.fit``) whose score quantile sets the thresholds (the
            detector's default ``threshold.quantile``). Without ``threshold`` or ``normal`` the thresholds are
            left unset (NaN): scores and maps are complete, ``pred_label`` is false until ``set_threshold``.
        overwrite: Replace the files of an existing detector folder.

    Returns:
        The converted :class:`~ssmad.detectors.MambaADDetector` (saved in ``out``) and the :class:`Conversion`.

    Raises:
        InputError: Unreadable file, another architecture, tensors that do not fit, or an existing folder.
    """
    from ..detectors import MambaADDetector
    from ..engine.runs import atomic_write_json

    path = Path(path)
    source = str(path)
    folder = Path(out)
    names = ("model.safetensors", "config.yaml", "metadata.json", "conversion.json")
    existing = [folder / n for n in names if (folder / n).exists()]
    if existing and not overwrite:
        raise InputError(
            f"{existing[0]} exists already; nothing was written. Fix: convert into a new folder, or pass --overwrite."
        )
    conv = map_official_state(read_checkpoint(path), source, encoder=encoder)
    det = MambaADDetector(trainer={"device": "cpu"}, **conv.options)
    build = det._make_config({**conv.options, "pretrained": False})
    with loading_saved_weights():
        net = det._build_network(build)
    _check_fit(net, conv.state, source)
    net.load_state_dict(conv.state, strict=True)
    net.eval()
    note_saved_weights(net, source, "official-checkpoint")
    det.net_ = net
    det.preprocessing_ = det._preprocessing_for(net)
    det.history_ = []
    det.n_train_ = 0
    det.categories_ = []
    det.threshold_ = det.pixel_threshold_ = float("nan")
    det.threshold_info_ = "not set: converted from an official checkpoint (use det.set_threshold or --normal)"
    if normal is not None:
        from ..engine.evaluate import collect, quantile_thresholds

        _records, dataset = det._training_data(normal, det.preprocessing_)
        q = det.threshold
        res = collect(net, dataset, device=torch.device("cpu"), keep_maps=q.pixel_quantile is not None)
        det.threshold_, det.pixel_threshold_ = (
            float(t) for t in quantile_thresholds(res.scores, res.maps, q.quantile, q.pixel_quantile)
        )
        det.threshold_info_ = f"quantile {q.quantile} of the scores of {len(res.scores)} normal images ({normal})"
    if threshold is not None:
        det.threshold_ = det.pixel_threshold_ = float(threshold)
        det.threshold_info_ = "fixed at conversion"
    det.save(folder, overwrite=overwrite)
    atomic_write_json(
        folder / "conversion.json",
        {
            "source": str(path.resolve()),
            "sha256": _sha256(path),
            "naming": conv.naming,
            "options": conv.options,
            "tensors": len(conv.state),
            "renamed": [list(p) for p in conv.renamed],
            "dropped": conv.dropped,
        },
        overwrite=overwrite,
    )
    return det, conv
