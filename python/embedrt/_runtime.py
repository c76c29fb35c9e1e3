"""Run-time facts and settings: the ISA level in use, CPU features, the thread pool."""
from __future__ import annotations

import warnings

from . import _core

_warning = _core.isa_env_warning()
if _warning:
    warnings.warn(_warning, RuntimeWarning, stacklevel=2)


# What each kernel family runs at each level. A family without a variant of its own at a level
# runs the one of the level below (see csrc/dispatch.h): the AVX512-BW popcounts of hamming and
# sdc at avx512-vnni, the zmm encoder ops of avx512-skx at every AVX-512 level, and so on.
_SKX = {"pack_bits": "compare masks", "hash_embed": "vpmullq MurmurHash3",
        "embedding_bag": "zmm row sums", "encoder_ops": "8x32 fp32 tiles, zmm attention"}
_KERNELS = {
    "int8_gemm": {"avx512": "vpdpbusd (VNNI)", "avx512-vnni": "vpdpbusd (VNNI)",
                  "avx512-skx": "zmm vpmaddwd on int16 (exact)",
                  "avx2": "vpmaddwd on int16 (exact)", "neon": "sdot", "scalar": "loops"},
    "int8_scan": {"avx512": "vpdpwssd", "avx512-vnni": "vpdpwssd", "avx512-skx": "zmm vpmaddwd",
                  "avx2": "vpmaddwd", "neon": "vmlal_s16", "scalar": "loops"},
    "hamming": {"avx512": "vpopcntq",
                "avx512-vnni": "top-k of 4+ queries: ymm vpshufb 4-bit query tables; else zmm vpshufb nibble counts",
                "avx512-skx": "top-k of 4+ queries: ymm vpshufb 4-bit query tables; else zmm vpshufb nibble counts",
                "avx2": "4+ queries: vpshufb 4-bit query tables; else vpshufb nibble counts",
                "neon": "vcnt", "scalar": "popcount"},
    "sdc": {"avx512": "vpopcntq", "avx512-vnni": "ymm vpshufb 4-bit tables (blocks of 32 codes)",
            "avx512-skx": "ymm vpshufb 4-bit tables (blocks of 32 codes)",
            "avx2": "ymm vpshufb 4-bit tables (blocks of 32 codes)",
            "neon": "vcnt", "scalar": "popcount"},
    "pack_bits": {"avx2": "movemask", "neon": "compare + pairwise add", "scalar": "loops"},
    "hash_embed": {"avx2": "vpmuludq MurmurHash3", "neon": "scalar MurmurHash3 + ASIMD sums",
                   "scalar": "loops"},
    "embedding_bag": {"avx2": "ymm row sums", "neon": "ASIMD row sums", "scalar": "loops"},
    "encoder_ops": {"avx2": "6x16 fp32 tiles, ymm attention", "neon": "4x16 fp32 tiles", "scalar": "loops"},
}
for _fam, _how in _SKX.items():
    for _level in ("avx512", "avx512-vnni", "avx512-skx"):
        _KERNELS[_fam][_level] = _how


def cpu_info() -> dict:
    """What embedrt detected and uses.

    Returns a dict with ``isa`` (the level kernels use now: "avx512", "avx512-vnni",
    "avx512-skx", "avx2", "neon" or "scalar"), ``best_isa`` (the highest level this CPU and
    OS support), ``features`` (the detected CPU features), ``compiled_isas``, ``num_threads``
    and ``kernels`` (per kernel family, the variant in use: "<level>: <how>").
    """
    level = _core.isa()
    return {
        "isa": level,
        "best_isa": _core.best_isa(),
        "features": list(_core.cpu_features()),
        "compiled_isas": list(_core.compiled_isas()),
        "num_threads": _core.get_num_threads(),
        "kernels": {fam: f"{level}: {how[level]}" for fam, how in _KERNELS.items()},
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
