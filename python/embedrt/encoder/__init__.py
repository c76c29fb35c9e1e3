"""The text encoder: exported sentence-transformers models on the CPU.

- :class:`Encoder` loads a model folder (ONNX graph + ``tokenizer.json`` + configs) and
  embeds texts with a sentence-transformers compatible ``encode()``.
- :func:`export` turns a Hugging Face checkpoint of an encoder family (``model.safetensors``) into such a folder,
  without PyTorch.
- :func:`convert` packs a model's weights for the native engine.
"""
from __future__ import annotations

from ._native_load import NotRecognized
from .encoder import Encoder
from .export import export


def convert(model_dir, out=None, precision: str = "int8", onnx_file=None, verify: bool = True):
    """Packs the weights of a model folder for the native engine; returns the file's path.
    The load gate proves the engine first (unless verify=False); a model it rejects raises
    NotRecognized.

    Needs the native engine (``embedrt.encoder.native``); raises RuntimeError when it is not
    available in this build.
    """
    try:
        from .native import convert as _convert
    except ImportError as e:
        raise RuntimeError(f"convert needs the native engine, which is not available ({e})") from None
    return _convert(model_dir, out=out, precision=precision, onnx_file=onnx_file, verify=verify)


__all__ = ["Encoder", "export", "convert", "NotRecognized"]
