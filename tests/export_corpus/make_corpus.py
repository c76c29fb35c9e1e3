"""Regenerates the ONNX export corpus under tests/data/export_corpus/.

A tiny BERT with random (deterministic) weights is written as a sentence-transformers model
folder, then exported in many ONNX styles (legacy and dynamo exporters, several opsets, with and
without token_type_ids, pooling inside the graph, onnxruntime's fused graphs, float16, external
data, dynamic and static int8 quantization, ...). Reference embeddings are computed in PyTorch
(fp32) for a fixed list of texts, tokenized exactly as embedrt tokenizes them.

This script needs torch and transformers, which are neither runtime nor test dependencies; it is
run by hand::

    python tests/export_corpus/make_corpus.py

and rewrites everything it owns (deterministically). The tests (tests/test_export_corpus.py) only
read the committed output with numpy, onnxruntime and embedrt.
"""
from __future__ import annotations

import argparse
import json
import shutil
import string
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "export_corpus"

SEED = 1234
VOCAB = 600
HIDDEN = 32
LAYERS = 2
HEADS = 4
INTERMEDIATE = 64
MAX_POS = 64
MAX_SEQ = 64

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# whole words of the vocabulary; the rest is single characters, '##' pieces and filler pieces
WORDS = """
the of and to in is was for on that with as by at it from be this are or an which his not but
have has had were they their one all can more been also new first time only other some would
after two into when than who its about there may so most where such over people these years
world state city many through between during under before while both then up out them because
we you he she her him my me our us your what how why very same each well back any each much
even still own long just make made like use used like work part life good great small large high
old young day night year way word home house water food book music film game team group school
university family name area country government system number history war power music art light
dark red blue green white black cat dog bird fish tree river mountain sea sky sun moon star
rain snow wind fire earth stone road car train ship plane door window table chair bed room
hello goodbye yes no please thank thanks sorry quick brown fox jumps lazy over again never always
often sometimes today tomorrow yesterday morning evening question answer search find read write
speak listen open close start stop run walk sit stand see look watch hear feel think know learn
teach give take bring send keep hold turn show play sing dance swim fly drive build break fix
""".split()


def _vocab() -> list:
    toks = list(SPECIALS)
    seen = set(toks)

    def add(t):
        if t not in seen and len(toks) < VOCAB:
            seen.add(t)
            toks.append(t)

    for c in string.punctuation:
        add(c)
    for c in string.ascii_lowercase + string.digits:
        add(c)
    for c in string.ascii_lowercase + string.digits:
        add("##" + c)
    for suffix in ("s", "es", "ed", "ing", "er", "est", "ly", "tion", "ness", "ment", "able", "al"):
        add("##" + suffix)
    for w in WORDS:
        add(w)
    # fill up with two-letter pieces, deterministic order
    for a in string.ascii_lowercase:
        for b in string.ascii_lowercase:
            add("##" + a + b)
    assert len(toks) == VOCAB, len(toks)
    return toks


TEXTS = [
    "",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "!!! ??? ...",
    "a",
    "Search for the answer to the question",
    "dog dog dog dog dog dog dog dog dog dog",
    "Zyxwvut qqqq jjjj",                                   # word pieces only
    "日本語のテキスト 🙂 and an emoji",                        # unknown characters
    "UPPER CASE WORDS ARE LOWERED",
    "numbers 1 2 3 42 and 2024",
    "tabs\tand\nnewlines   and   spaces",
    "café naïve résumé",                                    # accents are stripped
    "one, two; three: four - five (six) [seven] {eight}",
    " ".join(["the river runs through the old city"] * 12),   # truncated at 64 tokens
    "walking talking singing dancing",
    "a b c d e f g h i j k l m n o p",
    "the",
    "[CLS] [SEP] [MASK] literal markers",
    "Thank you very much for the book, see you tomorrow morning!",
    " ".join(["x"] * 62),                                   # exactly 64 tokens with [CLS] [SEP]
    " ".join(["y"] * 63),                                   # 65 tokens: cut by one
    "?",
    "green trees and blue sky over the mountain sea",
]


# ---------------------------------------------------------------------------------------------
# model and folder

