"""The RoBERTa family (model_type "roberta" and "xlm-roberta") on the native engine, from
safetensors checkpoints without an ONNX graph.

The data (tests/data/roberta/) was made by tests/roberta/make_tiny_roberta.py with torch and
transformers (neither is needed here): two tiny random-weight models (hidden 32, 2 layers, 4
heads, intermediate 64, type_vocab_size 1) as sentence-transformers folders (mean pooling,
Normalize), each with a tokenizer.json trained by the ``tokenizers`` package on a small corpus:

- ``tiny-roberta``: a RobertaModel with its pooler, tensors without a prefix, 130 positions
  (128 tokens), a byte-level BPE tokenizer (RobertaProcessing: <s> 0, <pad> 1, </s> 2);
- ``tiny-xlm-roberta``: an XLMRobertaForMaskedLM (tensors under ``roberta.``, lm_head beside
  them), 514 positions (512 tokens), a sentencepiece-style Unigram tokenizer
  (TemplateProcessing <s> $A </s>), no max_seq_length in sentence_bert_config.json.

reference.npz holds transformers' fp32 outputs: ``embeddings``, the normalized mean-pooled
embeddings of ``texts`` (tokenized as embedrt tokenizes them, ``lengths`` tokens each; one of
them holds a literal <pad>, the padding id, and one reaches the length limit), and
``probe_pooled``, the mean-pooled outputs of random id sequences (``probe_ids`` split by
``probe_lengths``, up to the longest the positions allow, a padding id inside the longest).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import copy_tiny_model, edit_config, rewrite_checkpoint, row_cosines, stored_probe
from embedrt.encoder._native_load import NotRecognized

DATA = Path(__file__).resolve().parent / "data" / "roberta"
NAMES = ("tiny-roberta", "tiny-xlm-roberta")
LIMIT = {"tiny-roberta": 128, "tiny-xlm-roberta": 512}  # max_position_embeddings - padding_idx - 1
PREFIX = {"tiny-roberta": "", "tiny-xlm-roberta": "roberta."}
sys.path.insert(0, str(Path(__file__).resolve().parent))


_cos = row_cosines
_probe = stored_probe


def _copy(name: str, tmp_path: Path) -> Path:
    return copy_tiny_model(DATA, name, tmp_path, "tests/roberta/make_tiny_roberta.py")


_edit_config = edit_config


_rewrite_checkpoint = rewrite_checkpoint


# ----------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("name", NAMES)
def test_numpy_reference_is_transformers(tmp_path, name):
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import find_source, reference_forward

    folder = _copy(name, tmp_path)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    assert cfg["family"] == "roberta" and cfg["position"] == "offset" and cfg["padding_idx"] == 1
    assert cfg["type_vocab"] == 1 and params["type"].shape == (1, 32)
    assert not any(k.startswith(("pooler", "lm_head")) for k in params)
    ids, want, _ = _probe(folder)
    assert len(ids[-1]) == LIMIT[name] and ids[-1][5] == 1  # the longest, a padding id inside
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
    assert b.max_position == LIMIT[name]  # the rows up to padding_idx hold no position
    got = b.embed(ids, None, "mean")
    cos = _cos(got, want)
    assert cos.min() >= tol, (precision, cos)
    if precision == "fp32":
        np.testing.assert_allclose(got, want, atol=1e-4)
    # the converted engine is kept and reloads as the same model
    again = NativeBackend.from_model_dir(folder, precision=precision)
    assert again.load_info["cached"] is True
    np.testing.assert_array_equal(again.embed(ids, None, "mean"), got)


@pytest.mark.isa
@pytest.mark.parametrize("name", NAMES)
def test_isa_paths_agree(tmp_path, isa, name):
    from embedrt.encoder.native import NativeBackend

    folder = _copy(name, tmp_path)
    ids, want, _ = _probe(folder)
    for precision, tol in (("fp32", 0.99999), ("int8", 0.99)):
        b = NativeBackend.from_model_dir(folder, precision=precision, cache=False)
        cos = _cos(b.embed(ids, None, "mean"), want)
        assert cos.min() >= tol, (isa, precision, cos)


# ----------------------------------------------------------------------------- the Encoder


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backend", ["auto", "native"])
def test_encoder_runs_the_folder_on_the_native_engine(tmp_path, name, backend):
    import embedrt

    folder = _copy(name, tmp_path)
    assert not (folder / "onnx").exists()
    ref = np.load(folder / "reference.npz")
    texts = list(ref["texts"])
    enc = embedrt.Encoder(folder, backend=backend)
    info = enc.backend_info
    assert info["backend"] == "native" and info["precision"] == "int8" and info["gate"]["passed"] is True
    assert enc.dim == 32 and enc.max_seq_length == LIMIT[name]
    assert [len(x) for x in enc.tokenize(texts)] == ref["lengths"].tolist()
    got = enc.encode(texts)
    cos = _cos(got, ref["embeddings"])
    assert cos.min() >= 0.99 and cos.mean() >= 0.997, (cos.min(), cos.mean())


@pytest.mark.parametrize("name", NAMES)
def test_fp32_encoding_of_texts_matches_transformers(tmp_path, name):
    """The texts as the Encoder tokenizes them (a literal <pad> among them, one at the limit)
    through the fp32 engine: transformers' embeddings within 1e-4."""
    import embedrt
    from embedrt.encoder.native import NativeBackend

    folder = _copy(name, tmp_path)
    ref = np.load(folder / "reference.npz")
    enc = embedrt.Encoder(folder, backend="native")
    ids = enc.tokenize(list(ref["texts"]))
    assert max(len(x) for x in ids) == LIMIT[name]
    assert any(1 in x[1:-1] for x in ids)
    fp32 = NativeBackend.from_model_dir(folder, precision="fp32")
    got = fp32.embed(ids, None, "mean")
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    assert _cos(got, ref["embeddings"]).min() > 0.99999
    np.testing.assert_allclose(got, ref["embeddings"], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_a_text_does_not_depend_on_its_batch_mates(tmp_path, name):
    """Texts of many lengths in one batch (offset positions counted per text) give what each
    gives alone."""
    import embedrt

    folder = _copy(name, tmp_path)
    texts = [str(t) for t in np.load(folder / "reference.npz")["texts"]]
    enc = embedrt.Encoder(folder, backend="native")
    assert len({len(x) for x in enc.tokenize(texts)}) > 10
    together = enc.encode(texts, batch_size=len(texts))
    alone = np.stack([enc.encode([t], batch_size=1)[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    by_text = dict(zip(shuffled, enc.encode(shuffled, batch_size=5)))
    np.testing.assert_allclose(np.stack([by_text[t] for t in texts]), alone, atol=1e-6)


def test_the_longest_text_the_positions_allow(tmp_path):
    """XLM-R's 514 position rows: 512 tokens, the limit without a max_seq_length; one more is
    refused, by the Encoder and by the engine."""
    import embedrt
    from embedrt.encoder.model_dir import read_model_folder

    folder = _copy("tiny-xlm-roberta", tmp_path)
    assert read_model_folder(folder, require_onnx=False).max_position == 512
    enc = embedrt.Encoder(folder, backend="native")
    long = " ".join(["the river runs through the old city"] * 100)
    ids = enc.tokenize([long])[0]
    assert len(ids) == 512 and ids[0] == 0 and ids[-1] == 2
    v = enc.encode(long)
    assert v.shape == (32,) and np.isfinite(v).all()
    with pytest.raises(ValueError, match="512 tokens"):
        embedrt.Encoder(folder, backend="native", max_seq_length=513)
    with pytest.raises(ValueError, match="at most 512"):
        enc.backend.embed([np.concatenate([ids, [5]])], None, "mean")


# ----------------------------------------------------------------------------- tokenizers


@pytest.mark.parametrize("name", NAMES)
def test_special_tokens_are_roberta_s(tmp_path, name):
    """<s> / </s> around every text (the probe's specials too), padding id 1."""
    from embedrt.encoder.native import _special_ids
    from embedrt.encoder.tokenize import TextTokenizer

    folder = _copy(name, tmp_path)
    assert _special_ids(folder) == (0, 2)
    tok = TextTokenizer(folder / "tokenizer.json")
    assert tok.pad_id == 1
    for ids in tok.ids(["hello", "", "a literal <pad> token"]):
        assert ids[0] == 0 and ids[-1] == 2
    assert 1 in tok.ids(["a literal <pad> token"])[0]


def test_special_ids_from_the_post_processor():
    from embedrt.encoder.tokenize import special_ids

    bert = {"post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}}
    assert special_ids(bert) == (101, 102)
    tmpl = {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}
    assert special_ids({"post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel"}, tmpl]}}) == (0, 2)
    # no post-processor: the names in a Unigram vocabulary (a list of [piece, score])
    unigram = {"model": {"type": "Unigram", "vocab": [["<s>", 0.0], ["<pad>", 0.0], ["</s>", 0.0]]}}
    assert special_ids(unigram) == (0, 2)
    assert special_ids({"model": {"vocab": {"a": 0}}}) == (None, None)
    assert special_ids([]) == (None, None)


def test_onnxruntime_feed_pads_with_the_pad_id_and_numbers_offset_positions():
    """A RoBERTa graph run by onnxruntime: padding with the tokenizer's pad id, position_ids as
    HF's create_position_ids makes them (a padding token, and the padding, at padding_idx)."""
    from embedrt.encoder.ort_backend import _feed_of

    types = {"input_ids": np.int64, "attention_mask": np.int64, "position_ids": np.int64}
    ids = [np.array([0, 7, 1, 8, 2]), np.array([0, 9, 2])]
    lengths = np.array([5, 3])
    feed = _feed_of(types, ids, None, lengths, 5, pad_id=1, position_padding_idx=1)
    assert feed["input_ids"].tolist() == [[0, 7, 1, 8, 2], [0, 9, 2, 1, 1]]
    assert feed["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert feed["position_ids"].tolist() == [[2, 3, 1, 4, 5], [2, 3, 4, 1, 1]]
    plain = _feed_of(types, ids, None, lengths, 5)  # BERT: pad 0, positions 0, 1, ...
    assert plain["input_ids"][1].tolist() == [0, 9, 2, 0, 0]
    assert plain["position_ids"][1].tolist() == [0, 1, 2, 3, 4]


def test_folder_length_limit_counts_positions_past_the_padding_index(tmp_path):
    """Whichever runtime runs it, a RoBERTa folder's limit is max_position_embeddings less the
    rows up to the padding index."""
    from embedrt.encoder.arch import offset_padding_idx, position_limit
    from embedrt.encoder.model_dir import ModelFolderError, read_model_folder

    assert position_limit({"model_type": "xlm-roberta"}, 514) == 512
    assert position_limit({"model_type": "roberta", "pad_token_id": 0}, 514) == 513
    assert position_limit({"model_type": "mpnet"}, 514) == 512
    assert position_limit({"model_type": "bert", "pad_token_id": 1}, 512) == 512
    assert offset_padding_idx({"model_type": "funnel"}) is None
    folder = _copy("tiny-roberta", tmp_path)
    assert read_model_folder(folder, require_onnx=False).max_position == 128
    _edit_config(folder, max_position_embeddings=2)
    with pytest.raises(ModelFolderError, match="no position past the padding index"):
        read_model_folder(folder, require_onnx=False)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("name", NAMES)
def test_a_tensor_that_does_not_fit_the_config_is_named(tmp_path, name):
    import embedrt
    from embedrt.encoder.native import NativeBackend

    folder = _copy(name, tmp_path)
    pre = PREFIX[name]
    cfg = json.loads((folder / "config.json").read_text())
    _edit_config(folder, intermediate_size=65)
    with pytest.raises(NotRecognized, match=rf"{pre}encoder\.layer\.0\.intermediate\.dense\.weight has "
                                            r"shape \(64, 32\).*\(65, 32\)"):
        NativeBackend.from_model_dir(folder)
    _edit_config(folder, intermediate_size=cfg["intermediate_size"], type_vocab_size=2)
    with pytest.raises(NotRecognized, match=rf"{pre}embeddings\.token_type_embeddings\.weight has shape "
                                            r"\(1, 32\).*\(2, 32\)"):
        embedrt.Encoder(folder, backend="auto")  # no ONNX graph to fall back to: it says why
    _edit_config(folder, type_vocab_size=1, max_position_embeddings=cfg["max_position_embeddings"] + 1)
    with pytest.raises(NotRecognized, match=rf"{pre}embeddings\.position_embeddings\.weight has shape"):
        NativeBackend.from_model_dir(folder)


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_tensor_is_named(tmp_path, name):
    import embedrt

    folder = _copy(name, tmp_path)
    key = PREFIX[name] + "encoder.layer.1.output.LayerNorm.bias"
    _rewrite_checkpoint(folder, lambda t: t.pop(key))
    for backend in ("auto", "native"):
        with pytest.raises(NotRecognized, match=rf"missing tensor {key.replace('.', '[.]')}"):
            embedrt.Encoder(folder, backend=backend)


def test_more_layers_than_the_config_says_is_refused(tmp_path):
    from embedrt.encoder.native import NativeBackend

    folder = _copy("tiny-roberta", tmp_path)
    _edit_config(folder, num_hidden_layers=1)
    with pytest.raises(NotRecognized, match="more layers than config.json says"):
        NativeBackend.from_model_dir(folder)


def test_a_checkpoint_without_token_types_runs_without_them(tmp_path):
    """The token-type table absent: no row is added. Checked on the same model with its row 0
    folded into every position row, which computes the same."""
    from embedrt.encoder._native_load import params_from_safetensors, read_hf_config
    from embedrt.encoder.native import NativeBackend, find_source

    folder = _copy("tiny-roberta", tmp_path)
    ids, want, _ = _probe(folder)

    def fold(t):
        row = t.pop("embeddings.token_type_embeddings.weight")[0]
        t["embeddings.position_embeddings.weight"] = t["embeddings.position_embeddings.weight"] + row

    _rewrite_checkpoint(folder, fold)
    cfg, params = params_from_safetensors(find_source(folder), read_hf_config(folder))
    assert cfg["type_vocab"] == 0 and "type" not in params
    b = NativeBackend.from_model_dir(folder, precision="fp32")
    assert b.verdict.passed is True
    np.testing.assert_allclose(b.embed(ids, None, "mean"), want, atol=1e-4)
    with pytest.raises(ValueError, match="token types"):
        b.embed([np.array([0, 5, 2])], [np.array([0, 0, 0])])


@pytest.mark.parametrize("change,match", [
    ({"pad_token_id": None}, "pad_token_id is null"),
    ({"pad_token_id": 500}, "pad_token_id 500 is not below vocab_size"),
    ({"pad_token_id": -1}, "'pad_token_id' must be a non-negative integer"),
    ({"is_decoder": True}, "is_decoder is True"),
    ({"add_cross_attention": True}, "add_cross_attention is True"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"hidden_act": "relu"}, "activation 'relu'"),
    ({"type_vocab_size": 0}, "type_vocab_size 0"),
    ({"max_position_embeddings": 2}, "leaves no position past the padding index 1"),
])
def test_configs_the_engine_cannot_run_are_refused(tmp_path, change, match):
    from embedrt.encoder.native import NativeBackend

    folder = _copy("tiny-roberta", tmp_path)
    _edit_config(folder, **change)
    with pytest.raises((NotRecognized, ValueError), match=match):
        NativeBackend.from_model_dir(folder)


def test_bert_decoders_are_refused_too(tmp_path):
    from embedrt.encoder.arch import bert

    with pytest.raises(NotRecognized, match="is_decoder is True"):
        bert.config({"vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 16,
                     "num_hidden_layers": 1, "is_decoder": True}, tmp_path / "config.json")


def test_the_families_are_named(tmp_path):
    import embedrt

    folder = _copy("tiny-roberta", tmp_path)
    _edit_config(folder, model_type="camembert")
    with pytest.raises(NotRecognized, match=r"'camembert'.*bert, mpnet, roberta, xlm-roberta"):
        embedrt.Encoder(folder, backend="auto")
