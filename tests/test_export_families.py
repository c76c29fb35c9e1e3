"""ONNX export of every encoder family (MPNet, RoBERTa / XLM-RoBERTa, NomicBert, ModernBERT,
JinaBert), without PyTorch, checked on the tiny random-weight checkpoints of tests/data/<family>/ against
their stored transformers outputs (reference.npz) and the family's numpy reference; and the
checkpoint-only folder on onnxruntime (its graph exported into the cache).

Bounds: the graph run by onnxruntime in fp32 against the stored float32 outputs of
transformers (or the float64 numpy reference): a cosine of at least 0.99999 per text and an
absolute difference of at most 1e-4 per value (the embeddings are normalized, the hidden
states of order 1); against the native engine in fp32, 1e-5 per value of the normalized
embeddings.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import embedrt
from conftest import copy_tiny_model, edit_config, rewrite_checkpoint, row_cosines, stored_probe
from embedrt.encoder.export import ExportError

DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))

FAMILIES = {  # folder -> (data subfolder, the script that makes it, token_type_ids input)
    "tiny-mpnet": ("mpnet", "tests/mpnet/make_tiny_mpnet.py", False),
    "tiny-mpnet-sharded": ("mpnet", "tests/mpnet/make_tiny_mpnet.py", False),
    "tiny-roberta": ("roberta", "tests/roberta/make_tiny_roberta.py", False),
    "tiny-xlm-roberta": ("roberta", "tests/roberta/make_tiny_roberta.py", False),
    "tiny-nomic-bert": ("nomic_bert", "tests/nomic_bert/make_tiny_nomic_bert.py", True),
    "tiny-modernbert": ("modernbert", "tests/modernbert/make_tiny_modernbert.py", False),
    "tiny-jina-bert": ("jina_bert", "tests/jina_bert/make_tiny_jina_bert.py", True),
}
NAMES = list(FAMILIES)
COS = 0.99999
ATOL = 1e-4


def _copy(name: str, tmp_path: Path) -> Path:
    sub, maker, _ = FAMILIES[name]
    return copy_tiny_model(DATA / sub, name, tmp_path / "src", maker)


def _export(name: str, tmp_path: Path, **kw) -> tuple:
    src = _copy(name, tmp_path)
    return src, embedrt.export(src, tmp_path / "out", **kw)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_padded(sess, seqs, pad_id: int) -> np.ndarray:
    """last_hidden_state of one padded batch [n, width, hidden]."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, np.int64)
    mask = np.zeros_like(ids)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = s, 1
    feed = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in sess.get_inputs()):
        feed["token_type_ids"] = np.zeros_like(ids)
    return sess.run(None, feed)[0]


def _pad_id(folder: Path) -> int:
    from embedrt.encoder.arch import offset_padding_idx

    pad = offset_padding_idx(json.loads((folder / "config.json").read_text()))
    return 0 if pad is None else pad


# ----------------------------------------------------------------------------- the graphs


