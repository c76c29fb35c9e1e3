"""ModernBERT (model_type "modernbert") on the native engine, from a safetensors checkpoint
without an ONNX graph.

The data (tests/data/modernbert/tiny-modernbert) was made by
tests/modernbert/make_tiny_modernbert.py with torch and transformers (neither is needed here): a
random-weight ModernBertModel (hidden 32, 4 heads, 4 layers - 0 and 3 global, 1 and 2 local
with keys within 4 tokens (local_attention 8) -, intermediate 48, 128 positions, rope theta
160000 / 10000, pre-LayerNorm without biases, GeGLU) as a sentence-transformers folder (mean
pooling, Normalize) with the tiny BERT WordPiece tokenizer.

reference.npz holds transformers' fp32 outputs: ``embeddings``, the normalized mean-pooled
embeddings of ``texts`` (``lengths`` tokens each, one at the 128-token limit), and
``probe_hidden``, the last hidden states of random id sequences (``probe_ids`` split by
``probe_lengths``, up to 128 tokens).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import family_checks
from conftest import copy_tiny_model, edit_config, row_cosines, stored_probe_hidden

DATA = Path(__file__).resolve().parent / "data" / "modernbert"
NAME = "tiny-modernbert"
LIMIT = 128
sys.path.insert(0, str(Path(__file__).resolve().parent))

_cos = row_cosines


def _copy(tmp_path: Path) -> Path:
    return copy_tiny_model(DATA, NAME, tmp_path, "tests/modernbert/make_tiny_modernbert.py")


_probe = stored_probe_hidden


_edit_config = edit_config


def _params(folder: Path):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source

    return params_from_safetensors(find_source(folder), read_hf_config(folder))


def test_config_and_params(tmp_path):
    folder = _copy(tmp_path)
    cfg, params = _params(folder)
    assert cfg["family"] == "modernbert" and cfg["norm"] == "pre" and cfg["ffn"] == "geglu"
    assert cfg["position"] == "rotary" and cfg["rotary_base"] == 160000.0 and cfg["rotary_base_local"] == 10000.0
    assert cfg["local_window"] == 4 and cfg["global_every"] == 3 and cfg["type_vocab"] == 0
    assert "0.ln1_g" not in params and "1.ln1_g" in params  # layer 0's attn_norm is the identity
    assert params["0.up_w"].shape == params["0.gate_w"].shape == (48, 32)
    assert (params["emb_b"] == 0).all() and "final_g" in params


def test_numpy_reference_is_transformers(tmp_path):
    from embedrt.encoder.native import reference_forward

    folder = _copy(tmp_path)
    cfg, params = _params(folder)
    ids, hidden, _ = _probe(folder)
    assert len(ids[-1]) == LIMIT
    for s, want in zip(ids, hidden):
        got = reference_forward(cfg, params, s)
        np.testing.assert_allclose(got, want, atol=2e-4)
        assert _cos(got, want).min() >= 0.999999


@pytest.mark.parametrize("change", [{"local_window": 5}, {"local_window": 0},
                                    {"rotary_base_local": 160000.0}, {"global_every": 2}])
def test_the_reference_tells_the_window_and_the_thetas_apart(tmp_path, change):
    from embedrt.encoder.native import reference_forward

    folder = _copy(tmp_path)
    cfg, params = _params(folder)
    ids, hidden, _ = _probe(folder)
    other = dict(cfg, **change)
    got = np.stack([reference_forward(other, params, s).mean(0) for s in ids[-3:]])
    want = np.stack([h.mean(0) for h in hidden[-3:]])
    assert _cos(got, want).min() < 0.9999


@pytest.mark.parametrize("precision,tol", [("fp32", 0.99999), ("int8", 0.99)])
def test_native_matches_transformers(tmp_path, precision, tol):
    family_checks.native_matches_reference(_copy(tmp_path), precision, tol, LIMIT, 32)


@pytest.mark.parametrize("mode", ["cls", "max", "lasttoken", "weightedmean"])
def test_other_pooling_modes_fp32(tmp_path, mode):
    from embedrt.encoder.native import NativeBackend
    from embedrt.encoder.pooling import pool

    folder = _copy(tmp_path)
    ids, hidden, _ = _probe(folder)
    b = NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    want = np.stack([pool(h[None], np.array([len(h)]), mode)[0] for h in hidden])
    assert _cos(b.embed(ids, None, mode), want).min() >= 0.99999


@pytest.mark.isa
def test_isa_paths_agree(tmp_path, isa):
    family_checks.isa_paths_agree(_copy(tmp_path), isa)


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_encoder_runs_the_folder_on_the_native_engine(tmp_path, backend):
    family_checks.encoder_runs_the_folder(_copy(tmp_path), backend, 32, LIMIT)


def test_fp32_encoding_of_texts_matches_transformers(tmp_path):
    family_checks.fp32_encoding_of_texts_matches(_copy(tmp_path), LIMIT)


def test_a_text_does_not_depend_on_its_batch_mates(tmp_path):
    family_checks.a_text_does_not_depend_on_its_batch_mates(_copy(tmp_path), lengths=9)


def test_the_position_limit(tmp_path):
    import embedrt

    folder = _copy(tmp_path)
    enc = embedrt.Encoder(folder, backend="native")
    assert len(enc.tokenize([" ".join(["the old city"] * 100)])[0]) == LIMIT
    with pytest.raises(ValueError, match="at most 128"):
        enc.backend.embed([np.full(129, 5, np.int64)], None, "mean")
    on_ort = embedrt.Encoder(folder, backend="onnxruntime")  # the graph exported from the checkpoint
    assert on_ort.max_seq_length == LIMIT


@pytest.mark.parametrize("change,match", [
    ({"attention_bias": True}, "attention_bias is True"),
    ({"mlp_bias": True}, "mlp_bias is True"),
    ({"norm_bias": True}, "norm_bias is True"),
    ({"hidden_activation": "gelu_pytorch_tanh"}, "hidden_activation 'gelu_pytorch_tanh'"),
    ({"rope_parameters": {"full_attention": {"rope_theta": 160000.0, "rope_type": "yarn"}}},
     "rope_type is 'yarn'"),
    ({"layer_types": ["full_attention"] * 4}, "layer_types"),
    ({"global_attn_every_n_layers": 2}, "layer_types .* global_attn_every_n_layers 2"),
    ({"num_attention_heads": 3}, "does not split into 3 heads"),
    ({"intermediate_size": 40}, r"layers\.0\.mlp\.Wi\.weight has shape \(96, 32\).*\(80, 32\)"),
])
def test_configs_the_engine_cannot_run_are_refused(tmp_path, change, match):
    family_checks.a_config_the_engine_cannot_run_is_refused(_copy(tmp_path), change, match)


def test_the_older_config_spelling_reads_alike(tmp_path):
    """Configs saved before layer_types / rope_parameters (global_rope_theta, local_rope_theta,
    global_attn_every_n_layers) give the same spec."""
    from embedrt.encoder._native_load import read_hf_config

    folder = _copy(tmp_path)
    new = read_hf_config(folder)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["layer_types"], cfg["rope_parameters"]
    cfg.update(global_rope_theta=160000.0, local_rope_theta=10000.0)
    (folder / "config.json").write_text(json.dumps(cfg))
    assert read_hf_config(folder) == new
    _edit_config(folder, local_rope_theta=500.0)
    assert read_hf_config(folder)["rotary_base_local"] == 500.0