def build_model(hidden_act: str = "gelu", seed: int = SEED):
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                        num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                        max_position_embeddings=MAX_POS, type_vocab_size=2, hidden_act=hidden_act,
                        layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    # Random weights everywhere, none of them trivial: a loader that drops a bias, a LayerNorm
    # affine or the token-type row gives visibly different embeddings.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "LayerNorm.bias" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.6 * torch.randn(p.shape, generator=g))
            elif "token_type_embeddings" in name:
                p.copy_(1.0 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.8 * torch.randn(p.shape, generator=g))
            else:  # [out, in] matrices
                p.copy_(torch.randn(p.shape, generator=g) * (1.3 / p.shape[1] ** 0.5))
    model.eval()
    return model


def build_tokenizer(vocab: list):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##")
    from tokenizers import AddedToken

    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    assert tok.get_vocab_size() == VOCAB
    return tok


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_folder(folder: Path, model, tok, vocab: list) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "onnx").mkdir(parents=True)
    cfg = model.config.to_dict()
    keep = ["architectures", "attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob",
            "hidden_size", "initializer_range", "intermediate_size", "layer_norm_eps",
            "max_position_embeddings", "model_type", "num_attention_heads", "num_hidden_layers",
            "pad_token_id", "position_embedding_type", "type_vocab_size", "vocab_size"]
    cfg = {k: cfg[k] for k in keep if k in cfg}
    cfg["architectures"] = ["BertModel"]
    cfg["position_embedding_type"] = "absolute"
    _dump(folder / "config.json", dict(sorted(cfg.items())))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    specials = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                "cls_token": "[CLS]", "mask_token": "[MASK]"}
    _dump(folder / "special_tokens_map.json", specials)
    _dump(folder / "tokenizer_config.json", {"do_lower_case": True, **specials,
                                             "tokenize_chinese_chars": True, "strip_accents": None,
                                             "do_basic_tokenize": True, "never_split": None,
                                             "tokenizer_class": "BertTokenizer",
                                             "model_max_length": MAX_SEQ})
    _dump(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _dump(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    _dump(folder / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ, "do_lower_case": False})
    _dump(folder / "config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": "3.0.0"}, "prompts": {},
        "default_prompt_name": None, "similarity_fn_name": "cosine"})


def tokenize(tok_path: Path, texts) -> list:
    """Token ids as embedrt makes them: no padding, truncation at MAX_SEQ with the specials."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ)
    return [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(list(texts), add_special_tokens=True)]


def reference(model, ids: list) -> np.ndarray:
    """Mean-pooled, L2-normalized fp32 embeddings, one text at a time (no padding)."""
    import torch

    out = []
    with torch.no_grad():
        for x in ids:
            t = torch.from_numpy(x)[None]
            h = model(input_ids=t, attention_mask=torch.ones_like(t),
                      token_type_ids=torch.zeros_like(t)).last_hidden_state[0].double()
            v = h.mean(0)
            out.append((v / v.norm()).float().numpy())
    return np.stack(out)


# ---------------------------------------------------------------------------------------------
# exports

def _wrappers():
    import torch

    class NoTypes(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class WithTypes(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    class WithPositions(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, position_ids=position_ids).last_hidden_state

    class Pooled(torch.nn.Module):
        """sentence-transformers' ONNX export: pooling and normalization inside the graph."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            tok = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tok.dtype)
            summed = (tok * mask).sum(1)
            counts = mask.sum(1).clamp(min=1e-9)
            pooled = summed / counts
            return tok, torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    class Int32Inputs(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids.long(), attention_mask=attention_mask.long()).last_hidden_state

    return NoTypes, WithTypes, WithPositions, Pooled, Int32Inputs


def _dummy(batch=2, seq=7, dtype=None):
    import torch

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, VOCAB, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[1, seq - 2:] = 0
    types = torch.zeros(batch, seq, dtype=torch.int64)
    if dtype is not None:
        ids, mask = ids.to(dtype), mask.to(dtype)
    return ids, mask, types


