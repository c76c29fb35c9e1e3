"""Every encoder family: the native int8 engine against onnxruntime running the family's ONNX
export (fp32; onnxruntime's own dynamic int8 quantization of it; and the int8 graph
``embedrt export --quantize int8`` writes), one thread, side by side.

    python benchmarks/compare_families.py [--families bert,mpnet,...] [--texts 300] [--rounds 3]
    python benchmarks/compare_families.py --checkpoint DIR [--texts 300]   # a real checkpoint folder

Per family a random-weight checkpoint of a realistic small size (hidden 384, 6 layers, 12 heads,
a 4,000-word vocabulary; the family's own feed-forward shape: GELU 1536 wide, NomicBert's SwiGLU
1024, ModernBERT's GeGLU 1024 with its local layers, JinaBert's GeGLU 1536 with ALiBi) is
written with numpy into a temporary folder, exported by ``embedrt.export(..., quantize="int8")``
(per-token activation scales, outlier channels in float) and quantized by onnxruntime's
``quantize_dynamic`` (QInt8 weights per channel, one activation scale per tensor: what
onnxruntime's users run, the peer "ort int8"). The texts are token sequences of the lengths of
the benchmark corpus (the stdlib docstrings of ../shared tokenized by all-MiniLM-L6-v2, at most
256 tokens; random lengths of the same range without it), their ids drawn from the vocabulary.
onnxruntime runs length-sorted batches of 32, padded per batch, intra_op_num_threads=1; the
native engine takes the whole list (it never pads; the load gate is skipped: the weights are
random). The contenders take turns (_timing.interleaved) and the best round counts. Accuracy:
the cosine of each contender's mean-pooled output with onnxruntime fp32's, on the first 64
texts.

With ``--checkpoint DIR`` (a sentence-transformers folder holding model.safetensors, e.g. the
real all-mpnet-base-v2) the same comparison runs on that model, over the corpus texts tokenized
by its own tokenizer (at most 256 tokens), all of them in the accuracy check.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import interleaved

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
TOKENIZER = REPO / "tests" / "data" / "mpnet" / "tiny-mpnet"  # any tokenizer.json: ids are fed directly

H, LAYERS, HEADS, VOCAB = 384, 6, 12, 4000
FAMILIES = ("bert", "mpnet", "roberta", "nomic_bert", "modernbert", "jina_bert")


def _tensors(family: str, rng) -> tuple:
    """(config.json, tensors) of a random checkpoint of `family`."""
    def r(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln():
        return 1 + r(H, scale=0.05), r(H, scale=0.02)

    t = {}
    if family in ("bert", "mpnet", "roberta"):
        inter, positions = 1536, 514 if family != "bert" else 512
        cfg = {"model_type": family, "hidden_size": H, "num_attention_heads": HEADS,
               "num_hidden_layers": LAYERS, "intermediate_size": inter, "vocab_size": VOCAB,
               "max_position_embeddings": positions, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
               "type_vocab_size": 1 if family == "roberta" else 2, "pad_token_id": 1 if family != "bert" else 0}
        t["embeddings.word_embeddings.weight"] = r(VOCAB, H, scale=0.5)
        t["embeddings.position_embeddings.weight"] = r(positions, H, scale=0.1)
        if family != "mpnet":
            t["embeddings.token_type_embeddings.weight"] = r(cfg["type_vocab_size"], H, scale=0.1)
        else:
            t["encoder.relative_attention_bias.weight"] = r(32, HEADS, scale=0.5)
        t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"] = ln()
        names = ({"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
                  "ao": "attention.attn.o", "ln1": "attention.LayerNorm"} if family == "mpnet" else
                 {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                  "ao": "attention.output.dense", "ln1": "attention.output.LayerNorm"})
        names.update(up="intermediate.dense", down="output.dense", ln2="output.LayerNorm")
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            for slot, n_out, n_in in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H),
                                      ("up", inter, H), ("down", H, inter)):
                t[p + names[slot] + ".weight"] = r(n_out, n_in)
                t[p + names[slot] + ".bias"] = r(n_out, scale=0.02)
            for slot in ("ln1", "ln2"):
                t[p + names[slot] + ".weight"], t[p + names[slot] + ".bias"] = ln()
        return cfg, t
    if family == "nomic_bert":
        inter = 1024
        cfg = {"model_type": "nomic_bert", "n_embd": H, "n_head": HEADS, "n_layer": LAYERS, "n_inner": inter,
               "vocab_size": VOCAB, "n_positions": 2048, "activation_function": "swiglu",
               "rotary_emb_fraction": 1.0, "rotary_emb_base": 1000, "prenorm": False, "parallel_block": False,
               "causal": False, "qkv_proj_bias": False, "mlp_fc1_bias": False, "mlp_fc2_bias": False,
               "rotary_emb_interleaved": False, "use_rms_norm": False, "rotary_head_dim": False,
               "rotary_emb_scale_base": None, "rotary_scaling_factor": None, "type_vocab_size": 2,
               "layer_norm_epsilon": 1e-12}
        t["embeddings.word_embeddings.weight"] = r(VOCAB, H, scale=0.5)
        t["embeddings.token_type_embeddings.weight"] = r(2, H, scale=0.1)
        t["emb_ln.weight"], t["emb_ln.bias"] = ln()
        for i in range(LAYERS):
            p = f"encoder.layers.{i}."
            t[p + "attn.Wqkv.weight"] = r(3 * H, H)
            t[p + "attn.out_proj.weight"] = r(H, H)
            t[p + "mlp.fc11.weight"], t[p + "mlp.fc12.weight"] = r(inter, H), r(inter, H)
            t[p + "mlp.fc2.weight"] = r(H, inter)
            for n in ("norm1", "norm2"):
                t[p + n + ".weight"], t[p + n + ".bias"] = ln()
        return cfg, t
    if family == "jina_bert":  # jina-embeddings-v2-small-en's shape (GeGLU 1536, ALiBi)
        inter = 1536
        cfg = {"model_type": "bert", "position_embedding_type": "alibi", "feed_forward_type": "geglu",
               "hidden_size": H, "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
               "intermediate_size": inter, "vocab_size": VOCAB, "max_position_embeddings": 8192,
               "hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2, "pad_token_id": 0}
        t["embeddings.word_embeddings.weight"] = r(VOCAB, H, scale=0.5)
        t["embeddings.token_type_embeddings.weight"] = r(2, H, scale=0.1)
        t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"] = ln()
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                         "attention.output.dense"):
                t[p + name + ".weight"], t[p + name + ".bias"] = r(H, H), r(H, scale=0.02)
            t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"] = ln()
            t[p + "mlp.gated_layers.weight"] = r(2 * inter, H)
            t[p + "mlp.wo.weight"], t[p + "mlp.wo.bias"] = r(H, inter), r(H, scale=0.02)
            t[p + "mlp.layernorm.weight"], t[p + "mlp.layernorm.bias"] = ln()
        return cfg, t
    inter = 1024  # modernbert
    cfg = {"model_type": "modernbert", "hidden_size": H, "num_attention_heads": HEADS,
           "num_hidden_layers": LAYERS, "intermediate_size": inter, "vocab_size": VOCAB,
           "max_position_embeddings": 8192, "hidden_activation": "gelu", "norm_eps": 1e-5,
           "global_attn_every_n_layers": 3, "local_attention": 128, "global_rope_theta": 160000.0,
           "local_rope_theta": 10000.0, "attention_bias": False, "mlp_bias": False, "norm_bias": False,
           "pad_token_id": 0}
    t["embeddings.tok_embeddings.weight"] = r(VOCAB, H, scale=0.5)
    t["embeddings.norm.weight"] = ln()[0]
    for i in range(LAYERS):
        p = f"layers.{i}."
        if i:
            t[p + "attn_norm.weight"] = ln()[0]
        t[p + "attn.Wqkv.weight"] = r(3 * H, H)
        t[p + "attn.Wo.weight"] = r(H, H)
        t[p + "mlp_norm.weight"] = ln()[0]
        t[p + "mlp.Wi.weight"] = r(2 * inter, H)
        t[p + "mlp.Wo.weight"] = r(H, inter)
    t["final_norm.weight"] = ln()[0]
    return cfg, t


def make_checkpoint(family: str, folder: Path, seed: int = 0) -> Path:
    from test_export import write_safetensors

    cfg, tensors = _tensors(family, np.random.default_rng(seed))
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    write_safetensors(folder / "model.safetensors", tensors)
    for name in ("tokenizer.json", "modules.json", "sentence_bert_config.json"):
        (folder / name).write_text((TOKENIZER / name).read_text())
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": H, "pooling_mode_mean_tokens": True}))
    return folder


def sequence_lengths(n: int) -> list:
    """Token counts of the first n corpus texts (MiniLM's tokenizer, at most 256), or random
    lengths of the same range when ../shared is absent."""
    if CORPUS.is_file() and (MINILM / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(MINILM / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(256)
        texts = json.loads(CORPUS.read_text())[:n]
        return [len(e.ids) for e in tok.encode_batch(texts)], "corpus"
    rng = np.random.default_rng(1)
    return np.clip(rng.lognormal(3.8, 0.8, n).astype(int), 3, 256).tolist(), "random"


class OrtRunner:
    def __init__(self, path, pad_id: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.types = any(i.name == "token_type_ids" for i in self.sess.get_inputs())
        self.pad = pad_id

    def embed(self, ids, batch=32):
        order = np.argsort([len(s) for s in ids], kind="stable")
        out = None
        for b0 in range(0, len(ids), batch):
            idx = order[b0:b0 + batch]
            width = max(len(ids[i]) for i in idx)
            x = np.full((len(idx), width), self.pad, np.int64)
            m = np.zeros((len(idx), width), np.int64)
            for r, i in enumerate(idx):
                x[r, :len(ids[i])], m[r, :len(ids[i])] = ids[i], 1
            feed = {"input_ids": x, "attention_mask": m}
            if self.types:
                feed["token_type_ids"] = np.zeros_like(x)
            h = self.sess.run(None, feed)[0]
            if out is None:
                out = np.zeros((len(ids), h.shape[-1]), np.float32)
            out[idx] = (h * m[:, :, None]).sum(1) / m.sum(1, keepdims=True)
        return out


class NativeRunner:
    def __init__(self, folder):
        from embedrt.encoder.native import NativeBackend

        self.b = NativeBackend.from_model_dir(folder, precision="int8", verify=False, cache=False)

    def embed(self, ids):
        return self.b.embed(ids, None, "mean")


def _cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(1)


def run(families=FAMILIES, n_texts: int = 300, rounds: int = 3) -> str:
    import embedrt

    embedrt.set_num_threads(1)
    lengths, kind = sequence_lengths(n_texts)
    rng = np.random.default_rng(7)
    ids = [np.concatenate([[2], rng.integers(5, VOCAB, n - 2), [3]]).astype(np.int64) if n >= 2
           else np.array([2], np.int64) for n in lengths]
    lines = ["## encoder families: native int8 vs onnxruntime on the export, one thread\n",
             f"{len(ids)} sequences of the {kind} lengths (mean {np.mean(lengths):.1f} tokens), "
             f"hidden {H}, {LAYERS} layers, {HEADS} heads, vocabulary {VOCAB}; best of {rounds} "
             "interleaved rounds (thread CPU time; wall in brackets)\n",
             "| family | native int8 | onnxruntime int8 | onnxruntime fp32 | ort on the export's int8 "
             "| native int8 / ort int8 | min cos vs ort fp32: native int8, ort int8, export's int8 |",
             "|---|---:|---:|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for fam in families:
            src = make_checkpoint(fam, Path(tmp) / fam / "ckpt")
            out, refused = _export(src, Path(tmp) / fam / "onnx-folder")
            graph = out / "onnx" / "model.onnx"
            pad = 1 if fam in ("mpnet", "roberta") else 0
            runners = _runners(NativeRunner(src), graph, out, pad)
            ref = runners["ort fp32"].embed(ids[:64])
            cos = {k: _cos(r.embed(ids[:64]), ref).min() for k, r in runners.items() if k != "ort fp32"}
            t = interleaved({k: (lambda r=r: r.embed(ids)) for k, r in runners.items()}, rounds, keep=False)
            tps = {k: len(ids) / v.thread_cpu for k, v in t.items()}
            wall = {k: len(ids) / v.wall for k, v in t.items()}
            exp = (f"{tps['export int8']:.1f} ({wall['export int8']:.1f})" if refused is None
                   else f"refused: {refused}")
            exp_cos = f"{cos['export int8']:.4f}" if refused is None else "-"
            lines.append(f"| {fam} | {tps['native int8']:.1f} ({wall['native int8']:.1f}) | "
                         f"{tps['ort int8']:.1f} ({wall['ort int8']:.1f}) | "
                         f"{tps['ort fp32']:.1f} ({wall['ort fp32']:.1f}) | {exp} | "
                         f"{tps['native int8'] / tps['ort int8']:.2f}x "
                         f"({wall['native int8'] / wall['ort int8']:.2f}x) | "
                         f"{cos['native int8']:.4f}, {cos['ort int8']:.4f}, {exp_cos} |")
            print(lines[-1], flush=True)
            del runners
    return "\n".join(lines) + "\n"


def _export(src: Path, dst: Path) -> tuple:
    """(the exported folder, None), with the export's int8 graph; or, when the export refuses
    to write that graph (its probe cosine below the bar), the float export and the reason."""
    import embedrt
    from embedrt.encoder.export import ExportError

    try:
        return embedrt.export(src, dst, quantize="int8"), None
    except ExportError as e:
        msg = str(e)
        cos = msg.split("cosine of only ")[1].split(" ")[0] if "cosine of only " in msg else "?"
        return embedrt.export(src, dst), f"probe cos {cos}"


def _runners(native, graph: Path, out: Path, pad: int) -> dict:
    """The contenders: the native engine, onnxruntime's dynamic int8 of `graph` (written beside
    it), the float graph, and the export's own int8 graph (when it was written)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    peer = out / "onnx" / "model_ort_dynamic_int8.onnx"
    quantize_dynamic(str(graph), str(peer), weight_type=QuantType.QInt8, per_channel=True, reduce_range=False)
    runners = {"native int8": native, "ort int8": OrtRunner(peer, pad), "ort fp32": OrtRunner(graph, pad)}
    if (out / "onnx" / "model_qint8.onnx").is_file():
        runners["export int8"] = OrtRunner(out / "onnx" / "model_qint8.onnx", pad)
    return runners