@pytest.mark.parametrize("name", NAMES)
def test_exported_graph_matches_transformers_and_the_numpy_reference(tmp_path, name):
    import onnx

    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source, reference_forward

    src, out = _export(name, tmp_path)
    path = out / "onnx" / "model.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    want_inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if FAMILIES[name][2] else [])
    assert [i.name for i in model.graph.input] == want_inputs
    assert [o.name for o in model.graph.output] == ["last_hidden_state"]
    assert model.opset_import[0].version == 17
    for i in model.graph.input:  # dynamic batch and sequence
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert not list(out.glob("*.safetensors*")) and not (out / "embedrt").exists()
    assert (out / "tokenizer.json").is_file() and (out / "1_Pooling" / "config.json").is_file()

    ids, pooled, ref = stored_probe(src)
    sess = _session(path)
    hidden = _run_padded(sess, ids, _pad_id(src))  # every probe sequence in one padded batch
    got = np.stack([hidden[r, :len(s)].mean(0) for r, s in enumerate(ids)])
    assert row_cosines(got, pooled).min() >= COS
    np.testing.assert_allclose(got, pooled, atol=ATOL)
    if "probe_hidden" in ref.files:  # per token, where the stored reference has them
        want = np.split(ref["probe_hidden"], np.cumsum(ref["probe_lengths"])[:-1])
        for r, w in enumerate(want):
            np.testing.assert_allclose(hidden[r, :len(w)], w, atol=ATOL)
            assert row_cosines(hidden[r, :len(w)], w).min() >= COS
    cfg, params = params_from_safetensors(find_source(src), read_hf_config(src))
    for r, s in enumerate(ids[:4]):
        np.testing.assert_allclose(hidden[r, :len(s)], reference_forward(cfg, params, s), atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_encoder_on_the_export_matches_transformers_and_the_native_engine(tmp_path, name):
    from embedrt.encoder.native import NativeBackend

    src, out = _export(name, tmp_path)
    ref = np.load(src / "reference.npz")
    texts = [str(t) for t in ref["texts"]]
    enc = embedrt.Encoder(out, backend="onnxruntime")
    assert enc.backend_info["backend"] == "onnxruntime"
    got = enc.encode(texts)
    assert [len(x) for x in enc.tokenize(texts)] == ref["lengths"].tolist()
    assert row_cosines(got, ref["embeddings"]).min() >= COS
    np.testing.assert_allclose(got, ref["embeddings"], atol=ATOL)
    # the native engine in fp32 on the checkpoint: what Encoder(src, backend="native") runs
    native = NativeBackend.from_model_dir(src, precision="fp32", cache=False)
    nat = native.embed(enc.tokenize(texts), None, "mean")
    nat = nat / np.linalg.norm(nat, axis=1, keepdims=True)
    np.testing.assert_allclose(got, nat, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_a_text_does_not_depend_on_its_batch_mates(tmp_path, name):
    src, out = _export(name, tmp_path)
    texts = [str(t) for t in np.load(src / "reference.npz")["texts"]]
    enc = embedrt.Encoder(out, backend="onnxruntime")
    lengths = {len(x) for x in enc.tokenize(texts)}
    assert len(lengths) > 3  # texts of many lengths share a padded batch
    together = enc.encode(texts, batch_size=len(texts))
    alone = np.stack([enc.encode([t], batch_size=1)[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-mpnet", "tiny-roberta", "tiny-nomic-bert", "tiny-modernbert",
                                  "tiny-jina-bert"])
def test_the_gate_runs_on_the_exported_folder(tmp_path, name, auto_native):
    """auto on the exported folder (no checkpoint): the native engine when it reads and proves
    the graph, else onnxruntime; either way the texts' embeddings."""
    src, out = _export(name, tmp_path)
    ref = np.load(src / "reference.npz")
    enc = embedrt.Encoder(out, backend="auto")
    info = enc.backend_info
    assert info["reason"]
    if info["backend"] == "native":
        assert info["gate"]["passed"] is True
    else:
        assert info["backend"] == "onnxruntime"
    cos = row_cosines(enc.encode([str(t) for t in ref["texts"]]), ref["embeddings"])
    assert cos.min() >= (0.99 if info["backend"] == "native" else COS)


def test_int8_export_runs(tmp_path):
    src, out = _export("tiny-modernbert", tmp_path, quantize="int8")
    ref = np.load(src / "reference.npz")
    enc = embedrt.Encoder(out, backend="onnxruntime", onnx_file="model_qint8.onnx")
    cos = row_cosines(enc.encode([str(t) for t in ref["texts"]]), ref["embeddings"])
    assert cos.min() >= 0.99


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name,change,match", [
    ("tiny-nomic-bert", {"prenorm": True}, "prenorm is True"),
    ("tiny-nomic-bert", {"qkv_proj_bias": True}, "qkv_proj_bias is True"),
    ("tiny-nomic-bert", {"rotary_emb_fraction": 0.5}, "rotary_emb_fraction is 0.5"),
    ("tiny-modernbert", {"attention_bias": True}, "attention_bias is True"),
    ("tiny-modernbert", {"hidden_activation": "silu"}, "hidden_activation 'silu'"),
    ("tiny-modernbert", {"layer_types": ["full_attention"] * 4}, "layer_types"),
    ("tiny-mpnet", {"relative_attention_num_buckets": 7}, "relative_attention_num_buckets"),
    ("tiny-mpnet", {"hidden_act": "relu"}, "activation 'relu'"),
    ("tiny-roberta", {"pad_token_id": None}, "pad_token_id is null"),
    ("tiny-roberta", {"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ("tiny-roberta", {"model_type": "t5"}, "model_type 't5'"),
    ("tiny-roberta", {"hidden_size": 0}, "hidden_size"),
])
def test_refusals_name_the_field(tmp_path, name, change, match):
    src = _copy(name, tmp_path)
    edit_config(src, **change)
    with pytest.raises(ExportError, match=match):
        embedrt.export(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_tensor_that_does_not_fit_is_named(tmp_path):
    src = _copy("tiny-modernbert", tmp_path)
    rewrite_checkpoint(src, lambda t: t.update({"layers.1.mlp.Wi.weight": np.zeros((3, 32), np.float32)}))
    with pytest.raises(ExportError, match=r"layers\.1\.mlp\.Wi\.weight has shape \(3, 32\)"):
        embedrt.export(src, tmp_path / "out")
    rewrite_checkpoint(src, lambda t: t.pop("layers.1.mlp.Wi.weight"))
    with pytest.raises(ExportError, match=r"missing tensor layers\.1\.mlp\.Wi\.weight"):
        embedrt.export(src, tmp_path / "out")


# ----------------------------------------------------------------------------- checkpoint folders on onnxruntime


@pytest.mark.parametrize("name", ["tiny-mpnet-sharded", "tiny-xlm-roberta", "tiny-nomic-bert", "tiny-modernbert",
                                  "tiny-jina-bert"])
def test_onnxruntime_runs_a_checkpoint_folder_from_its_cached_export(tmp_path, name, monkeypatch):
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy(name, tmp_path)
    ref = np.load(src / "reference.npz")
    texts = [str(t) for t in ref["texts"]]
    enc = embedrt.Encoder(src, backend="onnxruntime")
    graph = Path(enc.backend_info["source"])
    assert enc.backend_info["backend"] == "onnxruntime"
    assert graph.parent.parent == tmp_path / "cache" / "graphs" and graph.name == "model.onnx"
    assert not (src / "onnx").exists()  # the folder is left as it was
    got = enc.encode(texts)
    assert row_cosines(got, ref["embeddings"]).min() >= COS
    stamp = graph.stat().st_mtime_ns
    again = embedrt.Encoder(src, backend="onnxruntime")  # the kept graph, not exported again
    assert Path(again.backend_info["source"]) == graph and graph.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.encode(texts), got)


def test_a_changed_checkpoint_is_exported_again(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy("tiny-roberta", tmp_path)
    first = embedrt.Encoder(src, backend="onnxruntime")
    a = first.encode("hello world")
    rewrite_checkpoint(src, lambda t: t.update({"embeddings.LayerNorm.bias": t["embeddings.LayerNorm.bias"] + 0.5}))
    second = embedrt.Encoder(src, backend="onnxruntime")
    assert second.backend_info["source"] != first.backend_info["source"]
    assert row_cosines(a[None], second.encode("hello world")[None])[0] < 0.9999


def test_onnxruntime_on_a_checkpoint_that_cannot_be_exported_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy("tiny-nomic-bert", tmp_path)
    edit_config(src, prenorm=True)
    with pytest.raises(ExportError, match=r"backend='onnxruntime' needs an ONNX graph.*cannot be exported.*prenorm"):
        embedrt.Encoder(src, backend="onnxruntime")
    (src / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.onnx"):
        embedrt.Encoder(src, backend="onnxruntime")


def test_auto_falls_back_to_the_export_when_the_gate_rejects_the_engine(tmp_path, monkeypatch, auto_native):
    from embedrt.encoder import gate

    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    real = gate.check

    def failing(*args, **kwargs):
        v = real(*args, **kwargs)
        v.passed, v.reason = False, "made to fail by the test"
        return v

    monkeypatch.setattr(gate, "check", failing)
    src = _copy("tiny-modernbert", tmp_path)
    ref = np.load(src / "reference.npz")
    enc = embedrt.Encoder(src, backend="auto")
    info = enc.backend_info
    assert info["backend"] == "onnxruntime" and info["gate"]["passed"] is False
    assert "made to fail" in info["reason"] and "exported from the checkpoint" in info["reason"]
    assert Path(info["source"]).parent.parent == tmp_path / "cache" / "graphs"
    cos = row_cosines(enc.encode([str(t) for t in ref["texts"]]), ref["embeddings"])
    assert cos.min() >= COS
    with pytest.raises(embedrt.NotRecognized, match="made to fail"):
        embedrt.Encoder(src, backend="native")


def test_auto_falls_back_to_the_export_when_the_engine_refuses_a_field(tmp_path, monkeypatch, auto_native):
    """A BERT with the tanh GELU (hidden_act gelu_new): the native engine refuses the field, the
    exporter writes it."""
    from test_export import TINY, make_tiny_checkpoint, numpy_bert, tiny_tensors

    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = make_tiny_checkpoint(tmp_path / "ckpt", act="gelu_new")
    enc = embedrt.Encoder(src, backend="auto")
    info = enc.backend_info
    assert info["backend"] == "onnxruntime" and "gelu_new" in info["reason"]
    ids = enc.tokenize(["w1 w2 w3"])[0]
    want = numpy_bert(tiny_tensors(), TINY, ids[None], np.ones((1, len(ids))), act="gelu_new")[0].mean(0)
    got = enc.encode("w1 w2 w3")
    np.testing.assert_allclose(got, want / np.linalg.norm(want), atol=1e-5)
    with pytest.raises(embedrt.NotRecognized, match="gelu_new"):
        embedrt.Encoder(src, backend="native")


def test_auto_without_an_exportable_checkpoint_still_names_the_families(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    src = _copy("tiny-nomic-bert", tmp_path)
    edit_config(src, prenorm=True)
    with pytest.raises(embedrt.NotRecognized, match="has no ONNX graph.*prenorm.*the families"):
        embedrt.Encoder(src, backend="auto")


def test_the_cli_exports_a_family(tmp_path):
    from embedrt.cli import main

    src = _copy("tiny-xlm-roberta", tmp_path)
    assert main(["export", str(src), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "onnx" / "model.onnx").is_file()


def test_a_graph_that_does_not_compute_the_reference_is_refused(tmp_path):
    from embedrt.encoder.export import check_graph, checkpoint_graph

    src = _copy("tiny-mpnet", tmp_path)
    model, cfg, params, _ = checkpoint_graph(src)
    assert check_graph(model, cfg, params) <= 1e-5
    other = dict(params, rel_bias=params["rel_bias"][::-1].copy())  # the buckets misread
    with pytest.raises(ExportError, match="deviates from the numpy reference"):
        check_graph(model, cfg, other)
