"""The load-time equivalence gate: the native engine is used only once it has shown, on a probe,
that it computes what the model file computes.

The probe is a few token sequences of varied lengths (1 token, a few, a dozen, and one near the
longest the model takes, or at most native.NUMPY_PROBE_LONGEST = 1024 tokens against the numpy
reference), with random ids from the vocabulary between the model's [CLS] and
[SEP], fixed by a seed. The reference runs them as the model file says:

- an ONNX graph: onnxruntime, on the file as it is, in two batches (the short sequences padded
  to the longest of them, and the long one alone), so padding and masking are exercised;
- a safetensors checkpoint: the family's numpy reference forward pass, in float64.

Both sides are pooled as the model folder pools (and normalized when the folder normalizes),
so what is compared is what ``Encoder.encode`` would return. Two checks:

- the native fp32 forward pass against the reference: the largest relative L2 deviation of a
  pooled vector, at most ``FP32_MAX_REL`` (``1e-4``) for an fp32 model. On all-MiniLM-L6-v2
  and the export corpus it measures 1e-7 to 1e-6 (the engine sums in another order than
  onnxruntime); a dropped bias, a wrong token-type row or an epsilon off by orders of
  magnitude move it by 1e-3 or far more. An int8 graph (dynamic or QDQ) is held to the same
  bound against its float twin (``onnx_twin``: the graph with its quantized products undone,
  run by onnxruntime); a float16 graph to a cosine of ``LOW_PRECISION_MIN_COS`` instead,
  since its own rounding dominates;
- the int8 engine (what ``Encoder`` runs) against the reference: the smallest cosine of a
  pooled vector, at least ``INT8_MIN_COS`` (``0.995``); all-MiniLM-L6-v2 measures about 0.999.

A model that fails either check is not run natively: ``backend="auto"`` falls back to
onnxruntime with one warning naming the deviation, ``backend="native"`` raises NotRecognized
with it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._native_load import NotRecognized

FP32_MAX_REL = 1e-4
INT8_MIN_COS = 0.995
# Against a graph that computes in lower precision itself, its own rounding dominates. A
# float16 graph stays within 1e-3 of its fp32 original: the engines are held to a cosine of
# 0.999 with it. An int8 graph is proven on its float twin (onnx_twin: the same graph with the
# quantized products undone), to the fp32 bounds; the int8 engine is also compared with the
# quantized file itself at a cosine of 0.95, a sanity bound (onnxruntime quantizes activations
# per tensor, so on the random probe the file sits 1-2% from its float form: all-MiniLM-L6-v2's
# qint8 file 0.990, the test corpus's static QDQ file 0.979), far above a misread structure.
LOW_PRECISION_MIN_COS = {"float16": 0.999, "int8": 0.95}
_QUANTIZED_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear",
                  "QLinearMatMul", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
                  "QGemm", "QEmbedLayerNormalization"}
PROBE_SEED = 20261201
PROBE_LENGTHS = (1, 3, 6, 13)


class GateMismatch(NotRecognized):
    """The native engine's output differs from the model file's on the probe. ``reference``
    holds the onnxruntime backend the probe ran on, when there is one (reusable as the
    fallback)."""

    def __init__(self, message: str, verdict: "Verdict", reference=None):
        super().__init__(message)
        self.verdict = verdict
        self.reference = reference


@dataclass
class Verdict:
    """What the gate measured. ``passed`` is None when the gate did not run."""

    passed: bool | None
    reference: str = ""                 # "onnxruntime" or "numpy"
    fp32_max_rel: float | None = None
    fp32_min_cos: float | None = None
    int8_min_cos: float | None = None
    graph_precision: str = "fp32"
    probe_tokens: int = 0
    seconds: float = 0.0
    reason: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {"passed": self.passed, "reference": self.reference,
             "fp32_max_rel": self.fp32_max_rel, "fp32_min_cos": self.fp32_min_cos,
             "int8_min_cos": self.int8_min_cos, "graph_precision": self.graph_precision,
             "probe_tokens": self.probe_tokens, "seconds": round(self.seconds, 4),
             "reason": self.reason}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Verdict":
        keys = ("passed", "reference", "fp32_max_rel", "fp32_min_cos", "int8_min_cos",
                "graph_precision", "probe_tokens", "seconds", "reason")
        # the other measurements (session time, the int8 graph's own figures) come back as
        # they were written, so a cached load reports what the first one measured
        extra = {k: v for k, v in d.items() if k not in keys and k != "cached"}
        return cls(**{k: d[k] for k in keys if k in d}, extra=extra)


def graph_precision(model) -> str:
    """"int8" when an ONNX graph quantizes (int8 ops), "float16" when its weights or
    activations are float16, else "fp32"."""
    from onnx import TensorProto

    ops = {n.op_type for n in model.graph.node}
    if ops & _QUANTIZED_OPS:
        return "int8"
    if any(i.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16) for i in model.graph.initializer):
        return "float16"
    for n in model.graph.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i in (TensorProto.FLOAT16, TensorProto.BFLOAT16):
                    return "float16"
    return "fp32"


def probe_sequences(vocab: int, longest: int, special_ids=(None, None)) -> list:
    """The probe: fixed random id sequences of PROBE_LENGTHS and `longest` tokens."""
    rng = np.random.default_rng(PROBE_SEED)
    cls_id, sep_id = special_ids
    lo = min(1000, vocab // 2)
    lengths = sorted({min(n, longest) for n in PROBE_LENGTHS} | {max(1, longest)})
    seqs = []
    for n in lengths:
        s = rng.integers(lo, vocab, size=n).astype(np.int64)
        if cls_id is not None and sep_id is not None and n >= 2:
            s[0], s[-1] = cls_id, sep_id
        seqs.append(s)
    return seqs


def _finish(v: np.ndarray, normalize: bool) -> np.ndarray:
    v = np.asarray(v, np.float64)
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v


def deviation(got: np.ndarray, want: np.ndarray, normalize: bool) -> tuple:
    """(max relative L2 deviation, min cosine) of pooled rows."""
    a, b = _finish(got, normalize), _finish(want, normalize)
    if a.shape != b.shape:
        return float("inf"), -1.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf"), -1.0
    nb = np.linalg.norm(b, axis=1)
    na = np.linalg.norm(a, axis=1)
    rel = np.linalg.norm(a - b, axis=1) / np.maximum(nb, 1e-30)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    # two zero vectors agree
    both0 = (na == 0) & (nb == 0)
    rel[both0] = 0.0
    cos[both0] = 1.0
    return float(rel.max()), float(cos.min())


class OnnxReference:
    """The model file run by onnxruntime, as it is (no graph rewriting)."""

    name = "onnxruntime"

    def __init__(self, onnx_path, threads=None):
        from .ort_backend import OnnxRuntimeBackend

        t0 = time.perf_counter()
        self.backend = OnnxRuntimeBackend(onnx_path, threads=threads, config=None)
        self.session_seconds = time.perf_counter() - t0
        self._memo = {}

    def pooled(self, seqs: list, pooling: str) -> np.ndarray:
        key = (pooling, tuple(len(s) for s in seqs), hash(b"".join(np.asarray(s).tobytes() for s in seqs)))
        if key not in self._memo:
            short = [s for s in seqs if len(s) < max(len(x) for x in seqs)]
            long = [s for s in seqs if len(s) == max(len(x) for x in seqs)]
            out = []
            for batch in (short, long):
                if batch:
                    out.append(self.backend.embed(batch, None, pooling))
            self._memo[key] = np.concatenate(out) if len(out) > 1 else out[0]
        return self._memo[key]

    def order(self, seqs: list) -> list:
        longest = max(len(x) for x in seqs)
        return [s for s in seqs if len(s) < longest] + [s for s in seqs if len(s) == longest]


def in_background(fn, *args):
    """Runs fn(*args) on a thread of its own (the kernels and onnxruntime release the GIL);
    returns its Future."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="embedrt-gate")
    try:
        return pool.submit(fn, *args)
    finally:
        pool.shutdown(wait=False)