def run_checkpoint(folder: Path, n_texts: int = 300, rounds: int = 3) -> str:
    """The comparison on a real checkpoint folder (see the module docstring)."""
    from tokenizers import Tokenizer

    import embedrt

    embedrt.set_num_threads(1)
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    texts = json.loads(CORPUS.read_text())[:n_texts]
    ids = [np.array(e.ids, np.int64) for e in tok.encode_batch(texts)]
    lengths = [len(x) for x in ids]
    pad = int(cfg.get("pad_token_id") or 0)
    with tempfile.TemporaryDirectory() as tmp:
        out, _ = _export(folder, Path(tmp) / "onnx-folder")
        graph = out / "onnx" / "model.onnx"
        runners = _runners(NativeRunner(folder), graph, out, pad)
        ref = runners["ort fp32"].embed(ids)
        cos = {k: _cos(r.embed(ids), ref) for k, r in runners.items() if k != "ort fp32"}
        t = interleaved({k: (lambda r=r: r.embed(ids)) for k, r in runners.items()}, rounds, keep=False)
    tps = {k: len(ids) / v.thread_cpu for k, v in t.items()}
    wall = {k: len(ids) / v.wall for k, v in t.items()}
    lines = [f"## {folder.name} ({cfg.get('model_type')}): native int8 vs onnxruntime on its export, one thread\n",
             f"{len(ids)} corpus texts (mean {np.mean(lengths):.1f} tokens); best of {rounds} interleaved rounds "
             "(texts/s of thread CPU time; wall in brackets)\n",
             "| engine | texts/s | vs ort int8 | min / mean cos vs ort fp32 |", "|---|---:|---:|---|"]
    for k in runners:
        c = cos.get(k)
        acc = f"{c.min():.4f} / {c.mean():.4f}" if c is not None else "(reference)"
        lines.append(f"| {k} | {tps[k]:.1f} ({wall[k]:.1f}) | {tps[k] / tps['ort int8']:.2f}x "
                     f"({wall[k] / wall['ort int8']:.2f}x) | {acc} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--texts", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpoint", metavar="DIR", help="a real checkpoint folder instead of the random ones")
    args = ap.parse_args(argv)
    if args.checkpoint:
        import embedrt

        if not CORPUS.is_file():
            ap.error(f"--checkpoint needs the corpus {CORPUS}")
        print(f"embedrt ISA level {embedrt.cpu_info()['isa']}", flush=True)
        print(run_checkpoint(Path(args.checkpoint), args.texts, args.rounds))
        return 0
    fams = [f for f in args.families.split(",") if f]
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        ap.error(f"unknown families {bad}; choose from {', '.join(FAMILIES)}")
    import embedrt

    print(f"embedrt ISA level {embedrt.cpu_info()['isa']}", flush=True)
    print(run(fams, args.texts, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
