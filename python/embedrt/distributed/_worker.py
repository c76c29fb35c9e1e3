"""What every engine shares: the options of a job, the model cache of a worker process, the
checks of the input texts, and the conversion of embeddings to Arrow columns.

A job's options hold only the model's path and settings (small and picklable). The Encoder is
built in the worker, once per process, and kept in :data:`_ENCODERS`.
"""
from __future__ import annotations

import math
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..quantize import BIT_PRECISIONS, FLOAT_PRECISIONS, INT_PRECISIONS
from ..quantize import ENCODE_PRECISIONS as PRECISIONS

ON_NULL = ("error", "empty")

# (model path or None, backend, threads) -> Encoder, one per worker process
_ENCODERS: dict = {}
_LOCK = threading.Lock()


class ModelUnavailableError(RuntimeError):
    """A worker cannot read or load the model (the message names the path and the worker)."""


def worker_name() -> str:
    """This process as a worker: ``hostname (pid N)``."""
    return f"{socket.gethostname()} (pid {os.getpid()})"


@dataclass(frozen=True)
class EmbedOptions:
    """The settings of one embedding job (what is shipped to the workers)."""

    model: Optional[str] = None
    column: str = "text"
    output_column: str = "embedding"
    batch_size: int = 256
    encode_batch_size: int = 32
    precision: str = "float32"
    normalize: Optional[bool] = None
    truncate_dim: Optional[int] = None
    prompt_name: Optional[str] = None
    backend: str = "auto"
    threads: int = 1
    on_null: str = "error"
    ranges: Optional[tuple] = field(default=None, repr=False)  # int8/uint8: ((min...), (max...))

    def ranges_array(self):
        return None if self.ranges is None else np.asarray(self.ranges, dtype=np.float32)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_options(model=None, *, column="text", output_column="embedding", batch_size=256,
                 encode_batch_size=32, precision="float32", normalize=None, truncate_dim=None,
                 prompt_name=None, backend="auto", threads=1, on_null="error", ranges=None,
                 calibration_embeddings=None) -> EmbedOptions:
    """Checks a job's arguments on the driver, before anything is started."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if on_null not in ON_NULL:
        raise ValueError(f"on_null must be 'error' or 'empty', got {on_null!r}")
    if backend not in ("auto", "native", "onnxruntime"):
        raise ValueError(f"backend must be auto, native or onnxruntime, got {backend!r}")
    if not isinstance(column, str) or not column:
        raise ValueError(f"column must be a column name, got {column!r}")
    if not isinstance(output_column, str) or not output_column:
        raise ValueError(f"output_column must be a column name, got {output_column!r}")
    if truncate_dim is not None:
        truncate_dim = _positive_int(truncate_dim, "truncate_dim")
    rng = None
    if precision in INT_PRECISIONS:
        # int8/uint8 cut each dimension's [min, max] into 255 steps. Taken from each batch, the
        # ranges would depend on how the engine splits the rows, so they are fixed up front.
        if ranges is None and calibration_embeddings is not None:
            cal = np.asarray(calibration_embeddings, dtype=np.float32)
            if cal.ndim != 2 or cal.shape[0] < 2:
                raise ValueError(f"calibration_embeddings: expected float embeddings [n >= 2, dim], "
                                 f"got shape {cal.shape}")
            ranges = np.vstack((cal.min(axis=0), cal.max(axis=0)))
        if ranges is None:
            raise ValueError(
                f"precision={precision!r} needs quantization ranges that do not depend on how the rows "
                "are batched: pass ranges= (a [2, dim] array of per-dimension min and max) or "
                "calibration_embeddings= (float embeddings of a sample of the corpus)")
        arr = np.asarray(ranges, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != 2 or not np.isfinite(arr).all():
            raise ValueError(f"ranges: expected a finite [2, dim] array, got shape {arr.shape}")
        rng = tuple(tuple(float(v) for v in row) for row in arr)
    elif ranges is not None or calibration_embeddings is not None:
        raise ValueError("ranges / calibration_embeddings apply only to precision 'int8' or 'uint8'")
    if model is not None:
        model = os.fspath(model)
    return EmbedOptions(model=model, column=column, output_column=output_column,
                        batch_size=_positive_int(batch_size, "batch_size"),
                        encode_batch_size=_positive_int(encode_batch_size, "encode_batch_size"),
                        precision=precision, normalize=normalize, truncate_dim=truncate_dim,
                        prompt_name=prompt_name, backend=backend,
                        threads=_positive_int(threads, "threads"), on_null=on_null, ranges=rng)


# ----------------------------------------------------------------------------- the model
def get_encoder(opts: EmbedOptions):
    """The Encoder of this worker process for `opts` (built on first use, then cached)."""
    key = (opts.model, opts.backend, opts.threads)
    enc = _ENCODERS.get(key)
    if enc is not None:
        return enc
    with _LOCK:
        enc = _ENCODERS.get(key)
        if enc is None:
            enc = _load_encoder(opts)
            _ENCODERS[key] = enc
    return enc


def _load_encoder(opts: EmbedOptions):
    from ..encoder import Encoder

    path = opts.model
    if path is None:
        from ..encoder.default_model import default_model_dir

        try:
            path = default_model_dir()
        except (RuntimeError, OSError, ValueError) as e:
            raise ModelUnavailableError(f"worker {worker_name()}: the default model is not available: {e} "
                                        "(install it on every worker, or pass model= a folder every "
                                        "worker can read)") from None
    else:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ModelUnavailableError(
                f"the model folder {path} is not readable on worker {worker_name()}: put it on storage "
                "every worker can read (a shared file system, or the same path on every node)")
    try:
        return Encoder(path, backend=opts.backend, threads=opts.threads)
    except (OSError, ValueError) as e:
        raise ModelUnavailableError(f"worker {worker_name()} cannot load the model {path}: {e}") from e


# ----------------------------------------------------------------------------- texts
def check_texts(values, on_null: str, where) -> list:
    """The texts of a batch as a list of str. `where(i)` names row i in error messages.

    A null (None, or a pandas NaN) is an error, or the empty string with on_null="empty"; any
    other non-string value is an error.
    """
    texts = list(values)
    for i, t in enumerate(texts):
        if isinstance(t, str):
            continue
        if t is None or (isinstance(t, float) and math.isnan(t)):
            if on_null == "empty":
                texts[i] = ""
                continue
            raise ValueError(f"{where(i)}: text is None (pass on_null='empty' to embed nulls as '')")
        raise TypeError(f"{where(i)}: text is a {type(t).__name__} ({t!r:.40}), not a string")
    return texts


def encode(texts: list, opts: EmbedOptions) -> np.ndarray:
    """Embeds checked texts in this process with the worker's cached Encoder."""
    enc = get_encoder(opts)
    quantized = opts.precision in INT_PRECISIONS
    emb = enc.encode(texts, batch_size=opts.encode_batch_size, normalize_embeddings=opts.normalize,
                     truncate_dim=opts.truncate_dim,
                     precision="float32" if quantized else opts.precision,
                     prompt_name=opts.prompt_name, show_progress_bar=False)
    if quantized:
        from ..quantize import quantize

        emb = quantize(emb, opts.precision, ranges=opts.ranges_array())
    return emb