def start_onnx_reference(onnx_path, seqs: list, pooling: str, threads=1):
    """Creates the onnxruntime reference and runs the probe through it on a thread of its own,
    so that both overlap the native conversion on another core; returns a Future of the
    OnnxReference. One onnxruntime thread by default: the conversion keeps the other core."""

    def work():
        ref = OnnxReference(onnx_path, threads=threads)
        ref.pooled(ref.order(seqs), pooling)
        return ref

    return in_background(work)


def start_twin_reference(onnx_path, seqs: list, pooling: str, threads=1):
    """The same for the float twin of an int8 graph (TwinReference); the Future raises
    NotRecognized when the twin cannot be built."""

    def work():
        ref = TwinReference(onnx_path, threads=threads)
        ref.pooled(ref.order(seqs), pooling)
        return ref

    return in_background(work)


class TwinReference(OnnxReference):
    """The float twin of a quantized graph (see onnx_twin) run by onnxruntime: what the
    recognised, dequantized weights must reproduce."""

    name = "onnxruntime (the graph's float twin)"

    def __init__(self, onnx_path, threads=None):
        import os
        import tempfile

        import onnx

        from .onnx_twin import float_twin

        t0 = time.perf_counter()
        try:
            twin = float_twin(onnx.load(str(onnx_path)))
        except Exception as e:  # noqa: BLE001 - any failure means: cannot be proven
            twin, why = None, f"({type(e).__name__}: {e})"
        else:
            why = ""
        if twin is None or twin.ByteSize() >= 2_000_000_000:
            raise NotRecognized(f"{onnx_path.name}: an int8 graph whose float form cannot be "
                                f"rebuilt, so the native engine cannot be proven on it {why}".rstrip())
        fd, tmp = tempfile.mkstemp(suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(twin.SerializeToString())
            del twin
            super().__init__(tmp, threads=threads)
        finally:
            os.unlink(tmp)
        self.session_seconds = time.perf_counter() - t0


class NumpyReference:
    """The family's numpy reference forward pass (float64) over canonical params."""

    name = "numpy"
    session_seconds = 0.0

    def __init__(self, cfg: dict, params: dict):
        self.cfg, self.params = cfg, params

    def pooled(self, seqs: list, pooling: str) -> np.ndarray:
        from .native import reference_forward
        from .pooling import pool

        rows = []
        for s in seqs:
            hidden = reference_forward(self.cfg, self.params, s)
            rows.append(pool(hidden[None].astype(np.float32), np.array([len(s)]), pooling)[0])
        return np.stack(rows)

    def order(self, seqs: list) -> list:
        return list(seqs)


def check(reference, seqs: list, pooling: str, native_pooling: str, normalize: bool,
          fp32_engine=None, int8_engine=None, graph_precision: str = "fp32",
          float_reference=None, setup_seconds: float = 0.0, fp32_pooled=None) -> Verdict:
    """Runs the probe through `reference` and the given native engines (NativeBackend
    objects); returns the Verdict (passed False names the failed check in ``reason``).

    float_reference (a TwinReference, for an int8 graph): the engines are held to it as to an
    fp32 graph, and the int8 engine to the file itself by the low-precision bound too.
    setup_seconds: how long the load waited for the references after converting (the
    verdict's ``seconds`` is that plus this call; the onnxruntime session made meanwhile on
    its own thread, ``session_seconds``, slows the conversion on a busy machine too).
    fp32_pooled: the fp32 engine's output on `seqs` (in the reference's order), when it was
    computed beforehand (beside the conversion), instead of fp32_engine."""
    t0 = time.perf_counter()
    file_ref = reference
    ordered = reference.order(seqs)
    if len(ordered) != len(seqs) or any(a is not b for a, b in zip(ordered, seqs)):
        fp32_pooled = None  # computed in another order: run it again in this one
    seqs = ordered
    file_out = reference.pooled(seqs, pooling)
    if float_reference is not None:
        want, file_precision = float_reference.pooled(seqs, pooling), graph_precision
        reference, graph_precision = float_reference, "fp32"
    else:
        want, file_precision = file_out, None
    v = Verdict(passed=True, reference=reference.name, graph_precision=graph_precision,
                probe_tokens=int(sum(len(s) for s in seqs)))
    if fp32_pooled is None and fp32_engine is not None:
        fp32_pooled = fp32_engine.embed(seqs, None, native_pooling)
    if fp32_pooled is not None:
        rel, cos = deviation(fp32_pooled, want, normalize)
        v.fp32_max_rel, v.fp32_min_cos = rel, cos
        if graph_precision == "fp32":
            if not rel <= FP32_MAX_REL:
                v.passed = False
                v.reason = (f"the native fp32 forward pass deviates from {reference.name} by "
                            f"{rel:.3g} (relative, largest over the probe; allowed {FP32_MAX_REL:g}; "
                            f"min cosine {cos:.4f})")
        elif not cos >= LOW_PRECISION_MIN_COS[graph_precision]:
            v.passed = False
            v.reason = (f"the native fp32 forward pass has cosine {cos:.4f} with the "
                        f"{graph_precision} graph on {reference.name} "
                        f"(required {LOW_PRECISION_MIN_COS[graph_precision]})")
    if v.passed and int8_engine is not None:
        int8_out = int8_engine.embed(seqs, None, native_pooling)
        _, cos = deviation(int8_out, want, normalize)
        v.int8_min_cos = cos
        need = min(INT8_MIN_COS, LOW_PRECISION_MIN_COS.get(graph_precision, 1.0))
        if not cos >= need:
            v.passed = False
            v.reason = (f"the native int8 engine has cosine {cos:.4f} with {reference.name} "
                        f"(smallest over the probe; required {need})")
        if v.passed and file_precision is not None:
            # and with what the quantized file itself computes
            _, fcos = deviation(int8_out, file_out, normalize)
            v.extra["int8_min_cos_file"] = fcos
            need = LOW_PRECISION_MIN_COS[file_precision]
            if not fcos >= need:
                v.passed = False
                v.reason = (f"the native int8 engine has cosine {fcos:.4f} with the {file_precision} "
                            f"graph on onnxruntime (required {need})")
    if file_precision is not None:
        v.extra["graph_file_precision"] = file_precision
    sessions = file_ref.session_seconds + getattr(float_reference, "session_seconds", 0.0)
    v.seconds = time.perf_counter() - t0 + setup_seconds
    v.extra["session_seconds"] = round(sessions, 4)
    return v
