"""The NomicBert family (model_type "nomic_bert": nomic-embed-text-v1 / v1.5) on the native
engine, from a safetensors checkpoint without an ONNX graph.

The data (tests/data/nomic_bert/tiny-nomic-bert) was made by
tests/nomic_bert/make_tiny_nomic_bert.py with numpy alone: a random-weight model (n_embd 32,
4 heads, 2 layers, n_inner 48 rounded by the published MLP to a width of 256, n_positions 64,
rotary_emb_base 1000, type_vocab_size 2, a vocabulary of 600 padded to 640 rows) under the
published tensor names and config.json spelling, as a sentence-transformers folder (mean
pooling, Normalize, nomic's prompts) with the tiny BERT WordPiece tokenizer.

reference.npz holds the outputs of the generator's own float64 forward pass, written from the
published modeling code (not embedrt's reference): ``embeddings`` / ``query_embeddings``, the
normalized mean-pooled embeddings of ``texts`` without and with the "search_query: " prompt
(``lengths`` tokens each, one at the 64-token limit), and ``probe_hidden``, the last hidden
states of random id sequences (``probe_ids`` split by ``probe_lengths``, up to 64 tokens).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import family_checks
from conftest import copy_tiny_model, edit_config, rewrite_checkpoint, row_cosines, stored_probe_hidden
from embedrt.encoder._native_load import NotRecognized

DATA = Path(__file__).resolve().parent / "data" / "nomic_bert"
NAME = "tiny-nomic-bert"
LIMIT = 64
sys.path.insert(0, str(Path(__file__).resolve().parent))

_cos = row_cosines


def _copy(tmp_path: Path) -> Path:
    return copy_tiny_model(DATA, NAME, tmp_path, "tests/nomic_bert/make_tiny_nomic_bert.py")


_probe = stored_probe_hidden


_edit_config = edit_config


_rewrite_checkpoint = rewrite_checkpoint


def _pool(hidden: np.ndarray, mode: str) -> np.ndarray:
    h = np.asarray(hidden, np.float64)
    L = len(h)
    if mode == "mean":
        return h.mean(0)
    if mode == "cls":
        return h[0]
    if mode == "lasttoken":
        return h[-1]
    if mode == "max":
        return h.max(0)
    if mode == "mean_sqrt_len":
        return h.sum(0) / math.sqrt(L)
    if mode == "weightedmean":
        w = np.arange(1, L + 1, dtype=np.float64)
        return (h * w[:, None]).sum(0) / w.sum()
    raise AssertionError(mode)


# ----------------------------------------------------------------------------- the loader


def test_config_and_params_follow_the_published_code(tmp_path):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source

    folder = _copy(tmp_path)
    assert not (folder / "onnx").exists()
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    assert cfg["family"] == "nomic_bert" and cfg["position"] == "rotary" and cfg["ffn"] == "swiglu"
    assert cfg["rotary_base"] == 1000.0 and cfg["eps"] == 1e-12
    assert cfg["intermediate"] == 256  # n_inner 48 rounded up to a multiple of 256
    assert cfg["vocab"] == 640  # 600 padded to a multiple of pad_vocab_size_multiple 64
    assert cfg["max_position"] == LIMIT and cfg["type_vocab"] == 2
    assert "pos" not in params
    assert not [k for k in params if k.split(".")[-1] in ("q_b", "k_b", "v_b", "ao_b", "up_b", "down_b")]
    assert params["0.gate_w"].shape == (256, 32) and params["1.down_w"].shape == (32, 256)


def test_numpy_reference_is_the_published_forward_pass(tmp_path):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source, reference_forward

    folder = _copy(tmp_path)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    ids, hidden, _ = _probe(folder)
    assert len(ids[-1]) == LIMIT
    for s, want in zip(ids, hidden):
        got = reference_forward(cfg, params, s)
        np.testing.assert_allclose(got, want, atol=2e-5)
        assert _cos(got, want).min() >= 0.999999


def test_rotary_and_swiglu_of_the_reference_by_hand():
    """Numbers small enough to check on paper: a 2-float head at positions 0 and 1 (one angle,
    t * base^0 = t), a 4-float head (angles t and t / 10 at base 100), and SiLU gating."""
    from embedrt.encoder.arch import nomic_bert

    cos, sin = nomic_bert.rotary_tables(1000.0, 2, 2)
    assert cos.shape == (2, 1) and cos[0, 0] == 1 and sin[0, 0] == 0
    assert cos[1, 0] == np.float32(math.cos(1.0)) and sin[1, 0] == np.float32(math.sin(1.0))
    x = np.array([[3.0, 4.0], [3.0, 4.0]])
    got = nomic_bert.rotate(x, cos, sin)
    c, s = float(cos[1, 0]), float(sin[1, 0])
    np.testing.assert_allclose(got, [[3.0, 4.0], [3 * c - 4 * s, 4 * c + 3 * s]], rtol=1e-15)
    assert np.allclose(np.linalg.norm(got, axis=1), 5.0)  # a rotation keeps the length
    cos, sin = nomic_bert.rotary_tables(100.0, 4, 3)
    np.testing.assert_allclose(cos[2], [math.cos(2.0), math.cos(0.2)], rtol=1e-6)
    # the halves pair up (x0 with x2, x1 with x3): rotate_half, not interleaved
    v = nomic_bert.rotate(np.array([[1.0, 0.0, 0.0, 0.0]] * 3), cos, sin)
    np.testing.assert_allclose(v[2], [math.cos(2.0), 0.0, math.sin(2.0), 0.0], rtol=1e-6, atol=1e-7)
    assert nomic_bert.mlp_width(48, 32) == 256 and nomic_bert.mlp_width(3072, 768) == 3072
    assert nomic_bert.mlp_width(None, 768) == 2048  # int(8 * 768 / 3), a multiple of 256


def test_the_reference_tells_the_published_choices_apart(tmp_path):
    """The stored outputs pin which MLP input is gated and that q and k rotate: the same
    weights with fc11 and fc12 swapped, or with no rotation, give other numbers."""
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source, reference_forward

    folder = _copy(tmp_path)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    ids, hidden, _ = _probe(folder)
    swapped = dict(params)
    for i in range(cfg["layers"]):
        swapped[f"{i}.up_w"], swapped[f"{i}.gate_w"] = params[f"{i}.gate_w"], params[f"{i}.up_w"]
    got = np.stack([reference_forward(cfg, swapped, s).mean(0) for s in ids[2:]])
    want = np.stack([h.mean(0) for h in hidden[2:]])
    assert _cos(got, want).min() < 0.99
    still = dict(cfg, rotary_base=1e30)  # every angle ~0 past position 0's: no rotation
    got = np.stack([reference_forward(still, params, s).mean(0) for s in ids[2:]])
    assert _cos(got, want).min() < 0.999


# ----------------------------------------------------------------------------- the engine


@pytest.mark.parametrize("precision,tol", [("fp32", 0.99999), ("int8", 0.99)])
def test_native_matches_the_reference(tmp_path, precision, tol):
    family_checks.native_matches_reference(_copy(tmp_path), precision, tol, LIMIT, 32)


@pytest.mark.parametrize("precision,tol", [("fp32", 0.99999), ("int8", 0.99)])
def test_every_pooling_mode(tmp_path, precision, tol):
    """Every mode against the reference's hidden states. In int8 a mode that reads one token
    (cls, lasttoken) or one token per channel (max) keeps that token's quantization noise,
    which the means average out: 0.98 for those (the 32-wide tiny model measures 0.988 at
    worst), the folder's mean at 0.99."""
    from embedrt.encoder.native import POOLINGS, NativeBackend

    folder = _copy(tmp_path)
    ids, hidden, _ = _probe(folder)
    b = NativeBackend.from_model_dir(folder, precision=precision, cache=False)
    for mode in POOLINGS:
        want = np.stack([_pool(h, mode) for h in hidden])
        got = b.embed(ids, None, mode)
        cos = _cos(got, want)
        bound = 0.98 if precision == "int8" and mode in ("cls", "lasttoken", "max") else tol
        assert cos.min() >= bound, (precision, mode, cos)
    both = b.embed(ids, None, "cls+mean")
    np.testing.assert_allclose(both[:, 32:], b.embed(ids, None, "mean"), atol=1e-6)


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
    with pytest.raises(ValueError, match="outside the vocabulary"):
        b.embed([np.array([2, 640, 3])], None, "mean")