def legacy_export(module, path: Path, args, inputs, outputs, opset, folding=True):
    import torch

    axes = {n: {0: "batch", 1: "sequence"} for n in inputs}
    for o in outputs:
        axes[o] = {0: "batch", 1: "sequence"} if o != "sentence_embedding" else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=folding,
                          dynamo=False)
    _canonical(path)


def dynamo_export(module, path: Path, args, inputs, outputs, opset=18):
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    seq = torch.export.Dim("sequence", min=1, max=MAX_POS)
    shapes = {n: {0: batch, 1: seq} for n in inputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(module, args, input_names=inputs, output_names=outputs,
                                 dynamic_shapes=shapes, opset_version=opset, dynamo=True,
                                 optimize=True, verbose=False)
    prog.save(str(path))
    _canonical(path)


def _canonical(path: Path) -> None:
    """Drops producer version strings so that files do not change with the torch version alone."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    m.producer_version = ""
    m.doc_string = ""
    m.graph.doc_string = ""
    del m.metadata_props[:]

    def strip(graph):
        for n in graph.node:
            n.doc_string = ""
            del n.metadata_props[:]  # the dynamo exporter records source stack traces
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    strip(a.g)
        for v in list(graph.value_info) + list(graph.input) + list(graph.output):
            v.doc_string = ""
            del v.metadata_props[:]
        del graph.metadata_props[:]

    strip(m.graph)
    onnx.save_model(m, str(path))


def op_counts(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    counts = {}
    for n in m.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}:{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class _Calib:
    """A few random id batches for quantize_static."""

    def __init__(self, input_names):
        rng = np.random.default_rng(SEED)
        self.batches = []
        for n, s in ((4, 12), (3, 30), (2, 64), (8, 5)):
            ids = rng.integers(5, VOCAB, size=(n, s)).astype(np.int64)
            ids[:, 0] = 2
            mask = np.ones((n, s), dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask,
                    "token_type_ids": np.zeros((n, s), dtype=np.int64)}
            self.batches.append({k: v for k, v in feed.items() if k in input_names})
        self.it = iter(self.batches)

    def get_next(self):
        return next(self.it, None)

    def rewind(self):
        self.it = iter(self.batches)


def export_styles(model, folder: Path, log) -> list:
    """Writes every style into folder/onnx; returns the manifest entries."""
    import onnx
    import torch

    NoTypes, WithTypes, WithPositions, Pooled, Int32Inputs = _wrappers()
    onnx_dir = folder / "onnx"
    ids, mask, types = _dummy()
    three = ["input_ids", "attention_mask", "token_type_ids"]
    two = ["input_ids", "attention_mask"]
    styles = []

    def add(name, description, **extra):
        entry = {"file": f"onnx/{name}.onnx", "description": description, "int8": False}
        entry.update(extra)
        styles.append(entry)
        log(f"  {name}: {op_counts(onnx_dir / (name + '.onnx'))}")

    legacy_export(WithTypes(model), onnx_dir / "legacy_opset14.onnx", (ids, mask, types), three,
                  ["last_hidden_state"], 14)
    add("legacy_opset14", "torch.onnx.export (legacy), opset 14: LayerNorm decomposed into "
        "ReduceMean/Sub/Pow/Sqrt/Div; inputs ids, mask, token types")
    legacy_export(WithTypes(model), onnx_dir / "legacy_opset17.onnx", (ids, mask, types), three,
                  ["last_hidden_state"], 17)
    add("legacy_opset17", "torch.onnx.export (legacy), opset 17: LayerNormalization op; "
        "inputs ids, mask, token types")
    eager = build_model()  # the same weights with the eager attention implementation
    try:
        eager.set_attn_implementation("eager")
    except Exception:  # older transformers
        eager.config._attn_implementation = "eager"
    eager.load_state_dict(model.state_dict())
    eager.eval()
    # scaled_dot_product_attention needs opset 14: opset 12 exports the eager attention
    legacy_export(WithTypes(eager), onnx_dir / "legacy_opset12.onnx", (ids, mask, types), three,
                  ["last_hidden_state"], 12)
    add("legacy_opset12", "torch.onnx.export (legacy), opset 12, eager attention: decomposed "
        "LayerNorm, ReduceMean/Unsqueeze with axes as attributes")
    legacy_export(WithTypes(model), onnx_dir / "legacy_no_folding.onnx", (ids, mask, types), three,
                  ["last_hidden_state"], 17, folding=False)
    add("legacy_no_folding", "torch.onnx.export (legacy), opset 17, do_constant_folding=False: "
        "weights reach MatMul through Transpose nodes")
    legacy_export(NoTypes(model), onnx_dir / "no_token_types.onnx", (ids, mask), two,
                  ["last_hidden_state"], 17)
    add("no_token_types", "opset 17, inputs ids and mask only: the token-type table is gathered "
        "with a constant zero index inside the graph")
    legacy_export(WithPositions(model), onnx_dir / "position_ids.onnx",
                  (ids, mask, types, torch.arange(ids.shape[1])[None].expand_as(ids).contiguous()),
                  three + ["position_ids"], ["last_hidden_state"], 17)
    add("position_ids", "opset 17 with a position_ids input (fed 0..n-1)")
    legacy_export(Int32Inputs(model), onnx_dir / "int32_inputs.onnx", _dummy(dtype=torch.int32)[:2],
                  two, ["last_hidden_state"], 17)
    add("int32_inputs", "opset 17, int32 input_ids and attention_mask cast to int64 in the graph")

    legacy_export(WithTypes(eager), onnx_dir / "eager_attention.onnx", (ids, mask, types), three,
                  ["last_hidden_state"], 14)
    add("eager_attention", "opset 14 export of the eager attention implementation "
        "(MatMul/Div/Add/Softmax/MatMul, as older transformers exported)")

    pooled_ok = False
    try:
        dynamo_export(Pooled(model), onnx_dir / "pooled_opset18.onnx", (ids, mask), two,
                      ["token_embeddings", "sentence_embedding"], 18)
        pooled_how = "torch.onnx.export(dynamo=True)"
        pooled_ok = True
    except Exception as e:  # noqa: BLE001
        log(f"  dynamo export failed ({type(e).__name__}: {str(e)[:200]}); legacy exporter at opset 18")
        legacy_export(Pooled(model), onnx_dir / "pooled_opset18.onnx", (ids, mask), two,
                      ["token_embeddings", "sentence_embedding"], 18)
        pooled_how = "torch.onnx.export (legacy)"
    add("pooled_opset18", f"{pooled_how}, opset 18, inputs ids and mask, mean pooling and L2 "
        "normalization inside the graph; outputs token_embeddings and sentence_embedding")
    if pooled_ok:
        try:
            dynamo_export(WithTypes(model), onnx_dir / "dynamo_opset18.onnx", (ids, mask, types),
                          three, ["last_hidden_state"], 18)
            add("dynamo_opset18", "torch.onnx.export(dynamo=True), opset 18, inputs ids, mask, "
                "token types, output last_hidden_state")
        except Exception as e:  # noqa: BLE001
            log(f"  dynamo_opset18 skipped ({type(e).__name__})")

    # onnxruntime's transformer optimizer: fused Attention / SkipLayerNormalization / ...
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimize_model(str(onnx_dir / "legacy_opset17.onnx"), model_type="bert",
                             num_heads=HEADS, hidden_size=HIDDEN, opt_level=0)
    opt.save_model_to_file(str(onnx_dir / "ort_optimized.onnx"))
    _canonical(onnx_dir / "ort_optimized.onnx")
    fused = {k: v for k, v in op_counts(onnx_dir / "ort_optimized.onnx").items() if k.startswith("com.microsoft")}
    fused_names = ", ".join(f"{k.split(':')[1]} x{v}" for k, v in fused.items()) or "nothing"
    add("ort_optimized", "onnxruntime.transformers.optimizer.optimize_model(model_type='bert') of "
        f"legacy_opset17: fused {fused_names}", fused_ops=fused)

    # the eager-attention export is the pattern the optimizer fuses completely
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = optimize_model(str(onnx_dir / "eager_attention.onnx"), model_type="bert",
                             num_heads=HEADS, hidden_size=HIDDEN, opt_level=0)
    opt.save_model_to_file(str(onnx_dir / "ort_optimized_fused.onnx"))
    _canonical(onnx_dir / "ort_optimized_fused.onnx")
    fused = {k: v for k, v in op_counts(onnx_dir / "ort_optimized_fused.onnx").items() if k.startswith("com.microsoft")}
    fused_names = ", ".join(f"{k.split(':')[1]} x{v}" for k, v in fused.items()) or "nothing"
    add("ort_optimized_fused", "onnxruntime.transformers.optimizer.optimize_model(model_type='bert') "
        f"of eager_attention: fused {fused_names}", fused_ops=fused)

    # onnxruntime's own graph optimizations, saved offline (what an optimized_model_filepath gives)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(onnx_dir / "ort_session_extended.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(onnx_dir / "legacy_opset14.onnx"), so, providers=["CPUExecutionProvider"])
    _canonical(onnx_dir / "ort_session_extended.onnx")
    add("ort_session_extended", "legacy_opset14 as onnxruntime saves it after its extended "
        "graph optimizations (SessionOptions.optimized_model_filepath)")

    # float16 weights, float32 inputs/outputs
    from onnxruntime.transformers.float16 import convert_float_to_float16

    m = onnx.load(str(onnx_dir / "legacy_opset17.onnx"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m16 = convert_float_to_float16(m, keep_io_types=True)
    onnx.save_model(m16, str(onnx_dir / "float16.onnx"))
    add("float16", "legacy_opset17 with float16 weights and arithmetic, float32 output "
        "(convert_float_to_float16, keep_io_types=True)", float16=True)

    # external data
    m = onnx.load(str(onnx_dir / "legacy_opset17.onnx"))
    onnx.save_model(m, str(onnx_dir / "external_data.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external_data.onnx.data", size_threshold=0)
    add("external_data", "legacy_opset17 with every tensor in external_data.onnx.data",
        data_files=["onnx/external_data.onnx.data"])

    # int8
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(onnx_dir / "legacy_opset17.onnx"), str(onnx_dir / "dynamic_int8.onnx"),
                         weight_type=QuantType.QInt8)
    _canonical(onnx_dir / "dynamic_int8.onnx")
    add("dynamic_int8", "quantize_dynamic (QInt8 weights, DynamicQuantizeLinear + MatMulInteger) "
        "of legacy_opset17", int8=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(onnx_dir / "legacy_opset14.onnx"), str(onnx_dir / "dynamic_int8_opset14.onnx"),
                         weight_type=QuantType.QInt8)
    _canonical(onnx_dir / "dynamic_int8_opset14.onnx")
    add("dynamic_int8_opset14", "quantize_dynamic (QInt8) of legacy_opset14 (decomposed LayerNorm)",
        int8=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(onnx_dir / "legacy_opset17.onnx"), str(onnx_dir / "qdq_int8.onnx"),
                        _Calib(three), quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=False,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["MatMul"])
    _canonical(onnx_dir / "qdq_int8.onnx")
    add("qdq_int8", "quantize_static, QuantFormat.QDQ, MatMul only (QuantizeLinear/DequantizeLinear "
        "around activations and weights), MinMax calibration on random ids", int8=True)
    return styles


# ---------------------------------------------------------------------------------------------
# checks

def ort_embed(path: Path, ids: list) -> np.ndarray:
    """Runs a graph on onnxruntime directly, one text at a time; mean-pools and normalizes."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    types = {i.name: (np.int32 if i.type == "tensor(int32)" else np.int64) for i in sess.get_inputs()}
    outs = [o.name for o in sess.get_outputs()]
    pooled = "sentence_embedding" in outs
    out_name = "sentence_embedding" if pooled else outs[0]
    res = []
    for x in ids:
        n = len(x)
        feed = {}
        for name, dt in types.items():
            if name == "input_ids":
                feed[name] = x[None].astype(dt)
            elif name == "attention_mask":
                feed[name] = np.ones((1, n), dt)
            elif name == "token_type_ids":
                feed[name] = np.zeros((1, n), dt)
            elif name == "position_ids":
                feed[name] = np.arange(n, dtype=dt)[None]
        y = sess.run([out_name], feed)[0].astype(np.float64)
        v = y[0] if pooled else y[0].mean(0)
        res.append(v / np.linalg.norm(v))
    return np.stack(res).astype(np.float32)


def compare(a: np.ndarray, b: np.ndarray) -> tuple:
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.abs(a - b).max()), float(cos.min())


