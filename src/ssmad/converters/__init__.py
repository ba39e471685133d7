"""Converters from other codebases' checkpoints into ssmad detector folders.

They sit above the detector facade: a converter reads foreign weights, builds a detector and saves it as a run
folder, so it uses :mod:`ssmad.models`, :mod:`ssmad.engine` and :mod:`ssmad.detectors`; none of those imports it.
"""

from .mambaad_official import Conversion, convert_official, infer_options, map_official_state, read_checkpoint

__all__ = ["Conversion", "convert_official", "infer_options", "map_official_state", "read_checkpoint"]