# ----------------------------------------------------------------------------- the Encoder


@pytest.mark.parametrize("backend", ["auto", "native"])
def test_encoder_runs_the_folder_on_the_native_engine(tmp_path, backend):
    family_checks.encoder_runs_the_folder(_copy(tmp_path), backend, 32, LIMIT)


def test_fp32_encoding_of_texts_matches_the_reference(tmp_path):
    family_checks.fp32_encoding_of_texts_matches(_copy(tmp_path), LIMIT)


def test_prompts_come_from_the_folder(tmp_path):
    """nomic's task prefixes (config_sentence_transformers.json): prompt_name adds the text
    before the input, as sentence-transformers does."""
    import embedrt

    folder = _copy(tmp_path)
    ref = np.load(folder / "reference.npz")
    texts = [str(t) for t in ref["texts"]]
    enc = embedrt.Encoder(folder, backend="native")
    assert enc.prompts["search_query"] == "search_query: "
    assert enc.prompts["search_document"] == "search_document: "
    got = enc.encode(texts, prompt_name="search_query")
    cos = _cos(got, ref["query_embeddings"])
    assert cos.min() >= 0.99 and cos.mean() >= 0.997, (cos.min(), cos.mean())
    np.testing.assert_allclose(enc.encode(texts, prompt="search_query: "), got, atol=1e-6)
    assert _cos(got, enc.encode(texts)).min() < 0.999  # the prompt changes the vectors