def make_model_folder(name: str, hidden_act: str, full: bool, log) -> list:
    import torch

    torch.set_num_threads(1)
    folder = OUT / name
    model = build_model(hidden_act)
    vocab = _vocab()
    tok = build_tokenizer(vocab)
    write_folder(folder, model, tok, vocab)
    ids = tokenize(folder / "tokenizer.json", TEXTS)
    assert max(len(x) for x in ids) == MAX_SEQ
    ref = reference(model, ids)
    np.savez(folder / "reference.npz", texts=np.array(TEXTS), embeddings=ref,
             lengths=np.array([len(x) for x in ids], dtype=np.int64))
    log(f"{name}: exporting")
    if full:
        styles = export_styles(model, folder, log)
    else:
        NoTypes, WithTypes, *_ = _wrappers()
        d_ids, d_mask, d_types = _dummy()
        path = folder / "onnx" / "model.onnx"
        legacy_export(WithTypes(model), path, (d_ids, d_mask, d_types),
                      ["input_ids", "attention_mask", "token_type_ids"], ["last_hidden_state"], 17)
        styles = [{"file": "onnx/model.onnx", "int8": False,
                   "description": f"legacy opset 17 export of a BERT with hidden_act={hidden_act} "
                                  "(tanh GELU in the graph): the native engine must refuse it",
                   "native": "refuse"}]
        log(f"  model: {op_counts(path)}")
    for s in styles:
        s.setdefault("native", "any")
    # a folder's default graph (onnx/model.onnx) for the main model: the plain opset 17 export
    if full:
        shutil.copyfile(folder / "onnx" / "legacy_opset17.onnx", folder / "onnx" / "model.onnx")
    rows = []
    for s in styles:
        emb = ort_embed(folder / s["file"], ids)
        diff, cos = compare(emb, ref)
        s["ort_max_abs_diff"] = float(f"{diff:.3g}")
        s["ort_min_cos"] = round(cos, 7)
        rows.append((name, s["file"], diff, cos))
    _dump(folder / "corpus.json", {
        "model": name, "reference": "reference.npz", "hidden_act": hidden_act,
        "note": "reference embeddings: PyTorch fp32, token_type_ids zero, mean pooling over the "
                "attention mask, L2-normalized; texts tokenized with tokenizer.json, truncated at "
                f"{MAX_SEQ} tokens including [CLS] and [SEP]",
        "styles": styles})
    return rows


