"""Run-time facts and settings: the ISA level in use, CPU features, the thread pool."""
from __future__ import annotations

import warnings

from . import _core

_warning = _core.isa_env_warning()
if _warning:
    warnings.warn(_warning, RuntimeWarning, stacklevel=2)


def cpu_info() -> dict:
    """What embedrt detected and uses.

    Returns a dict with ``isa`` (the level kernels use now: "avx512", "avx2", "neon" or
    "scalar"), ``best_isa`` (the highest level this CPU and OS support), ``features`` (the
    detected CPU features), ``compiled_isas`` and ``num_threads``.
    """
    return {
        "isa": _core.isa(),
        "best_isa": _core.best_isa(),
        "features": list(_core.cpu_features()),
        "compiled_isas": list(_core.compiled_isas()),
        "num_threads": _core.get_num_threads(),
    }


def set_num_threads(n: int) -> None:
    """Sets the size of embedrt's worker pool (also used for onnxruntime sessions made later)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"num_threads must be an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The size of embedrt's worker pool (EMBEDRT_NUM_THREADS, default: the usable cores)."""
    return _core.get_num_threads()


def _set_isa(name: str) -> str:
    """Lowers (or restores) the ISA level at run time; returns the level set. For tests."""
    return _core.set_isa(name)
