"""sentence-transformers Dense modules after pooling: each layer against sentence-transformers'
own outputs (tests/data/dense, made by tests/dense/make_dense_modules.py), the pipeline inside
Encoder on both backends, and the folders embedrt refuses."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import embedrt
from conftest import edit_config, rewrite_checkpoint
from embedrt.encoder.model_dir import ModelFolderError, read_dense

DATA = Path(__file__).resolve().parent / "data"
DENSE = DATA / "dense"
TINY = DATA / "export_corpus" / "tiny-bert"
LAYERS = ("2_Dense", "3_Dense", "4_Dense")
TEXTS = ["a short text", "the cat sat on the mat and looked at the dog", "x", "embeddings on the CPU " * 6]


def dense_folder(dst: Path) -> Path:
    """tiny-bert with modules.json's pipeline Transformer, Pooling, three Dense, Normalize."""
    shutil.copytree(TINY, dst)
    for name in LAYERS:
        shutil.copytree(DENSE / name, dst / name)
    shutil.copy(DENSE / "modules.json", dst / "modules.json")
    return dst


def test_layers_match_sentence_transformers():
    ref = np.load(DENSE / "reference.npz")
    x = ref["x"]
    for name in LAYERS:
        x = read_dense(DENSE / name)(x)
    assert x.dtype == np.float32 and x.shape == ref["y"].shape
    np.testing.assert_allclose(x, ref["y"], rtol=1e-5, atol=2e-6)
    layers = [read_dense(DENSE / n) for n in LAYERS]
    assert [(d.in_features, d.out_features, d.activation, d.bias is not None) for d in layers] == \
        [(32, 24, "tanh", True), (24, 16, "identity", False), (16, 16, "gelu", True)]
    assert layers[2].use_residual and layers[2].residual is None


@pytest.mark.parametrize("backend", ["onnxruntime", "native"])
def test_encoder_runs_the_pipeline(tmp_path, backend, monkeypatch):
    # a cache of its own: what other tests converted or refused for the same tiny graph does
    # not decide here
    monkeypatch.setenv("EMBEDRT_CACHE_DIR", str(tmp_path / "cache"))
    plain = embedrt.Encoder(shutil.copytree(TINY, tmp_path / "plain"), backend=backend, threads=1)
    model = embedrt.Encoder(dense_folder(tmp_path / "dense"), backend=backend, threads=1)
    assert model.dim == model.get_sentence_embedding_dimension() == 16 and plain.dim == 32
    assert model.normalize
    pooled = plain.encode(TEXTS, normalize_embeddings=False)
    want = pooled
    for name in LAYERS:
        want = read_dense(DENSE / name)(want)
    got = model.encode(TEXTS, normalize_embeddings=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    unit = model.encode(TEXTS)
    np.testing.assert_allclose(unit, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    cut = model.encode(TEXTS, truncate_dim=8)
    assert cut.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(model.encode_tokens(model.tokenize(TEXTS)), unit, rtol=1e-6, atol=1e-7)
    assert model.encode([]).shape == (0, 16)
    assert model.encode(TEXTS[1]).shape == (16,)
    # a text's row does not depend on its batch mates
    np.testing.assert_allclose(model.encode(TEXTS[1:2])[0], unit[1], rtol=1e-6, atol=1e-7)


def test_normalize_between_dense_modules(tmp_path):
    folder = dense_folder(tmp_path / "m")
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 9, "name": "9", "path": "9_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    model = embedrt.Encoder(folder, backend="onnxruntime", threads=1)
    plain = embedrt.Encoder(TINY, backend="onnxruntime", threads=1)
    x = plain.encode(TEXTS)  # tiny-bert's own pipeline ends with Normalize: unit pooled rows
    for name in LAYERS:
        x = read_dense(DENSE / name)(x)
    np.testing.assert_allclose(model.encode(TEXTS, normalize_embeddings=False), x, rtol=1e-5, atol=1e-6)


def _edit_config(folder: Path, name: str, **changes):
    edit_config(folder / name, **changes)


@pytest.mark.parametrize("change, words", [
    ({"activation_function": "my_package.Swish"}, "activation_function"),
    ({"in_features": 31}, "config.json says \\[24, 31\\]"),
    ({"out_features": "24"}, "out_features"),
    ({"bias": "yes"}, "'bias'"),
    ({"bias": False}, "linear.bias"),
    ({"module_input_name": "token_embeddings"}, "module_input_name"),
])
def test_refused_configs(tmp_path, change, words):
    folder = dense_folder(tmp_path / "m")
    _edit_config(folder, "2_Dense", **change)
    with pytest.raises(ModelFolderError, match=words):
        embedrt.Encoder(folder, backend="onnxruntime", threads=1)


def test_refused_weights_and_order(tmp_path):
    folder = dense_folder(tmp_path / "pickle")
    (folder / "2_Dense" / "model.safetensors").rename(folder / "2_Dense" / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="pickle"):
        embedrt.Encoder(folder, backend="onnxruntime", threads=1)

    folder = dense_folder(tmp_path / "chain")  # 2_Dense (32 -> 24) straight into 4_Dense (16 -> 16)
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if m["path"] != "3_Dense"]))
    with pytest.raises(ModelFolderError, match="in_features 16 differs from the width 24"):
        embedrt.Encoder(folder, backend="onnxruntime", threads=1)

    folder = dense_folder(tmp_path / "order")
    modules = json.loads((folder / "modules.json").read_text())
    modules[1], modules[2] = modules[2], modules[1]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelFolderError, match="before any Pooling"):
        embedrt.Encoder(folder, backend="onnxruntime", threads=1)

    folder = dense_folder(tmp_path / "nan")

    def poison(tensors):
        tensors["linear.weight"][0, 0] = np.nan
    rewrite_checkpoint(folder / "2_Dense", poison)
    with pytest.raises(ModelFolderError, match="NaN"):
        embedrt.Encoder(folder, backend="onnxruntime", threads=1)
