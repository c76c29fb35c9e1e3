"""Multi-bit binary codes with symmetric distance calculation: the names of
:mod:`embedrt.index.sdc`, where they are defined, under their first module name."""
from __future__ import annotations

from .index.sdc import ResidualBinarizer, SDCIndex, sdc, sdc_topk

__all__ = ["ResidualBinarizer", "sdc", "sdc_topk", "SDCIndex"]
