"""The MPNet family on the native engine, from safetensors checkpoints without an ONNX graph.

Tiny random-weight checkpoints (tests/data/mpnet/, made by tests/mpnet/make_tiny_mpnet.py with
transformers' MPNet) and their PyTorch reference outputs; the real all-mpnet-base-v2 against
sentence-transformers' embeddings is in test_mpnet_real.py.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_tiny_model, row_cosines, stored_probe
from embedrt.encoder._native_load import NotRecognized

DATA = Path(__file__).resolve().parent / "data" / "mpnet"
NAMES = ("tiny-mpnet", "tiny-mpnet-sharded")


_cos = row_cosines
_probe = stored_probe


def _copy(name: str, tmp_path: Path) -> Path:
    return copy_tiny_model(DATA, name, tmp_path, "tests/mpnet/make_tiny_mpnet.py")


def test_relative_position_bucket_is_hf():
    from embedrt.encoder.arch.mpnet import relative_position_bucket

    r = [-300, -128, -127, -64, -63, -33, -32, -16, -15, -8, -7, -1, 0, 1, 7, 8, 15, 16, 31, 32,
         63, 64, 127, 128, 300]
    want = [15, 15, 15, 14, 13, 12, 12, 10, 9, 8, 7, 1, 0, 17, 23, 24, 25, 26, 27, 28, 29, 30, 31,
            31, 31]  # transformers' MPNetEncoder.relative_position_bucket
    assert relative_position_bucket(np.array(r)).tolist() == want


@pytest.mark.parametrize("name", NAMES)
def test_numpy_reference_is_transformers(tmp_path, name):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source, reference_forward

    folder = _copy(name, tmp_path)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    assert cfg["family"] == "mpnet" and "type" not in params
    ids, want, _ = _probe(folder)
    got = np.stack([reference_forward(cfg, params, s).mean(0) for s in ids])
    assert _cos(got, want).min() >= 0.999999
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("precision,tol", [("fp32", 0.99999), ("int8", 0.99)])
def test_native_matches_transformers(tmp_path, name, precision, tol):
    from embedrt.encoder.native import NativeBackend

    folder = _copy(name, tmp_path)
    ids, want, _ = _probe(folder)
    b = NativeBackend.from_model_dir(folder, precision=precision)
    assert b.verdict.passed is True
    assert b.max_position == 200  # 202 rows, the first two below the positions
    cos = _cos(b.embed(ids, None, "mean"), want)
    assert cos.min() >= tol, (precision, cos)
    # the converted engine is kept and reloads as the same model
    again = NativeBackend.from_model_dir(folder, precision=precision)
    assert again.load_info["cached"] is True
    np.testing.assert_array_equal(again.embed(ids, None, "mean"), b.embed(ids, None, "mean"))


@pytest.mark.isa
def test_isa_paths_agree(tmp_path, isa):
    from embedrt.encoder.native import NativeBackend

    folder = _copy("tiny-mpnet", tmp_path)
    ids, want, _ = _probe(folder)
    for precision, tol in (("fp32", 0.99999), ("int8", 0.99)):
        b = NativeBackend.from_model_dir(folder, precision=precision, cache=False)
        cos = _cos(b.embed(ids, None, "mean"), want)
        assert cos.min() >= tol, (isa, precision, cos)


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_encoder_runs_a_folder_without_onnx(tmp_path, backend):
    import embedrt

    folder = _copy("tiny-mpnet-sharded", tmp_path)
    assert not (folder / "onnx").exists()
    ref = np.load(folder / "reference.npz")
    enc = embedrt.Encoder(folder, backend=backend)
    info = enc.backend_info
    assert info["backend"] == "native" and info["gate"]["passed"] is True
    got = enc.encode(list(ref["texts"]))
    cos = _cos(got, ref["embeddings"])
    assert cos.min() >= 0.99 and cos.mean() >= 0.997, cos.min()
    assert [len(x) for x in enc.tokenize(list(ref["texts"]))] == ref["lengths"].tolist()


def test_unknown_model_type_without_onnx_names_the_families(tmp_path):
    import embedrt

    folder = _copy("tiny-mpnet", tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, model_type="funnel")))
    for backend in ("auto", "native"):
        with pytest.raises(NotRecognized, match=r"'funnel'.*bert, mpnet"):
            embedrt.Encoder(folder, backend=backend)


def test_unknown_model_type_with_onnx_runs_onnxruntime(tmp_path, auto_native):
    """(auto_native: at a level where auto prefers onnxruntime anyway, the reason would be the
    level, not the model_type.)"""
    import embedrt

    src = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"
    if not (src / "onnx" / "model.onnx").is_file():
        pytest.skip("the export corpus is not present")
    folder = tmp_path / "m"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model_*.onnx", "*.data"))
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, model_type="funnel")))
    enc = embedrt.Encoder(folder, backend="auto")
    assert enc.backend_info["backend"] == "onnxruntime"
    assert "funnel" in enc.backend_info["reason"]
    with pytest.raises(NotRecognized, match="bert, mpnet"):
        embedrt.Encoder(folder, backend="native")


def test_a_tensor_that_does_not_fit_the_config_is_named(tmp_path):
    from embedrt.encoder.native import NativeBackend

    folder = _copy("tiny-mpnet", tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(cfg, intermediate_size=65)))
    with pytest.raises(NotRecognized, match=r"encoder\.layer\.0\.intermediate\.dense\.weight has shape "
                                            r"\(64, 32\).*\(65, 32\)"):
        NativeBackend.from_model_dir(folder)
    (folder / "config.json").write_text(json.dumps(dict(cfg, num_attention_heads=8)))
    with pytest.raises(NotRecognized, match=r"relative_attention_bias\.weight has shape \(32, 4\)"):
        NativeBackend.from_model_dir(folder)


def test_a_missing_shard_is_named(tmp_path):
    import embedrt

    folder = _copy("tiny-mpnet-sharded", tmp_path)
    (folder / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(NotRecognized, match="model-00002-of-00003.safetensors is missing"):
        embedrt.Encoder(folder, backend="auto")


def test_engine_arrays_are_checked(tmp_path):
    """The binding refuses a relative bias table of the wrong size, naming it."""
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import NativeBackend, find_source, prepare_arrays

    folder = _copy("tiny-mpnet", tmp_path)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    arrays = prepare_arrays(cfg, params, "fp32")
    assert arrays["relative_attention_bias"].shape == (4, 2 * 200 - 1)
    bad = dict(arrays, relative_attention_bias=arrays["relative_attention_bias"][:, 1:])
    with pytest.raises(ValueError, match="relative_attention_bias must have shape"):
        NativeBackend.from_arrays(cfg, bad, "fp32")
    with pytest.raises(ValueError, match="token types"):
        NativeBackend.from_arrays(cfg, arrays, "fp32").embed([np.array([5, 6])], [np.array([0, 0])])
