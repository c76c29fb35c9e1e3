"""The native encoder engine: embedrt's own C++ forward pass for BERT-family encoders
(all-MiniLM-L6/L12, BGE-small, E5-small, GTE-small, ...) on embedrt's int8 kernels.

    backend = NativeBackend.from_model_dir("all-MiniLM-L6-v2")          # int8
    vectors = backend.embed([ids0, ids1], None, "mean")                  # float32 [2, 384]

Sequences are never padded: a batch is one [total_tokens, hidden] activation matrix and
attention runs per sequence. In int8 mode every linear layer runs on the int8 matrix product
(weights symmetric per output channel, activations quantized per token on the fly); the input of
the layers that read a LayerNorm output is quantized before the LayerNorm's scale and shift are
applied (they are folded into the weights and bias), which keeps the LayerNorm outlier channels
out of the activation scales. precision="fp32" runs the same graph in float, for exactness.

Weights come from, in this order: a converted file written by convert() (memory-mapped, loads in
a fraction of a second), an ONNX export of BertModel (fp32, or onnxruntime's dynamic int8
quantization of it), or a safetensors checkpoint with config.json.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._native_load import (NotRecognized, params_from_onnx, params_from_safetensors,
                           read_hf_config)

__all__ = ["NativeBackend", "NotRecognized", "convert", "POOLINGS"]

POOLINGS = ("mean", "cls", "max", "mean_sqrt_len", "lasttoken", "weightedmean")
PRECISIONS = ("int8", "fp32")
FILE_KIND = "NativeEncoder"
FILE_VERSION = 1
_CFG_KEYS = ("vocab", "hidden", "heads", "intermediate", "layers", "max_position", "type_vocab")


def _core():
    from .. import _core as core

    return core


# ---------------------------------------------------------------------------------------------
# Weight preparation

def _quantize_rows(w: np.ndarray):
    """Symmetric int8 per output channel (row): (q, scale)."""
    w = np.asarray(w, np.float32)
    amax = np.abs(w).max(axis=1)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _fold_layernorm(w, b, gamma, beta):
    """W (gamma * n + beta) + b = (W diag(gamma)) n + (b + W beta): the input is quantized as
    n = (x - beta) / gamma. Channels with a tiny gamma are left unfolded."""
    gamma = np.asarray(gamma, np.float64)
    ok = np.abs(gamma) > 1e-3
    g = np.where(ok, gamma, 1.0)
    shift = np.where(ok, beta, 0.0)
    w64 = np.asarray(w, np.float64)
    w2 = w64 * g[None, :]
    b2 = np.asarray(b, np.float64) + w64 @ shift
    return (w2.astype(np.float32), b2.astype(np.float32), shift.astype(np.float32),
            (1.0 / g).astype(np.float32))


def prepare_arrays(cfg: dict, params: dict, precision: str) -> dict:
    """The arrays the C++ engine takes (see csrc/bindings/encoder.cpp) for one precision."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    h, heads = cfg["hidden"], cfg["heads"]
    qscale = np.float32(1.0 / np.sqrt(h // heads))
    out = {"word_embeddings": params["word"], "position_embeddings": params["pos"],
           "token_type_embeddings": params["type"], "embeddings_ln_g": params["emb_g"],
           "embeddings_ln_b": params["emb_b"]}
    for i in range(cfg["layers"]):
        p = lambda k: params[f"{i}.{k}"]  # noqa: E731
        if i == 0:
            ln_g, ln_b = params["emb_g"], params["emb_b"]
        else:
            ln_g, ln_b = params[f"{i - 1}.ln2_g"], params[f"{i - 1}.ln2_b"]
        lin = {
            "qkv": (np.concatenate([p("q_w") * qscale, p("k_w"), p("v_w")]),
                    np.concatenate([p("q_b") * qscale, p("k_b"), p("v_b")]), (ln_g, ln_b)),
            "attn_out": (p("ao_w"), p("ao_b"), None),
            "up": (p("up_w"), p("up_b"), (p("ln1_g"), p("ln1_b"))),
            "down": (p("down_w"), p("down_b"), None),
        }
        for slot, (w, b, ln) in lin.items():
            base = f"{i}.{slot}."
            if precision == "fp32":
                out[base + "weight"] = np.ascontiguousarray(w, np.float32)
                out[base + "bias"] = np.ascontiguousarray(b, np.float32)
                continue
            if ln is not None:
                w, b, shift, mul = _fold_layernorm(w, b, ln[0], ln[1])
                out[base + "in_shift"] = shift
                out[base + "in_mul"] = mul
            q, s = _quantize_rows(w)
            out[base + "weight"] = q
            out[base + "scale"] = s
            out[base + "bias"] = np.ascontiguousarray(b, np.float32)
        for key in ("ln1_g", "ln1_b", "ln2_g", "ln2_b"):
            out[f"{i}.{key}"] = np.ascontiguousarray(p(key), np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Sources

def _converted_path(model_dir: Path, precision: str) -> Path:
    return model_dir / "embedrt" / f"model.{precision}.embedrt"


def _load_source(model_dir: Path, onnx_file=None):
    """(cfg, params, source description) from ONNX or safetensors."""
    cfg = read_hf_config(model_dir)
    if onnx_file is not None:
        onnx_path = Path(onnx_file)
        if not onnx_path.is_absolute():
            onnx_path = model_dir / onnx_path
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path}: no such ONNX file")
    else:
        onnx_path = model_dir / "onnx" / "model.onnx"
        if not onnx_path.is_file():
            onnx_path = model_dir / "model.onnx"
    if onnx_path.is_file():
        cfg2, params = params_from_onnx(onnx_path, cfg)
        return cfg2, params, str(onnx_path)
    st = model_dir / "model.safetensors"
    if st.is_file():
        if cfg is None:
            raise NotRecognized(f"{model_dir}: model.safetensors needs a config.json beside it")
        cfg2, params = params_from_safetensors(st, cfg)
        return cfg2, params, str(st)
    raise FileNotFoundError(f"{model_dir}: no converted model, onnx/model.onnx or model.safetensors")


def _verify_by_reading(path: Path, sections: list) -> None:
    """Checks section CRCs by reading the file (not through the memory map, so the pages do not
    count against this process)."""
    import zlib

    with open(path, "rb") as f:
        for s in sections:
            f.seek(int(s["offset"]))
            left = int(s["nbytes"])
            crc = 0
            while left:
                chunk = f.read(min(left, 1 << 22))
                if not chunk:
                    raise ValueError(f"{path}: file is truncated in section {s['name']!r}")
                crc = zlib.crc32(chunk, crc)
                left -= len(chunk)
            if (crc & 0xFFFFFFFF) != int(s["crc32"]):
                raise ValueError(f"{path}: checksum mismatch in section {s['name']!r}; "
                                 "the file is corrupted")


def convert(model_dir, out=None, precision: str = "int8", onnx_file=None) -> Path:
    """Writes the native engine's weights for `model_dir` (int8 weights packed per output
    channel with their scales, or fp32) as one embedrt file and returns its path.

    out defaults to ``<model_dir>/embedrt/model.<precision>.embedrt``, where
    NativeBackend.from_model_dir looks first.
    """
    from .._fileformat import write_file

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model_dir = Path(model_dir)
    cfg, params, source = _load_source(model_dir, onnx_file)
    arrays = prepare_arrays(cfg, params, precision)
    out = Path(out) if out is not None else _converted_path(model_dir, precision)
    meta = {"config": {k: int(cfg[k]) for k in _CFG_KEYS}, "eps": float(cfg["eps"]),
            "precision": precision, "source": Path(source).name}
    write_file(out, FILE_KIND, FILE_VERSION, meta, arrays)
    return out


# ---------------------------------------------------------------------------------------------
# Backend

class NativeBackend:
    """The native forward pass behind embedrt.Encoder (see the module docstring)."""

    def __init__(self, engine, cfg: dict, precision: str, layers: int, source: str):
        self._engine = engine
        self._cfg = dict(cfg)
        self.precision = precision
        self.name = f"native-{precision}"
        self.dim = int(cfg["hidden"])
        self.max_position = int(cfg["max_position"])
        self.total_layers = int(cfg["layers"])
        self.num_layers = int(layers)
        self.vocab_size = int(cfg["vocab"])
        self.source = source

    def __repr__(self) -> str:
        return (f"NativeBackend({self.name}, dim={self.dim}, layers={self.num_layers}/"
                f"{self.total_layers}, source={self.source})")

    @classmethod
    def from_arrays(cls, cfg: dict, arrays: dict, precision: str, layers=None, source="arrays"):
        engine = _core().NativeEncoder(*(int(cfg[k]) for k in _CFG_KEYS), float(cfg["eps"]),
                                       arrays)
        return cls(engine, cfg, precision, _check_layers(layers, cfg["layers"]), source)

    @classmethod
    def from_model_dir(cls, path, onnx_file=None, layers=None, precision: str = "int8",
                       threads=None) -> "NativeBackend":
        """Loads a model folder: the converted file ``embedrt/model.<precision>.embedrt`` if
        present, else the ONNX export (``onnx/model.onnx`` or `onnx_file`), else
        ``model.safetensors`` + ``config.json``.

        layers: run only the first `layers` layers (early exit). threads: sets embedrt's
        worker pool size. Raises NotRecognized when the model is not a BERT the engine runs.
        """
        from .._runtime import set_num_threads

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if threads is not None:
            set_num_threads(threads)
        model_dir = Path(path)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"{model_dir}: no such model folder")
        conv = _converted_path(model_dir, precision)
        if conv.is_file():
            from .._fileformat import read_file

            f = read_file(conv, FILE_KIND, FILE_VERSION, mmap=True, verify=False)
            meta = f.meta
            if onnx_file is None or Path(onnx_file).name == meta.get("source"):
                _verify_by_reading(conv, f.sections)
                if meta.get("precision") != precision:
                    raise ValueError(f"{conv}: holds {meta.get('precision')} weights, not {precision}")
                cfg = dict(meta["config"])
                cfg["eps"] = float(meta["eps"])
                return cls.from_arrays(cfg, f.arrays, precision, layers, str(conv))
        cfg, params, source = _load_source(model_dir, onnx_file)
        arrays = prepare_arrays(cfg, params, precision)
        return cls.from_arrays(cfg, arrays, precision, layers, source)

    def embed(self, ids, type_ids=None, pooling: str = "mean") -> np.ndarray:
        """Pooled (not normalized) float32 embeddings [n, dim] of tokenized sequences.

        ids: one 1-D integer array per text (unpadded, with the special tokens); type_ids: the
        same shapes, or None for all zeros; pooling: mean, cls, max, mean_sqrt_len, lasttoken
        or weightedmean.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            ids = list(ids)
        if not isinstance(ids, (list, tuple)):
            raise TypeError("ids must be a list of 1-D integer arrays")
        n = len(ids)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        flat, offsets = _concat(ids, "ids")
        types = None
        if type_ids is not None:
            if not isinstance(type_ids, (list, tuple)) or len(type_ids) != n:
                raise ValueError("type_ids must be a list with one array per text")
            types, toff = _concat(type_ids, "type_ids")
            if not np.array_equal(toff, offsets):
                raise ValueError("type_ids must have the same lengths as ids")
        return self._engine.embed(flat, offsets, types, pooling, self.num_layers)


def _check_layers(layers, total: int) -> int:
    if layers is None:
        return int(total)
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)):
        raise TypeError(f"layers must be an int, got {type(layers).__name__}")
    if not 1 <= int(layers) <= total:
        raise ValueError(f"layers must be between 1 and {total}, got {layers}")
    return int(layers)


def _concat(seqs, name: str):
    lens = np.empty(len(seqs) + 1, np.int64)
    lens[0] = 0
    arrs = []
    for i, s in enumerate(seqs):
        a = np.asarray(s)
        if a.ndim != 1:
            raise ValueError(f"{name}[{i}]: expected a 1-D array, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise TypeError(f"{name}[{i}]: expected integers, got dtype {a.dtype}")
        if a.size == 0:
            raise ValueError(f"{name}[{i}] is empty")
        arrs.append(a)
        lens[i + 1] = a.size
    offsets = np.cumsum(lens)
    flat = np.concatenate(arrs).astype(np.int64, copy=False)
    return np.ascontiguousarray(flat), offsets
