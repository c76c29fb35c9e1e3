"""The JinaBert family (jina-embeddings-v2: model_type "bert" with ALiBi and a GeGLU MLP) on the
native engine, from a safetensors checkpoint without an ONNX graph.

The data (tests/data/jina_bert/tiny-jina-bert) was made by
tests/jina_bert/make_tiny_jina_bert.py with numpy alone: a random-weight model (hidden 48,
6 heads, 2 layers, intermediate 40, 64 positions, type_vocab_size 2) under the published
tensor names and config.json spelling, as a sentence-transformers folder (mean pooling,
Normalize) with the tiny BERT WordPiece tokenizer.

reference.npz holds the outputs of the generator's own float64 forward pass, written from the
published modeling code (not embedrt's reference): ``embeddings``, the normalized mean-pooled
embeddings of ``texts`` (``lengths`` tokens each, one at the 64-token limit), and
``probe_hidden``, the last hidden states of random id sequences (``probe_ids`` split by
``probe_lengths``, up to 64 tokens).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import family_checks
from conftest import copy_tiny_model, edit_config, rewrite_checkpoint, row_cosines, stored_probe_hidden
from embedrt.encoder._native_load import NotRecognized

DATA = Path(__file__).resolve().parent / "data" / "jina_bert"
NAME = "tiny-jina-bert"
LIMIT = 64
H = 48

_cos = row_cosines
_probe = stored_probe_hidden


def _copy(tmp_path: Path) -> Path:
    return copy_tiny_model(DATA, NAME, tmp_path, "tests/jina_bert/make_tiny_jina_bert.py")


def _loaded(folder):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source

    return params_from_safetensors(find_source(folder), read_hf_config(folder))


# ----------------------------------------------------------------------------- the loader


def test_config_and_params_follow_the_published_code(tmp_path):
    folder = _copy(tmp_path)
    assert not (folder / "onnx").exists()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"
    cfg, params = _loaded(folder)
    assert cfg["family"] == "jina_bert" and cfg["position"] == "none" and cfg["ffn"] == "geglu"
    assert cfg["attention_bias"] == "relative" and cfg["max_position"] == LIMIT
    assert "pos" not in params and "0.up_b" not in params
    assert params["0.up_w"].shape == (40, H) and params["0.gate_w"].shape == (40, H)
    assert params["1.down_w"].shape == (H, 40) and params["1.down_b"].shape == (H,)
    assert params["type"].shape == (2, H)


def test_numpy_reference_is_the_published_forward_pass(tmp_path):
    from embedrt.encoder.native import reference_forward

    folder = _copy(tmp_path)
    cfg, params = _loaded(folder)
    ids, hidden, _ = _probe(folder)
    assert len(ids[-1]) == LIMIT
    for s, want in zip(ids, hidden):
        got = reference_forward(cfg, params, s)
        np.testing.assert_allclose(got, want, atol=2e-5)
        assert _cos(got, want).min() >= 0.999999


def test_alibi_of_the_reference_by_hand():
    """The slopes and the table on paper: 8 heads take 2^-1 ... 2^-8; 6 heads (not a power of
    two) take those of 4 heads (2^-2, 2^-4, 2^-6, 2^-8), then every other one of 8 heads'
    (2^-1, 2^-3); the bias is -slope * |j - i|, the same either side."""
    from embedrt.encoder.arch import jina_bert

    assert jina_bert.alibi_slopes(8) == [2.0 ** -k for k in range(1, 9)]
    assert jina_bert.alibi_slopes(4) == [0.25, 0.0625, 0.015625, 0.00390625]
    assert jina_bert.alibi_slopes(6) == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]
    assert len(jina_bert.alibi_slopes(12)) == 12 and jina_bert.alibi_slopes(12)[8] == 2.0 ** -0.5
    table = jina_bert.relative_bias_table({"heads": 6}, {}, 3)   # distances -2 .. 2
    assert table.shape == (6, 5) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0], [-0.5, -0.25, 0.0, -0.25, -0.5])
    np.testing.assert_array_equal(table[4], [-1.0, -0.5, 0.0, -0.5, -1.0])
    # two tokens with q = k = 0: query 0 weighs itself and its neighbour by 1 : e^-slope
    s = np.array([0.0, -0.5])
    w = np.exp(s) / np.exp(s).sum()
    assert abs(w[0] - 1 / (1 + math.exp(-0.5))) < 1e-15


def test_the_reference_tells_the_published_choices_apart(tmp_path):
    """The stored outputs pin which half of gated_layers goes through GELU and that the
    scores carry ALiBi: the same weights with the halves swapped, or with no bias, give other
    numbers."""
    from embedrt.encoder.arch import jina_bert
    from embedrt.encoder.native import reference_forward

    folder = _copy(tmp_path)
    cfg, params = _loaded(folder)
    ids, hidden, _ = _probe(folder)
    want = np.stack([h.mean(0) for h in hidden[2:]])
    swapped = dict(params)
    for i in range(cfg["layers"]):
        swapped[f"{i}.up_w"], swapped[f"{i}.gate_w"] = params[f"{i}.gate_w"], params[f"{i}.up_w"]
    got = np.stack([reference_forward(cfg, swapped, s).mean(0) for s in ids[2:]])
    assert _cos(got, want).min() < 0.99
    flat = dict(cfg, attention_bias="none")  # no ALiBi: the order of the tokens is lost
    got = np.stack([reference_forward(flat, params, s).mean(0) for s in ids[2:]])
    assert _cos(got, want).min() < 0.999
    assert jina_bert.relative_bias_table(cfg, params, 4)[0, 0] == np.float32(-3 * 0.25)


# ----------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("precision,tol", [("fp32", 0.99999), ("int8", 0.99)])
def test_native_matches_the_reference(tmp_path, precision, tol):
    family_checks.native_matches_reference(_copy(tmp_path), precision, tol, LIMIT, H)


def test_token_types_are_row_zero_unless_given(tmp_path):
    family_checks.token_types_are_row_zero_unless_given(_copy(tmp_path))


@pytest.mark.isa
def test_isa_paths_agree(tmp_path, isa):
    family_checks.isa_paths_agree(_copy(tmp_path), isa)


def test_the_engine_refuses_more_tokens_than_the_positions(tmp_path):
    from embedrt.encoder.native import NativeBackend

    folder = _copy(tmp_path)
    b = NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    with pytest.raises(ValueError, match="at most 64"):
        b.embed([np.full(65, 5, np.int64)], None, "mean")


def test_engine_arrays_without_the_table_they_need_are_refused():
    """The C++ engine's own checks: no position table for position 'none', and the ALiBi
    table at its shape."""
    from embedrt import _core

    rng = np.random.default_rng(0)
    h, heads, inter, vocab, P = 8, 2, 6, 10, 5
    arrays = {"word_embeddings": rng.standard_normal((vocab, h)).astype(np.float32),
              "token_type_embeddings": rng.standard_normal((1, h)).astype(np.float32),
              "embeddings_ln_g": np.ones(h, np.float32), "embeddings_ln_b": np.zeros(h, np.float32)}
    kw = dict(position="none", padding_idx=0, attention_bias="relative", ffn="geglu")
    with pytest.raises(ValueError, match="relative_attention_bias"):
        _core.NativeEncoder(vocab, h, heads, inter, 0, P, 1, 1e-12, arrays, **kw)
    arrays["relative_attention_bias"] = np.zeros((heads, 2 * P - 1), np.float32)
    enc = _core.NativeEncoder(vocab, h, heads, inter, 0, P, 1, 1e-12, arrays, **kw)
    assert enc is not None
    with pytest.raises(ValueError, match="position_embeddings given"):
        _core.NativeEncoder(vocab, h, heads, inter, 0, P, 1, 1e-12,
                            dict(arrays, position_embeddings=np.zeros((P, h), np.float32)), **kw)
    with pytest.raises(ValueError, match="too many positions"):
        _core.NativeEncoder(vocab, h, heads, inter, 0, 1 << 25, 1, 1e-12, arrays, **kw)


# ----------------------------------------------------------------------------- the Encoder


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_encoder_runs_the_folder_on_the_native_engine(tmp_path, backend):
    family_checks.encoder_runs_the_folder(_copy(tmp_path), backend, H, LIMIT)


def test_fp32_encoding_of_texts_matches_the_reference(tmp_path):
    family_checks.fp32_encoding_of_texts_matches(_copy(tmp_path), LIMIT)


def test_a_text_does_not_depend_on_its_batch_mates(tmp_path):
    family_checks.a_text_does_not_depend_on_its_batch_mates(_copy(tmp_path))


def test_onnxruntime_runs_the_graph_exported_from_the_checkpoint(tmp_path):
    family_checks.onnxruntime_runs_the_exported_graph(_copy(tmp_path))


def test_export_writes_a_graph_for_sequences_past_the_probe(tmp_path):
    """embedrt export of the folder: the graph's ALiBi covers every length up to the limit."""
    import onnxruntime as ort

    from embedrt.encoder.export import export
    from embedrt.encoder.native import reference_forward

    folder = _copy(tmp_path)
    out = export(folder, tmp_path / "exported")
    sess = ort.InferenceSession(str(out / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    cfg, params = _loaded(folder)
    names = {i.name for i in sess.get_inputs()}
    for n in (3, 33, LIMIT):
        ids = np.random.default_rng(n).integers(5, 600, size=n)
        feed = {"input_ids": ids[None], "attention_mask": np.ones((1, n), np.int64)}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros((1, n), np.int64)
        got = sess.run(None, feed)[0][0]
        np.testing.assert_allclose(got, reference_forward(cfg, params, ids), atol=1e-4)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("change,match", [
    ({"feed_forward_type": "reglu"}, "feed_forward_type is 'reglu'"),
    ({"feed_forward_type": "original"}, "feed_forward_type is 'original'"),
    ({"is_decoder": True}, "is_decoder is True"),
    ({"max_position_embeddings": 1 << 20}, r"max_position_embeddings 1048576 is outside"),
    ({"num_attention_heads": 5}, "not a positive multiple of num_attention_heads 5"),
    ({"intermediate_size": 41}, r"gated_layers\.weight has shape \(80, 48\).*\(82, 48\)"),
])
def test_configs_the_engine_cannot_run_are_refused(tmp_path, change, match):
    family_checks.a_config_the_engine_cannot_run_is_refused(_copy(tmp_path), change, match)


def test_a_missing_feed_forward_type_is_the_published_default_and_refused(tmp_path):
    """JinaBertConfig's default feed_forward_type is 'original' (a BERT MLP, other tensors)."""
    family_checks.a_missing_field_is_refused(_copy(tmp_path), "feed_forward_type", "feed_forward_type is 'original'")


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.pop("encoder.layer.1.mlp.gated_layers.weight"),
     r"missing tensor encoder[.]layer[.]1[.]mlp[.]gated_layers[.]weight"),
    (lambda t: t.update({"encoder.layer.0.attention.self.layer_norm_q.weight": np.ones(H, np.float32)}),
     "layer_norm_q.weight: a LayerNorm of q or k"),
    (lambda t: t.update({"embeddings.position_embeddings.weight": np.zeros((LIMIT, H), np.float32)}),
     "a position table, but the config asks for ALiBi"),
    (lambda t: t.update({"encoder.layer.0.mlp.gated_layers.bias": np.zeros(80, np.float32)}),
     "gated_layers has no bias"),
    (lambda t: t.update({"encoder.layer.2.mlp.wo.bias": np.zeros(H, np.float32)}),
     "more layers than config.json says"),
])
def test_tensors_that_do_not_fit_are_named(tmp_path, edit, match):
    import embedrt

    folder = _copy(tmp_path)
    rewrite_checkpoint(folder, edit)
    for backend in ("auto", "native"):
        with pytest.raises(NotRecognized, match=match):
            embedrt.Encoder(folder, backend=backend)


def test_a_checkpoint_under_a_prefix_loads(tmp_path):
    """JinaBertForMaskedLM keeps the base model under ``bert.``."""
    family_checks.a_checkpoint_under_a_prefix_loads(_copy(tmp_path), "bert.")


def test_a_plain_bert_config_is_still_bert(tmp_path):
    """Only position_embedding_type 'alibi' makes a BERT config a JinaBert; other position
    types stay refused by the BERT loader."""
    from embedrt.encoder import arch

    assert arch.family("bert", tmp_path, {"model_type": "bert"}) is arch.bert
    assert arch.family(None, tmp_path, {"position_embedding_type": "alibi"}) is arch.jina_bert
    folder = _copy(tmp_path)
    edit_config(folder, position_embedding_type="relative_key")
    from embedrt.encoder.native import NativeBackend
    with pytest.raises(NotRecognized, match="position_embedding_type 'relative_key' is not supported"):
        NativeBackend.from_model_dir(folder)