def check_embedrt(log) -> None:
    """The folder loads with embedrt on onnxruntime (when embedrt is importable)."""
    try:
        sys.path.insert(0, str(HERE.parents[1] / "python"))
        import embedrt
    except Exception as e:  # noqa: BLE001
        log(f"embedrt not importable ({e}); skipping the embedrt check")
        return
    folder = OUT / "tiny-bert"
    enc = embedrt.Encoder(folder, backend="onnxruntime")
    ref = np.load(folder / "reference.npz")
    emb = enc.encode([str(t) for t in ref["texts"]])
    diff, cos = compare(np.asarray(emb, dtype=np.float32), ref["embeddings"])
    log(f"embedrt.Encoder(tiny-bert, backend='onnxruntime'): max abs diff {diff:.2e}, min cos {cos:.7f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda *a: None) if args.quiet else print
    OUT.mkdir(parents=True, exist_ok=True)
    rows = make_model_folder("tiny-bert", "gelu", True, log)
    rows += make_model_folder("tiny-bert-gelu-new", "gelu_new", False, log)
    print(f"\n{'folder':<20} {'style':<34} {'max abs diff':>12} {'min cos':>10}")
    for folder, f, diff, cos in rows:
        print(f"{folder:<20} {f:<34} {diff:12.2e} {cos:10.7f}")
    check_embedrt(log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