def test_matryoshka_dims(tmp_path):
    import embedrt

    folder = _copy(tmp_path)
    enc = embedrt.Encoder(folder, backend="native")
    texts = ["hello", "the quick brown fox", "a b c"]
    full = enc.encode(texts, normalize_embeddings=False)
    cut = enc.encode(texts, truncate_dim=16)
    assert cut.shape == (3, 16)
    want = full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True)
    np.testing.assert_allclose(cut, want, atol=1e-6)


def test_a_text_does_not_depend_on_its_batch_mates(tmp_path):
    family_checks.a_text_does_not_depend_on_its_batch_mates(_copy(tmp_path))


def test_truncation_at_the_position_limit(tmp_path):
    """n_positions 64 (read under its GPT2Config name): a long text is cut to 64 tokens, a
    longer max_seq_length is refused."""
    import embedrt
    from embedrt.encoder.model_dir import read_model_folder

    folder = _copy(tmp_path)
    assert read_model_folder(folder, require_onnx=False).max_position == LIMIT
    assert read_model_folder(folder, require_onnx=False).hidden_size == 32
    enc = embedrt.Encoder(folder, backend="native")
    long = " ".join(["the river runs through the old city"] * 40)
    ids = enc.tokenize([long])[0]
    assert len(ids) == LIMIT and ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP]
    assert np.isfinite(enc.encode(long)).all()
    with pytest.raises(ValueError, match="64 tokens"):
        embedrt.Encoder(folder, backend="native", max_seq_length=65)