# ----------------------------------------------------------------------------- Arrow
def arrow_type(precision: str, width: int):
    """The Arrow type of an embedding column: fixed-size float32 lists (float precisions),
    fixed-size int8/uint8 lists, or binary (the packed bits' bytes)."""
    import pyarrow as pa

    if precision in FLOAT_PRECISIONS:
        return pa.list_(pa.float32(), width)
    if precision == "int8":
        return pa.list_(pa.int8(), width)
    if precision == "uint8":
        return pa.list_(pa.uint8(), width)
    return pa.binary()


def to_arrow(emb: np.ndarray, precision: str):
    """Embeddings [n, width] as an Arrow array of :func:`arrow_type`."""
    import pyarrow as pa

    n, width = emb.shape
    if precision in BIT_PRECISIONS:
        data = np.ascontiguousarray(emb).view(np.uint8)
        offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)[: n + 1]
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())])
    if precision in FLOAT_PRECISIONS:
        flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1), pa.float32())
    else:
        flat = pa.array(np.ascontiguousarray(emb).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, width)


def from_column(values, precision: Optional[str] = None) -> np.ndarray:
    """An embedding column (Arrow array / chunked array, pandas Series, list or ndarray) as a 2-D
    array: float32 for float lists, uint8 rows for bytes (int8 ones with precision="binary"),
    int8/uint8 for int lists."""
    import pyarrow as pa

    if isinstance(values, np.ndarray) and values.ndim == 2:
        return values
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        values = list(values)
        if values and isinstance(values[0], (bytes, bytearray, memoryview)):
            rows = [np.frombuffer(bytes(v), np.uint8) for v in values]
        else:
            rows = [np.asarray(v) for v in values]
        if not rows:
            return np.zeros((0, 0), np.float32)
        out = np.stack(rows)
        if out.dtype.kind == "f":
            out = out.astype(np.float32, copy=False)
        return out.view(np.int8) if precision == "binary" and out.dtype == np.uint8 else out
    t = values.type
    if values.null_count:
        raise ValueError("the embedding column holds nulls")
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        rows = values.to_pylist()
        out = np.frombuffer(b"".join(rows), np.uint8)
        width = len(rows[0]) if rows else 0
        out = out.reshape(len(rows), width) if rows else np.zeros((0, 0), np.uint8)
        return out.view(np.int8) if precision == "binary" else out
    if pa.types.is_fixed_size_list(t):
        width = t.list_size
        flat = values.flatten().to_numpy(zero_copy_only=False)
        return _typed(flat.reshape(len(values), width))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        flat = values.flatten().to_numpy(zero_copy_only=False)
        n = len(values)
        width = len(flat) // n if n else 0
        offsets = values.offsets.to_numpy()
        if n and not np.array_equal(np.diff(offsets), np.full(n, width)):
            raise ValueError("the embedding column holds lists of different lengths")
        return _typed(flat.reshape(n, width))
    raise TypeError(f"the embedding column has type {t}, expected float or int lists, or binary")


def _typed(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32, copy=False) if x.dtype.kind == "f" else x
