"""Flat exact indexes over compact embeddings, with files that can be memory-mapped.

Every index file uses embedrt's container format (embedrt._fileformat): a magic, a format
version, sizes and checksums. Nothing is unpickled.
"""
from __future__ import annotations

import numpy as np

from . import _core
from . import _fileformat
from ._checks import as_array, as_float32, as_int

# ----------------------------------------------------------------------------------------
# BinaryIndex
# ----------------------------------------------------------------------------------------



# ----------------------------------------------------------------------------------------
# (end of BinaryIndex)
# ----------------------------------------------------------------------------------------




# ----------------------------------------------------------------------------------------
# Int8Index, Index (two-stage search)
# ----------------------------------------------------------------------------------------



# ----------------------------------------------------------------------------------------
# (end of Int8Index, Index)
# ----------------------------------------------------------------------------------------