def test_onnxruntime_runs_the_graph_exported_from_the_checkpoint(tmp_path):
    family_checks.onnxruntime_runs_the_exported_graph(_copy(tmp_path))


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("change,match", [
    ({"prenorm": True}, "prenorm is True"),
    ({"parallel_block": True}, "parallel_block is True"),
    ({"causal": True}, "causal is True"),
    ({"qkv_proj_bias": True}, "qkv_proj_bias is True"),
    ({"mlp_fc1_bias": True}, "mlp_fc1_bias is True"),
    ({"mlp_fc2_bias": True}, "mlp_fc2_bias is True"),
    ({"rotary_emb_interleaved": True}, "rotary_emb_interleaved is True"),
    ({"use_rms_norm": True}, "use_rms_norm is True"),
    ({"rotary_head_dim": True}, "rotary_head_dim is True"),
    ({"activation_function": "gelu"}, "activation_function is 'gelu'"),
    ({"activation_function": "geglu"}, "activation_function is 'geglu'"),
    ({"rotary_emb_fraction": 0.5}, "rotary_emb_fraction is 0.5"),
    ({"rotary_emb_fraction": 0.0}, "rotary_emb_fraction is 0"),
    ({"rotary_emb_scale_base": 512}, "rotary_emb_scale_base is 512"),
    ({"rotary_scaling_factor": 2.0}, "rotary_scaling_factor is 2.0"),
    ({"rotary_emb_base": 1}, "rotary_emb_base 1 must be above 1"),
    ({"num_heads_kv": 2}, "num_heads_kv is 2"),
    ({"num_experts": 8}, "num_experts is 8"),
    ({"n_head": 3}, "n_embd 32 is not a multiple of n_head 3"),
    ({"n_head": 32}, "the head size 1 is odd"),
    ({"n_inner": 300}, r"encoder\.layers\.0\.mlp\.fc11\.weight has shape \(256, 32\).*\(512, 32\)"),
    ({"type_vocab_size": 3}, r"token_type_embeddings\.weight has shape \(2, 32\).*\(3, 32\)"),
    ({"pad_vocab_size_multiple": 1}, r"word_embeddings\.weight has shape \(640, 32\).*\(600, 32\)"),
])
def test_configs_the_engine_cannot_run_are_refused(tmp_path, change, match):
    family_checks.a_config_the_engine_cannot_run_is_refused(_copy(tmp_path), change, match)


def test_a_missing_field_takes_the_published_default_and_is_refused(tmp_path):
    """qkv_proj_bias absent means True in NomicBertConfig: refused, not assumed false."""
    family_checks.a_missing_field_is_refused(_copy(tmp_path), "qkv_proj_bias", r"qkv_proj_bias is True \(the default\)")


def test_a_bias_the_config_does_not_have_is_refused(tmp_path):
    from embedrt.encoder.native import NativeBackend

    folder = _copy(tmp_path)
    _rewrite_checkpoint(folder, lambda t: t.update({"encoder.layers.1.mlp.fc2.bias": np.zeros(32, np.float32)}))
    with pytest.raises(NotRecognized, match=r"encoder\.layers\.1\.mlp\.fc2\.bias: the config says"):
        NativeBackend.from_model_dir(folder)


def test_a_missing_tensor_is_named(tmp_path):
    import embedrt

    folder = _copy(tmp_path)
    _rewrite_checkpoint(folder, lambda t: t.pop("encoder.layers.1.mlp.fc12.weight"))
    for backend in ("auto", "native"):
        with pytest.raises(NotRecognized, match=r"missing tensor encoder[.]layers[.]1[.]mlp[.]fc12[.]weight"):
            embedrt.Encoder(folder, backend=backend)


def test_more_layers_than_the_config_says_is_refused(tmp_path):
    from embedrt.encoder.native import NativeBackend

    folder = _copy(tmp_path)
    _edit_config(folder, n_layer=1)
    with pytest.raises(NotRecognized, match="more layers than config.json says"):
        NativeBackend.from_model_dir(folder)


def test_a_checkpoint_under_a_prefix_loads(tmp_path):
    """NomicBertForPreTraining keeps the base model under ``bert.``."""
    family_checks.a_checkpoint_under_a_prefix_loads(_copy(tmp_path), "bert.")


def test_the_numpy_probe_stops_at_its_longest(tmp_path, monkeypatch):
    """A checkpoint's probe runs in float64 numpy: its longest sequence is capped
    (NUMPY_PROBE_LONGEST; 8192-token folders would need gigabytes of scores)."""
    from embedrt.encoder import native

    folder = _copy(tmp_path)
    b = native.NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    assert b.verdict.probe_tokens == 1 + 3 + 6 + 13 + LIMIT  # the longest is the limit
    monkeypatch.setattr(native, "NUMPY_PROBE_LONGEST", 20)
    b = native.NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    assert b.verdict.passed is True and b.verdict.probe_tokens == 1 + 3 + 6 + 13 + 20 + LIMIT
