"""The native encoder engine: embedrt's own C++ forward pass for the encoder families of arch/
(BERT: all-MiniLM-L6/L12, BGE-small, E5-small, GTE-small, ...; MPNet: all-mpnet-base-v2;
RoBERTa and XLM-RoBERTa: all-distilroberta-v1, paraphrase-multilingual-mpnet-base-v2,
multilingual-e5-base; NomicBert: nomic-embed-text-v1 / v1.5; ModernBERT: ModernBERT-base,
modernbert-embed; JinaBert: jina-embeddings-v2-small-en / -base-en) on embedrt's int8 kernels.

    backend = NativeBackend.from_model_dir("all-MiniLM-L6-v2")          # int8
    vectors = backend.embed([ids0, ids1], None, "mean")                  # float32 [2, 384]

Sequences are never padded: a batch is one [total_tokens, hidden] activation matrix and
attention runs per sequence. In int8 mode every linear layer runs on the int8 matrix product
(weights symmetric per output channel, activations quantized per token on the fly), except
the few input channels that carry activation outliers (found once, on fixed synthetic sequences):
those stay in fp32 and are added back after the int8 product, so they do not inflate the
per-token scales. precision="fp32" runs the same graph in float, for exactness.

Weights come from, in this order: a converted file written by convert() (memory-mapped, loads in
a fraction of a second), an ONNX export of BertModel (fp32, or onnxruntime's dynamic int8
quantization of it), or a safetensors checkpoint (sharded too) with config.json, read by the
family loader its model_type names.
"""
from __future__ import annotations

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


def _special_ids(model_dir) -> tuple:
    """(CLS, SEP) ids, the tokens put before and after a text ([CLS] / [SEP]; <s> / </s> for
    RoBERTa and XLM-R), from vocab.txt or tokenizer.json when they can be found, else None.
    (They only shape the probe and calibration sequences; vocab.txt is read first, as it is a
    tenth of the work of parsing tokenizer.json.)"""
    import json

    from .tokenize import special_ids

    if model_dir is None:
        return None, None
    vt = Path(model_dir) / "vocab.txt"
    try:
        if vt.is_file():
            words = vt.read_text(encoding="utf-8", errors="replace").split("\n")
            if "[CLS]" in words and "[SEP]" in words:
                return words.index("[CLS]"), words.index("[SEP]")
    except OSError:
        pass
    tj = Path(model_dir) / "tokenizer.json"
    try:
        if tj.is_file():
            return special_ids(json.loads(tj.read_text(encoding="utf-8")))
    except (OSError, ValueError, RecursionError):
        pass
    return None, None


