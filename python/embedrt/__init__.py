"""embedrt: an on-device embedding runtime.

SIMD kernels for binary, multi-bit binary and int8 embeddings, hash embeddings, flat indexes,
and a CPU text encoder for exported (ONNX) sentence-transformers models.

Heavy parts (the encoder, onnxruntime, tokenizers) are imported on first use.
"""
from __future__ import annotations

import importlib

from ._runtime import cpu_info, get_num_threads, set_num_threads

# `quantize` and `sdc` name both a function and a submodule (embedrt.sdc re-exports
# embedrt.index.sdc). Bind the functions now (both modules are light), so that importing a
# submodule later cannot rebind the package attribute to the module.
from .quantize import quantize
from .sdc import sdc

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_LAZY = {
    # bit codes
    "pack_bits": ".kernels",
    "unpack_bits": ".kernels",
    "hamming": ".kernels",
    "hamming_topk": ".kernels",
    "binary_matmul": ".kernels",
    # int8
    "int8_matmul": ".kernels",
    "Int8Matrix": ".kernels",
    "pack_int8": ".kernels",
    # indexes
    "BinaryIndex": ".index.binary",
    "Int8Index": ".index.int8",
    "Index": ".index.two_stage",
    # multi-bit binary codes
    "ResidualBinarizer": ".index.sdc",
    "sdc_topk": ".index.sdc",
    "SDCIndex": ".index.sdc",
    # hash embeddings
    "murmurhash3_128": ".hashing.thinc",
    "hash_string": ".hashing.spacy",
    "HashEmbed": ".hashing.thinc",
    "MultiHashEmbed": ".hashing.spacy",
    "fasttext_subword_ids": ".hashing.fasttext",
    "embedding_bag": ".hashing.bags",
    "QREmbed": ".hashing.bags",
    # encoder
    "Encoder": ".encoder",
    "export": ".encoder",
    "convert": ".encoder",
    "NotRecognized": ".encoder",
    # scale-out (Ray, Spark: the distributed extra)
    "ShardedIndex": ".distributed.sharded",
}

__all__ = ["cpu_info", "get_num_threads", "set_num_threads", "quantize", "sdc", "__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedrt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