def _layer_norm(x, g, b, eps):
    m = x.mean(axis=1, keepdims=True)
    v = ((x - m) ** 2).mean(axis=1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def _erf(x):
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26), vectorized."""
    ax = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    p = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
         + 0.254829592) * t
    return np.sign(x) * (1.0 - p * np.exp(-ax * ax))


def reference_forward(cfg: dict, params: dict, seq) -> np.ndarray:
    """The family's forward pass in float64 numpy for one unpadded sequence (token types 0):
    the last hidden states [len(seq), hidden]. The reference of the load gate for checkpoints
    that no other runtime can execute, of calibration's sanity and of the tests.

    It follows the spec in cfg (see arch/): positions absolute (BERT), past the padding
    index (MPNet, RoBERTa), rotary on q and k (NomicBert, ModernBERT) or none (JinaBert), a
    token-type row when the family has them, MPNet's relative-position bias or JinaBert's ALiBi
    on every layer's scores, post- or
    pre-LayerNorm blocks (ModernBERT, with its local windows and final LayerNorm), erf GELU,
    SwiGLU or GeGLU, and linear layers with or without biases."""
    from . import arch
    from .arch import jina_bert, mpnet, nomic_bert
    from .arch._common import position_ids

    spec = arch.spec_of(cfg)
    h, heads, eps = cfg["hidden"], cfg["heads"], cfg["eps"]
    d = h // heads
    seq = np.asarray(seq, np.int64)
    L = len(seq)
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    rot = rot_local = None
    if spec["position"] == "offset":
        pos = position_ids(seq, spec["padding_idx"])
    else:
        pos = np.arange(L)
    if spec["position"] == "rotary":
        rot = nomic_bert.rotary_tables(spec["rotary_base"], d, L)
        rot_local = nomic_bert.rotary_tables(spec["rotary_base_local"], d, L)
    x = f64(params["word"][seq])
    if arch.has_position_table(spec):
        x = x + f64(params["pos"][pos])
    if cfg.get("type_vocab", 1) > 0 and "type" in params:
        x = x + f64(params["type"][0])
    x = _layer_norm(x, params["emb_g"], params["emb_b"], eps)
    bias = None
    if spec["attention_bias"] == "relative" and spec["family"] == "jina_bert":
        slopes = -np.asarray(jina_bert.alibi_slopes(heads), np.float64)
        dist = np.abs(np.arange(L)[None, :] - np.arange(L)[:, None])
        bias = slopes[:, None, None] * dist[None]  # [heads, L, L]: -slope_h * |j - i|
    elif spec["attention_bias"] == "relative":
        r = np.arange(L)[None, :] - np.arange(L)[:, None]  # j - i
        buckets = mpnet.relative_position_bucket(r, cfg.get("relative_buckets", 32))
        bias = f64(params["rel_bias"])[buckets].transpose(2, 0, 1)  # [heads, L, L]
    pre = spec["norm"] == "pre"
    # local layers (ModernBERT): keys within local_window of the query only
    far = np.abs(np.arange(L)[None, :] - np.arange(L)[:, None]) > spec["local_window"]
    for i in range(cfg["layers"]):
        p = lambda k: f64(params[f"{i}.{k}"])  # noqa: E731
        b = lambda k: f64(params[f"{i}.{k}"]) if f"{i}.{k}" in params else 0.0  # noqa: E731
        local = spec["local_window"] > 0 and i % spec["global_every"] != 0
        res = x
        if pre and f"{i}.ln1_g" in params:
            x = _layer_norm(x, p("ln1_g"), p("ln1_b"), eps)
        q = (x @ p("q_w").T + b("q_b")).reshape(L, heads, d).transpose(1, 0, 2)
        k = (x @ p("k_w").T + b("k_b")).reshape(L, heads, d).transpose(1, 0, 2)
        v = (x @ p("v_w").T + b("v_b")).reshape(L, heads, d).transpose(1, 0, 2)
        if rot is not None:
            rr = rot_local if local else rot
            q, k = nomic_bert.rotate(q, *rr), nomic_bert.rotate(k, *rr)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        if bias is not None:
            s = s + bias
        if local:
            s = np.where(far, -np.inf, s)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(1, 0, 2).reshape(L, h)
        if pre:  # x += attn(LN1(x)); x += ffn(LN2(x))
            res = res + c @ p("ao_w").T + b("ao_b")
            x1 = _layer_norm(res, p("ln2_g"), p("ln2_b"), eps)
        else:
            x1 = _layer_norm(c @ p("ao_w").T + b("ao_b") + x, p("ln1_g"), p("ln1_b"), eps)
        u = x1 @ p("up_w").T + b("up_b")
        if spec["ffn"] == "swiglu":
            g = x1 @ p("gate_w").T
            u = u * (g / (1.0 + np.exp(-g)))
        elif spec["ffn"] == "geglu":
            u = 0.5 * u * (1.0 + _erf(u / np.sqrt(2.0))) * (x1 @ p("gate_w").T)
        else:
            u = 0.5 * u * (1.0 + _erf(u / np.sqrt(2.0)))
        if pre:
            x = res + u @ p("down_w").T + b("down_b")
        else:
            x = _layer_norm(u @ p("down_w").T + b("down_b") + x1, p("ln2_g"), p("ln2_b"), eps)
    if pre and cfg["layers"] > 0:
        x = _layer_norm(x, params["final_g"], params["final_b"], eps)
    return x


def calibrate(cfg: dict, fp32_engine, seqs, pooling=None):
    """Per-channel max |x| of every linear layer's input over `seqs`, measured by the native
    fp32 engine (a NativeBackend or _core.NativeEncoder with fp32 weights):
    {"<layer>.<slot>": array[k]}. With a pooling mode, (stats, the fp32 engine's pooled
    embeddings of `seqs` from the same pass): the load gate's fp32 check on the probe costs no
    pass of its own, since the probe is also what calibration measures."""
    engine = getattr(fp32_engine, "_engine", fp32_engine)
    flat, offsets = _concat(seqs, "seqs")
    stats = engine.activation_absmax(flat, offsets, pooling)
    pooled = None
    if pooling is not None:
        stats, pooled = stats
    h = cfg["hidden"]
    out = {}
    for i in range(cfg["layers"]):
        row = stats[i]
        out[f"{i}.qkv"] = row[:h]
        out[f"{i}.attn_out"] = row[h:2 * h]
        out[f"{i}.up"] = row[2 * h:3 * h]
        out[f"{i}.down"] = row[3 * h:]
    return out if pooling is None else (out, pooled)


def _outlier_channels(absmax: np.ndarray, max_outliers: int, ratio: float) -> np.ndarray:
    """Channels whose calibrated max |x| exceeds `ratio` times the median (at most
    max_outliers, largest first)."""
    if max_outliers <= 0:
        return np.zeros(0, np.int64)
    med = float(np.median(absmax))
    order = np.argsort(absmax)[::-1][:max_outliers]
    keep = [int(c) for c in order if absmax[c] > ratio * med]
    return np.array(sorted(keep), np.int64)


# The longest calibration sequence (tokens; at most the model's max_position).
CALIBRATION_LONGEST = 256
# The longest probe sequence the numpy reference runs (a checkpoint without a graph): its
# float64 attention holds heads * L^2 scores, so the folder's 8192 tokens (nomic-embed-text)
# would take gigabytes and minutes. The engine's code is the same at every position (the
# rotary angles come from one formula), so the probe stops here.
NUMPY_PROBE_LONGEST = 1024
# Outlier channels kept in fp32 per linear layer input (at most), and the threshold.
MAX_OUTLIERS = {"qkv": 4, "attn_out": 0, "up": 4, "down": 4}
OUTLIER_RATIO = 4.0


def prepare_arrays(cfg: dict, params: dict, precision: str, stats: dict | None = None) -> dict:
    """The arrays the C++ engine takes (see csrc/bindings/encoder.cpp) for one precision.

    int8: weights quantized per output channel; the input channels that carry activation
    outliers (by `stats`, from calibrate()) are kept in fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and stats is None:
        raise ValueError("int8 weights need the calibration statistics")
    from . import arch

    h, heads = cfg["hidden"], cfg["heads"]
    qscale = np.float32(1.0 / np.sqrt(h // heads))
    out = {"word_embeddings": params["word"],
           "embeddings_ln_g": params["emb_g"], "embeddings_ln_b": params["emb_b"]}
    spec = arch.spec_of(cfg)
    if arch.has_position_table(spec):
        out["position_embeddings"] = params["pos"]
    if cfg["type_vocab"] > 0:
        out["token_type_embeddings"] = params["type"]
    if spec["attention_bias"] == "relative":
        out["relative_attention_bias"] = arch.relative_bias_table(cfg, params, arch.max_tokens(cfg))
    for i in range(cfg["layers"]):
        p = lambda k: params[f"{i}.{k}"]  # noqa: E731
        biased = f"{i}.q_b" in params  # a family without biases (NomicBert) has none
        # SwiGLU: one up product [2 * intermediate, hidden], the value rows then the gate rows
        up_w = np.concatenate([p("up_w"), p("gate_w")]) if spec["ffn"] != "gelu" else p("up_w")
        lin = {
            "qkv": (np.concatenate([p("q_w") * qscale, p("k_w"), p("v_w")]),
                    np.concatenate([p("q_b") * qscale, p("k_b"), p("v_b")]) if biased else None),
            "attn_out": (p("ao_w"), p("ao_b") if biased else None),
            "up": (up_w, params.get(f"{i}.up_b") if biased else None),
            "down": (p("down_w"), p("down_b") if biased else None),
        }
        for slot, (w, b) in lin.items():
            base = f"{i}.{slot}."
            w = np.ascontiguousarray(w, np.float32)
            if b is not None:
                out[base + "bias"] = np.ascontiguousarray(b, np.float32)
            if precision == "fp32":
                out[base + "weight"] = w
                continue
            idx = _outlier_channels(stats[f"{i}.{slot}"], MAX_OUTLIERS[slot], OUTLIER_RATIO)
            wi = w.copy()
            if idx.size:
                out[base + "outlier_idx"] = idx
                out[base + "outlier_w"] = np.ascontiguousarray(w[:, idx].T)
                wi[:, idx] = 0.0
            q, s = _quantize_rows(wi)
            out[base + "weight"] = q
            out[base + "scale"] = s
        for key in ("ln1_g", "ln1_b", "ln2_g", "ln2_b"):
            if f"{i}.{key}" in params:  # a pre-LayerNorm layer may have no ln1
                out[f"{i}.{key}"] = np.ascontiguousarray(p(key), np.float32)
    if spec["norm"] == "pre":
        out["final_ln_g"] = np.ascontiguousarray(params["final_g"], np.float32)
        out["final_ln_b"] = np.ascontiguousarray(params["final_b"], np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Sources

def find_source(model_dir: Path, onnx_file=None) -> Path | None:
    """The file the engine's weights come from: `onnx_file` (relative to the folder), else
    onnx/model.onnx, model.onnx or model.safetensors (or a sharded checkpoint's
    model.safetensors.index.json); None when there is none. For a family other than BERT the
    checkpoint comes first (the ONNX reader knows BERT graphs only)."""
    from .arch.checkpoint import INDEX_NAME

    model_dir = Path(model_dir)
    if onnx_file is not None:
        onnx_path = Path(onnx_file)
        if not onnx_path.is_absolute():
            onnx_path = model_dir / onnx_path
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path}: no such ONNX file")
        return onnx_path
    graphs = [model_dir / "onnx" / "model.onnx", model_dir / "model.onnx"]
    checkpoints = [model_dir / "model.safetensors", model_dir / INDEX_NAME]
    try:
        hf = read_hf_config(model_dir)
    except NotRecognized:
        hf = None  # an unknown family: the graph, if any, is what onnxruntime runs
    order = checkpoints + graphs if hf is not None and hf.get("family", "bert") != "bert" \
        else graphs + checkpoints
    for cand in order:
        if cand.is_file():
            return cand
    return None


def _load_source(model_dir: Path, source: Path):
    """(cfg, params) from an ONNX graph or a safetensors checkpoint."""
    cfg = read_hf_config(model_dir)
    if source.suffix == ".onnx":
        return params_from_onnx(source, cfg)
    if cfg is None:
        raise NotRecognized(f"{model_dir}: {source.name} needs a config.json beside it")
    return params_from_safetensors(source, cfg)


def companions(source: Path, model_dir: Path) -> list:
    """The files that decide what a source is, fingerprinted with it (relative to its folder):
    the model folder's config.json, which the family loader reads for a checkpoint and for a
    graph alike (model_type, sizes, epsilon), and a sharded checkpoint's shards."""
    import os

    from .arch.checkpoint import INDEX_NAME, shard_names

    source, config = Path(source), Path(model_dir) / "config.json"
    out = []
    if config.is_file():
        try:
            out.append(os.path.relpath(config, source.parent))
        except ValueError:  # another drive
            out.append(str(config.resolve()))
    if source.name == INDEX_NAME:
        try:
            out += shard_names(source)
        except NotRecognized:
            pass  # the load names what is wrong with it
    return out


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


def _read_engine(path: Path, precision: str):
    """(cfg, arrays, meta) of a converted engine file; ValueError when it is malformed."""
    from .._fileformat import read_file

    f = read_file(path, FILE_KIND, FILE_VERSION, mmap=True, verify=False)
    _verify_by_reading(path, f.sections)
    meta = f.meta
    if meta.get("precision") != precision:
        raise ValueError(f"{path}: holds {meta.get('precision')} weights, not {precision}")
    try:
        cfg = {k: int(meta["config"][k]) for k in _CFG_KEYS}
        cfg["eps"] = float(meta["eps"])
        cfg.update(_spec_from_meta(meta.get("spec")))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: malformed engine metadata ({e})") from None
    return cfg, f.arrays, meta


def _spec_from_meta(spec) -> dict:
    """The spec an engine file keeps (files without one are BERTs); ValueError when malformed."""
    from . import arch

    if spec is None:
        return dict(arch.SPEC_DEFAULTS)
    if not isinstance(spec, dict):
        raise ValueError("spec is not a mapping")
    out = arch.spec_of(spec)
    if out["family"] not in arch.SUPPORTED or out["position"] not in arch.POSITIONS \
            or out["attention_bias"] not in arch.ATTENTION_BIASES or out["ffn"] not in arch.FFNS \
            or out["norm"] not in arch.NORMS:
        raise ValueError(f"unknown spec {spec!r:.200}")
    for key in ("padding_idx", "local_window", "global_every"):
        out[key] = int(out[key])
    for key in ("rotary_base", "rotary_base_local"):
        out[key] = float(out[key])
    return out


class _Prepared:
    """A model read, checked by the gate and ready to run: the engine arrays of `precision`."""

    def __init__(self, cfg, arrays, precision, source, verdict):
        self.cfg, self.arrays, self.precision = cfg, arrays, precision
        self.source, self.verdict = source, verdict


def _build(model_dir: Path, source: Path, precision: str, verify: bool, pooling: str,
           normalize: bool, longest, threads=None) -> _Prepared:
    """Reads `source`, runs the gate (when `verify`), calibrates and quantizes. Raises
    NotRecognized (a gate.GateMismatch when the probe disagrees)."""
    import time

    from . import gate
    from .arch import max_tokens

    special = _special_ids(model_dir)

    def calibration_for(c):
        return gate.probe_sequences(c["vocab"], min(CALIBRATION_LONGEST, max_tokens(c)), special)

    def probe_for(c):
        """The gate's probe: the calibration sequences, plus one of the folder's longest
        length when that is another (sorted by length, as the references order them)."""
        limit = max_tokens(c) if longest is None else min(int(longest), max_tokens(c))
        if source.suffix != ".onnx":
            limit = min(limit, NUMPY_PROBE_LONGEST)
        cal = calibration_for(c)
        if limit == len(cal[-1]):
            return cal
        extra = gate.probe_sequences(c["vocab"], limit, special)[-1]
        return sorted(cal + [extra], key=len)

    # The onnxruntime side of the gate starts at once on its own thread (config.json tells the
    # probe's vocabulary and length), overlapping the reading and conversion below; it runs on
    # one onnxruntime thread, so the conversion keeps the other core.
    early = seqs = None
    if verify and source.suffix == ".onnx":
        hf = read_hf_config(model_dir)
        if hf is not None:
            seqs = probe_for(hf)
            early = gate.start_onnx_reference(source, seqs, pooling)
    cfg, params = _load_source(model_dir, source)
    fp32_arrays = prepare_arrays(cfg, params, "fp32")
    fp32 = NativeBackend.from_arrays(cfg, fp32_arrays, "fp32", source=str(source))
    native_pooling = _native_pooling(pooling)
    want = probe_for(cfg)
    if seqs is None or len(seqs) != len(want) or not all(np.array_equal(a, b) for a, b in zip(seqs, want)):
        seqs = want  # no config.json, or the graph says otherwise: the probe follows the graph
    twin_future = None
    if verify and source.suffix == ".onnx" and cfg.get("graph_precision") == "int8":
        twin_future = gate.start_twin_reference(source, seqs, pooling)
    # Calibration measures fixed random word pieces (the probe's sequences of 1, 3, 6, 13 and
    # CALIBRATION_LONGEST tokens: the engine does not depend on the folder's settings), and
    # the same fp32 pass gives the gate's fp32 output on them.
    fp32_out = None
    if precision == "int8":
        cal = calibration_for(cfg)
        stats, cal_out = calibrate(cfg, fp32, cal, native_pooling)
        if verify:
            fp32_out = _probe_outputs(fp32, seqs, cal, cal_out, native_pooling)
        arrays = prepare_arrays(cfg, params, "int8", stats)
        engine = NativeBackend.from_arrays(cfg, arrays, "int8", source=str(source))
    else:
        arrays, engine = fp32_arrays, fp32
    if not verify:
        return _Prepared(cfg, arrays, precision, source,
                         gate.Verdict(passed=None, reason="not verified (verify=False)"))
    t0 = time.perf_counter()
    twin = None
    if source.suffix == ".onnx":
        reference = early.result() if early is not None else gate.OnnxReference(source, threads=1)
        if twin_future is not None:
            try:
                twin = twin_future.result()
            except NotRecognized as e:
                raise gate.GateMismatch(str(e), gate.Verdict(passed=False, reason=str(e)),
                                        _fallback(reference, threads)) from None
    else:
        reference = gate.NumpyReference(cfg, params)
    verdict = gate.check(reference, seqs, pooling=pooling, native_pooling=native_pooling,
                         normalize=normalize, fp32_engine=fp32, fp32_pooled=fp32_out,
                         int8_engine=engine if precision == "int8" else None,
                         graph_precision=cfg.get("graph_precision", "fp32"), float_reference=twin,
                         setup_seconds=time.perf_counter() - t0)
    if not verdict.passed:
        raise gate.GateMismatch(f"{source.name}: {verdict.reason}", verdict,
                                _fallback(reference, threads))
    return _Prepared(cfg, arrays, precision, source, verdict)


def _probe_outputs(fp32, seqs, cal, cal_out, pooling):
    """The fp32 engine's pooled rows of `seqs`: those of the calibration pass where a sequence
    is one of `cal`, the others run now."""
    rows = [None] * len(seqs)
    rest = []
    for i, s in enumerate(seqs):
        hit = next((j for j, c in enumerate(cal) if len(c) == len(s) and np.array_equal(c, s)), None)
        if hit is None:
            rest.append(i)
        else:
            rows[i] = cal_out[hit]
    if rest:
        out = fp32.embed([seqs[i] for i in rest], None, pooling)
        for i, r in zip(rest, out):
            rows[i] = r
    return np.stack(rows)


def _fallback(reference, threads):
    """The reference's onnxruntime session, reusable as the fallback backend when it runs the
    thread count the caller asked for (else None: the caller makes its own)."""
    from .. import get_num_threads

    backend = getattr(reference, "backend", None)
    want = int(threads) if threads else get_num_threads()
    return backend if backend is not None and getattr(backend, "threads", None) == want else None


def _source_fingerprint(prep: _Prepared, model_dir: Path) -> dict:
    """The fingerprint (with the full digest) of the files an engine was converted from."""
    from . import engine_cache

    fp = engine_cache.fingerprint(prep.source, companions(prep.source, model_dir) +
                                  list(prep.cfg.get("external_data", ())))
    return engine_cache.with_full_digest(fp, prep.source)


def _native_pooling(pooling: str) -> str:
    return "+".join("mean_sqrt_len" if m == "mean_sqrt_len_tokens" else m for m in pooling.split("+"))


def _engine_meta(prep: _Prepared, fp: dict | None, pooling: str, normalize: bool) -> dict:
    from . import arch

    return {"config": {k: int(prep.cfg[k]) for k in _CFG_KEYS}, "eps": float(prep.cfg["eps"]),
            "spec": arch.spec_of(prep.cfg),
            "precision": prep.precision, "source": prep.source.name, "fingerprint": fp,
            "gate": prep.verdict.as_dict(), "probe": {"pooling": pooling, "normalize": bool(normalize)}}


def convert(model_dir, out=None, precision: str = "int8", onnx_file=None, verify: bool = True) -> Path:
    """Writes the native engine's weights for `model_dir` (int8 weights packed per output
    channel with their scales, or fp32) as one embedrt file and returns its path. The load
    gate runs first (unless verify=False) and its verdict is kept in the file; a model it
    rejects raises NotRecognized.

    out defaults to ``<model_dir>/embedrt/<source>.<precision>.embedrt``, where
    NativeBackend.from_model_dir looks first.
    """
    from .._fileformat import write_file
    from . import engine_cache

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    model_dir = Path(model_dir)
    source = find_source(model_dir, onnx_file)
    if source is None:
        raise FileNotFoundError(f"{model_dir}: no onnx/model.onnx, model.onnx or model.safetensors")
    pooling, normalize, longest = _folder_probe_settings(model_dir)
    prep = _build(model_dir, source, precision, verify, pooling, normalize, longest)
    fp = _source_fingerprint(prep, model_dir)
    if out is None:
        out = model_dir / "embedrt" / engine_cache.engine_name(source, precision)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_file(out, FILE_KIND, FILE_VERSION, _engine_meta(prep, fp, pooling, normalize), prep.arrays)
    return out


def _folder_probe_settings(model_dir: Path) -> tuple:
    """(pooling, normalize, longest) of a model folder as Encoder reads it, with BertModel's
    defaults (mean, normalized, max_position) where the folder does not say."""
    try:
        from .model_dir import read_model_folder

        folder = read_model_folder(model_dir)
        return folder.pooling_name, bool(folder.normalize), folder.max_seq_length
    except Exception:  # noqa: BLE001 - a bare weights folder: the defaults
        return "mean", True, None


def open_native(model_dir, onnx_file=None, precision: str = "int8", verify: bool = True,
                pooling: str = "mean", normalize: bool = True, longest=None, threads=None,
                cache: bool = True) -> tuple:
    """The native engine for a model folder, proven by the load gate: (engine arrays holder,
    info). Looks for a current converted engine first (see engine_cache), then for a stored
    rejection, and otherwise reads the source, runs the gate and keeps the result.

    Returns (_Prepared, info dict); raises NotRecognized (gate.GateMismatch for a probe that
    disagrees) and ValueError for a malformed file."""
    import logging

    from .._fileformat import write_file
    from . import engine_cache, gate

    log = logging.getLogger("embedrt")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: no such model folder")
    source = find_source(model_dir, onnx_file)
    if source is None:
        # a folder with only a converted engine (embedrt convert ... --output), no source
        conv = model_dir / "embedrt" / f"model.{precision}.embedrt"
        if not conv.is_file():
            read_hf_config(model_dir)  # a config.json of another family says so first
            raise FileNotFoundError(f"{model_dir}: no converted model, onnx/model.onnx or "
                                    "model.safetensors")
        cfg, arrays, meta = _read_engine(conv, precision)
        verdict = gate.Verdict.from_dict(meta.get("gate") or {"passed": None})
        return (_Prepared(cfg, arrays, precision, conv, verdict),
                {"cached": True, "engine_file": str(conv)})
    required = companions(source, model_dir)
    fp = engine_cache.fingerprint(source, required)
    probe = {"pooling": pooling, "normalize": bool(normalize)}
    if cache:
        for cand in engine_cache.engine_candidates(model_dir, source, precision, fp):
            if not cand.is_file():
                continue
            try:
                cfg, arrays, meta = _read_engine(cand, precision)
            except ValueError as e:
                log.warning("embedrt: ignoring the converted engine %s (%s); converting again", cand, e)
                continue
            if meta.get("source") != source.name or not engine_cache.matches(
                    meta.get("fingerprint"), source, required):
                continue  # converted from another file, or from an older version of this one
            verdict = gate.Verdict.from_dict(meta.get("gate") or {"passed": None})
            if verify and (verdict.passed is not True or meta.get("probe") != probe):
                continue  # not proven (or proven for another pooling): prove it now
            return (_Prepared(cfg, arrays, precision, source, verdict),
                    {"cached": True, "engine_file": str(cand)})
        if verify:
            stored = engine_cache.read_verdict(fp, precision, source)
            if stored is not None and stored.get("probe") == probe:
                verdict = gate.Verdict.from_dict(stored.get("gate") or {"passed": False})
                msg = stored.get("message") or verdict.reason
                err = gate.GateMismatch(msg, verdict) if stored.get("kind") == "mismatch" \
                    else NotRecognized(msg)
                err.cached = True
                raise err
    try:
        prep = _build(model_dir, source, precision, verify, pooling, normalize, longest, threads)
    except NotRecognized as e:
        if cache and verify:
            kind = "mismatch" if isinstance(e, gate.GateMismatch) else "refused"
            verdict = e.verdict.as_dict() if isinstance(e, gate.GateMismatch) else \
                {"passed": False, "reason": str(e)}
            engine_cache.write_verdict(fp, precision, source, {"kind": kind, "message": str(e),
                                                               "gate": verdict, "probe": probe})
        raise
    info = {"cached": False, "engine_file": None}
    if cache:
        target = engine_cache.engine_target(model_dir, source, precision, fp)
        if target is not None:
            try:
                write_file(target, FILE_KIND, FILE_VERSION,
                           _engine_meta(prep, _source_fingerprint(prep, model_dir), pooling, normalize),
                           prep.arrays)
                info["engine_file"] = str(target)
                engine_cache.forget_verdict(fp, precision)
            except OSError as e:
                log.info("embedrt: could not keep the converted engine in %s (%s)", target, e)
    return prep, info


# ---------------------------------------------------------------------------------------------
# Backend

class NativeBackend:
    """The native forward pass behind embedrt.Encoder (see the module docstring); a
    `backend.Backend`."""

    kind = "native"
    skips_prompt = False  # it pools every token of a sequence

    def __init__(self, engine, cfg: dict, precision: str, layers: int, source: str):
        self._engine = engine
        self._cfg = dict(cfg)
        self.precision = precision
        self.name = f"native-{precision}"
        self.dim = int(cfg["hidden"])
        from .arch import max_tokens

        self.max_position = max_tokens(cfg)  # the longest sequence it takes
        self.total_layers = int(cfg["layers"])
        self.num_layers = int(layers)
        self.vocab_size = int(cfg["vocab"])
        self.source = source
        self.pooled = True  # embed() returns pooled vectors
        self.verdict = None  # the load gate's gate.Verdict, when it came through from_model_dir
        self.load_info = {}

    def width(self, modes: int, hidden=None) -> int:
        """The width of embed()'s rows for `modes` concatenated pooling modes."""
        return self.dim * int(modes)

    def set_padding(self, pad_id=None, position_padding_idx=None) -> None:
        """Nothing to set: sequences are never padded, and positions follow the model's spec."""

    def load_report(self) -> dict:
        """{"source", "engine_file", "gate"} of this load (see backend.Backend)."""
        gate = None
        if self.verdict is not None:
            gate = self.verdict.as_dict()
            gate["cached"] = bool(self.load_info.get("cached"))
        return {"source": str(self.load_info.get("source") or self.source),
                "engine_file": self.load_info.get("engine_file"), "gate": gate}

    def __repr__(self) -> str:
        return (f"NativeBackend({self.name}, dim={self.dim}, layers={self.num_layers}/"
                f"{self.total_layers}, source={self.source})")

    @classmethod
    def from_arrays(cls, cfg: dict, arrays: dict, precision: str, layers=None, source="arrays"):
        from .arch import spec_of

        spec = spec_of(cfg)
        engine = _core().NativeEncoder(*(int(cfg[k]) for k in _CFG_KEYS), float(cfg["eps"]),
                                       arrays, position=spec["position"],
                                       padding_idx=int(spec["padding_idx"]),
                                       attention_bias=spec["attention_bias"], ffn=spec["ffn"],
                                       rotary_base=float(spec["rotary_base"]), norm=spec["norm"],
                                       local_window=int(spec["local_window"]),
                                       global_every=int(spec["global_every"]),
                                       rotary_base_local=float(spec["rotary_base_local"]))
        return cls(engine, cfg, precision, _check_layers(layers, cfg["layers"]), source)

    @classmethod
    def from_model_dir(cls, path, onnx_file=None, layers=None, precision: str = "int8",
                       threads=None, verify: bool = True, pooling: str = "mean",
                       normalize: bool = True, longest=None, cache: bool = True) -> "NativeBackend":
        """Loads a model folder: a current converted engine (in the folder's ``embedrt/`` or
        the user cache) if there is one, else the ONNX export (``onnx/model.onnx`` or
        `onnx_file`), else ``model.safetensors`` + ``config.json``, proven by the load gate
        (embedrt.encoder.gate) unless verify=False, and keeps the converted engine.

        layers: run only the first `layers` layers (early exit). threads: sets embedrt's
        worker pool size. pooling / normalize / longest: how the folder pools (the gate
        compares what encode() returns). Raises NotRecognized when the model is not a BERT
        the engine runs, or when the gate finds that it does not run it correctly.
        """
        from .._runtime import set_num_threads

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if threads is not None:
            set_num_threads(threads)
        prep, info = open_native(path, onnx_file, precision, verify=verify, pooling=pooling,
                                 normalize=normalize, longest=longest, threads=threads, cache=cache)
        source = info.get("engine_file") if info.get("cached") else str(prep.source)
        backend = cls.from_arrays(prep.cfg, prep.arrays, precision, layers, source)
        backend.verdict = prep.verdict
        backend.load_info = dict(info, source=str(prep.source))
        return backend

    def embed(self, ids, type_ids=None, pooling: str = "mean", skip: int = 0) -> np.ndarray:
        """Pooled (not normalized) float32 embeddings [n, dim] of tokenized sequences.

        ids: one 1-D integer array per text (unpadded, with the special tokens); type_ids: the
        same shapes, or None for all zeros; pooling: mean, cls, max, mean_sqrt_len, lasttoken
        or weightedmean (mean_sqrt_len_tokens too, sentence-transformers' name of
        mean_sqrt_len); several joined with "+" give their concatenation [n, dim * modes].
        skip: must be 0 (the engine pools every token; see skips_prompt).
        """
        if skip:
            raise ValueError(f"skip={skip}: the native engine pools every token of a sequence "
                             "(it cannot leave a prompt out of the pooling)")
        if isinstance(pooling, str):
            pooling = _native_pooling(pooling)
        modes = pooling.split("+") if isinstance(pooling, str) else [pooling]
        if not modes or any(m not in POOLINGS for m in modes):
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)} "
                             "(or several joined with '+', concatenated)")
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            ids = list(ids)
        if not isinstance(ids, (list, tuple)):
            raise TypeError("ids must be a list of 1-D integer arrays")
        n = len(ids)
        if n == 0:
            return np.zeros((0, self.dim * len(modes)), np.float32)
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
