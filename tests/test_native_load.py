"""Reading ONNX BERT graphs into the native engine's parameters: small graphs built here with
onnx.helper, and the export corpus when it is present. Every recognised graph is checked by a
numpy forward pass of the parameters against onnxruntime on the same file."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from embedrt.encoder._native_load import NotRecognized, params_from_onnx, read_hf_config  # noqa: E402

CORPUS = Path(__file__).parent / "data" / "export_corpus"


# ---------------------------------------------------------------------------------------------
# Reference forward pass of canonical params (float64)

_erf = np.vectorize(math.erf)


def _ln(x, g, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * g + b


def forward(cfg, P, ids, types=None):
    L, h, H = len(ids), cfg["hidden"], cfg["heads"]
    d = h // H
    p64 = {k: v.astype(np.float64) for k, v in P.items()}
    t = p64["type"][types] if types is not None else p64["type"][0]
    x = _ln(p64["word"][ids] + p64["pos"][:L] + t, p64["emb_g"], p64["emb_b"], cfg["eps"])
    for i in range(cfg["layers"]):
        p = lambda k: p64[f"{i}.{k}"]  # noqa: E731
        q = (x @ p("q_w").T + p("q_b")).reshape(L, H, d).transpose(1, 0, 2)
        k = (x @ p("k_w").T + p("k_b")).reshape(L, H, d).transpose(1, 0, 2)
        v = (x @ p("v_w").T + p("v_b")).reshape(L, H, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        c = (s @ v).transpose(1, 0, 2).reshape(L, h)
        x1 = _ln(c @ p("ao_w").T + p("ao_b") + x, p("ln1_g"), p("ln1_b"), cfg["eps"])
        u = x1 @ p("up_w").T + p("up_b")
        u = 0.5 * u * (1.0 + _erf(u / np.sqrt(2.0)))
        x = _ln(u @ p("down_w").T + p("down_b") + x1, p("ln2_g"), p("ln2_b"), cfg["eps"])
    return x


def max_rel_dev(path, cfg, P, lengths=(1, 6, 13), seed=0, types=False, optimize=True):
    """Largest |ort - numpy| / max|ort| over a few sequences (first output, first row)."""
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    worst = 0.0
    for L in lengths:
        ids = rng.integers(0, cfg["vocab"], L)
        tt = rng.integers(0, P["type"].shape[0], L) if types else np.zeros(L, np.int64)
        feed = {}
        for i in sess.get_inputs():
            dt = np.int32 if "int32" in i.type else np.int64
            value = {"input_ids": ids[None], "attention_mask": np.ones((1, L)),
                     "token_type_ids": tt[None], "position_ids": np.arange(L)[None]}[i.name]
            feed[i.name] = value.astype(dt)
        out = sess.run(None, feed)[0][0].astype(np.float64)
        ref = forward(cfg, P, ids, tt if types else None)
        worst = max(worst, float(np.abs(out - ref).max() / np.abs(out).max()))
    return worst


# ---------------------------------------------------------------------------------------------
# Small BERT graphs built with onnx.helper

V, MAXPOS, TYPES, HID, HEADS, INTER = 50, 32, 2, 16, 2, 24


class _Builder:
    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base="c"):
        value = np.asarray(value)
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def rand(self, *shape, scale=0.3, base="w"):
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), base)

    def op(self, op_type, inputs, n_out=1, domain=None, **attrs):
        outs = [self.name(op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=self.name(op_type + "_n"),
                                           domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def layernorm(self, x, style):
        g = self.const((1 + 0.1 * self.rng.standard_normal(HID)).astype(np.float32))
        b = self.rand(HID, scale=0.1)
        if style == "fused":
            return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-6)
        mean = self.op("ReduceMean", [x], axes=[-1])
        d = self.op("Sub", [x, mean])
        var = self.op("ReduceMean", [self.op("Pow", [d, self.const(np.float32(2))])], axes=[-1])
        std = self.op("Sqrt", [self.op("Add", [var, self.const(np.float32(1e-6))])])
        return self.op("Add", [self.op("Mul", [self.op("Div", [d, std]), g]), b])

    def linear(self, x, n_in, n_out):
        return self.op("Add", [self.op("MatMul", [x, self.rand(n_in, n_out)]),
                               self.rand(n_out, scale=0.1)])

    def gelu(self, x, style):
        if style == "erf":
            e = self.op("Erf", [self.op("Div", [x, self.const(np.float32(math.sqrt(2)))])])
            a = self.op("Add", [e, self.const(np.float32(1))])
            return self.op("Mul", [self.op("Mul", [x, a]), self.const(np.float32(0.5))])
        if style == "ms_gelu":
            return self.op("Gelu", [x], domain="com.microsoft")
        if style == "gelu20":
            return self.op("Gelu", [x], approximate="none")
        if style == "gelu20_tanh":
            return self.op("Gelu", [x], approximate="tanh")
        if style == "fast":
            return self.op("FastGelu", [x], domain="com.microsoft")
        raise AssertionError(style)


def build_bert(path, *, types="zeros", positions="slice", ln="fused", gelu="erf", opset=17,
               layers=1):
    """A BertModel-shaped graph: inputs input_ids, attention_mask (and token_type_ids when
    types == "input"), output last_hidden_state."""
    B = _Builder()
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if types == "input" else [])
    seq = B.op("Unsqueeze", [B.op("Gather", [B.op("Shape", ["input_ids"]), B.const(np.int64(1))]),
                             B.const(np.array([0], np.int64))])
    word = B.op("Gather", [B.rand(V, HID), "input_ids"])
    if positions == "slice":
        pidx = B.op("Slice", [B.const(np.arange(MAXPOS, dtype=np.int64)[None]),
                              B.const(np.array([0], np.int64)), seq,
                              B.const(np.array([1], np.int64))])
    elif positions == "offset":  # RoBERTa-like: positions start at 2
        pidx = B.op("Slice", [B.const(np.arange(2, MAXPOS + 2, dtype=np.int64)[None]),
                              B.const(np.array([0], np.int64)), seq,
                              B.const(np.array([1], np.int64))])
    elif positions == "range":
        n = B.op("Squeeze", [seq, B.const(np.array([0], np.int64))])
        pidx = B.op("Unsqueeze", [B.op("Range", [B.const(np.int64(0)), n, B.const(np.int64(1))]),
                                  B.const(np.array([0], np.int64))])
    else:
        raise AssertionError(positions)
    pos = B.op("Gather", [B.rand(MAXPOS, HID), pidx])
    ttab = B.rand(TYPES, HID)
    if types == "input":
        tidx = "token_type_ids"
    elif types in ("zeros", "ones"):  # ConstantOfShape(Shape(input_ids)), as transformers exports
        fill = numpy_helper.from_array(np.array([types == "ones"], np.int64))
        tidx = B.op("ConstantOfShape", [B.op("Shape", ["input_ids"])], value=fill)
    elif types == "buffer":  # an expanded constant buffer of zeros
        tidx = B.op("Expand", [B.op("Slice", [B.const(np.zeros((1, MAXPOS), np.int64)),
                                              B.const(np.array([0], np.int64)), seq,
                                              B.const(np.array([1], np.int64))]),
                               B.op("Shape", ["input_ids"])])
    elif types == "mixed":  # a constant buffer holding different type ids
        tidx = B.op("Slice", [B.const((np.arange(MAXPOS) % 2).astype(np.int64)[None]),
                              B.const(np.array([0], np.int64)), seq,
                              B.const(np.array([1], np.int64))])
    elif types == "unexplained":  # an index computed from input_ids
        tidx = B.op("Mod", ["input_ids", B.const(np.int64(2))])
    else:
        raise AssertionError(types)
    typ = B.op("Gather", [ttab, tidx])
    x = B.layernorm(B.op("Add", [B.op("Add", [word, typ]), pos]), ln)

    m = B.op("Cast", [B.op("Unsqueeze", ["attention_mask", B.const(np.array([1, 2], np.int64))])],
             to=TensorProto.FLOAT)
    mask = B.op("Mul", [B.op("Sub", [B.const(np.float32(1)), m]), B.const(np.float32(-1e4))])
    d = HID // HEADS
    heads_shape = B.const(np.array([0, 0, HEADS, d], np.int64))
    for _ in range(layers):
        q = B.op("Transpose", [B.op("Reshape", [B.linear(x, HID, HID), heads_shape])],
                 perm=[0, 2, 1, 3])
        k = B.op("Transpose", [B.op("Reshape", [B.linear(x, HID, HID), heads_shape])],
                 perm=[0, 2, 3, 1])
        v = B.op("Transpose", [B.op("Reshape", [B.linear(x, HID, HID), heads_shape])],
                 perm=[0, 2, 1, 3])
        s = B.op("Div", [B.op("MatMul", [q, k]), B.const(np.float32(math.sqrt(d)))])
        p = B.op("Softmax", [B.op("Add", [s, mask])], axis=-1)
        c = B.op("Reshape", [B.op("Transpose", [B.op("MatMul", [p, v])], perm=[0, 2, 1, 3]),
                             B.const(np.array([0, 0, HID], np.int64))])
        x1 = B.layernorm(B.op("Add", [B.linear(c, HID, HID), x]), ln)
        u = B.gelu(B.linear(x1, HID, INTER), gelu)
        x = B.layernorm(B.op("Add", [B.linear(u, INTER, HID), x1]), ln)
    B.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out"))
    graph = helper.make_graph(
        B.nodes, "bert",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["b", "s"]) for n in inputs],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", HID])],
        B.inits)
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("kw", [
    dict(types="zeros"), dict(types="ones"), dict(types="buffer"), dict(types="input"),
    dict(positions="range"), dict(ln="decomposed", layers=2), dict(gelu="ms_gelu"),
    dict(gelu="gelu20", opset=20),
], ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_built_graph_recognised(tmp_path, kw):
    path = build_bert(tmp_path / "m.onnx", **kw)
    cfg, P = params_from_onnx(path, None)
    assert (cfg["hidden"], cfg["heads"], cfg["intermediate"], cfg["vocab"]) == (HID, HEADS, INTER, V)
    assert cfg["eps"] == pytest.approx(1e-6, rel=1e-6)  # read from the graph
    assert cfg["type_vocab"] == (TYPES if kw.get("types") == "input" else 1)
    assert max_rel_dev(path, cfg, P, types=kw.get("types") == "input") < 1e-5


def test_constant_type_index_is_folded(tmp_path):
    """A token-type Gather with a constant index is one row of the table, not positions."""
    path = build_bert(tmp_path / "m.onnx", types="ones")
    _, P = params_from_onnx(path, None)
    model = onnx.load(str(path))
    gathers = [n for n in model.graph.node if n.op_type == "Gather"]
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    tables = [inits[n.input[0]] for n in gathers if n.input[0] in inits
              and inits[n.input[0]].ndim == 2 and inits[n.input[0]].shape[1] == HID]
    word, pos, ttab = tables
    assert np.array_equal(P["pos"], pos)
    np.testing.assert_allclose(P["type"], ttab[1:2], rtol=1e-6)


@pytest.mark.parametrize("kw, message", [
    (dict(types="unexplained"), "cannot tell what its index"),
    (dict(types="mixed"), "neither one value"),
    (dict(positions="offset"), "start at 2, not 0"),
    (dict(gelu="fast"), "FastGelu"),
    (dict(gelu="gelu20_tanh", opset=20), "approximate='tanh'"),
], ids=lambda x: "-".join(f"{k}={v}" for k, v in x.items()) if isinstance(x, dict) else None)
def test_built_graph_refused(tmp_path, kw, message):
    path = build_bert(tmp_path / "m.onnx", **kw)
    with pytest.raises(NotRecognized, match=message):
        params_from_onnx(path, None)


def test_config_cross_check(tmp_path):
    path = build_bert(tmp_path / "m.onnx")
    cfg = {"vocab": V, "hidden": HID, "heads": HEADS, "intermediate": INTER, "layers": 1,
           "max_position": MAXPOS, "type_vocab": TYPES, "eps": 1e-12}
    got, _ = params_from_onnx(path, cfg)
    assert got["eps"] == pytest.approx(1e-6, rel=1e-6)  # the graph's, not config.json's
    with pytest.raises(NotRecognized, match="heads"):
        params_from_onnx(path, dict(cfg, heads=4))


def test_missing_external_data_is_named(tmp_path):
    path = build_bert(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=1024)
    cfg, P = params_from_onnx(tmp_path / "ext.onnx", None)
    assert max_rel_dev(tmp_path / "ext.onnx", cfg, P) < 1e-5
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(NotRecognized, match="ext.onnx.data"):
        params_from_onnx(tmp_path / "ext.onnx", None)


def test_unexplained_gather_refused_by_name(tmp_path):
    path = build_bert(tmp_path / "m.onnx", types="unexplained")
    with pytest.raises(NotRecognized) as e:
        params_from_onnx(path, None)
    assert "Gather" in str(e.value) and "Mod" in str(e.value)


# ---------------------------------------------------------------------------------------------
# The export corpus (skipped when absent)

def _corpus_styles():
    out = []
    for model_dir in sorted(CORPUS.glob("*")):
        meta = model_dir / "corpus.json"
        if not meta.is_file():
            continue
        for style in json.loads(meta.read_text())["styles"]:
            out.append(pytest.param(model_dir, style, id=f"{model_dir.name}:{style['file']}"))
    return out or [pytest.param(None, None, marks=pytest.mark.skip(reason="no export corpus"))]


# Deviation of the fp32 numpy forward from onnxruntime allowed per kind of graph: fp32 graphs
# are the same arithmetic; float16 graphs compute in half precision; int8 graphs quantize their
# activations in onnxruntime (the parameters are the dequantized weights).
def _tolerance(style):
    f = style["file"]
    if style.get("int8") or "int8" in f:
        return 0.3
    if "16" in f:
        return 5e-3
    return 1e-4


@pytest.mark.parametrize("model_dir, style", _corpus_styles())
def test_corpus_style(model_dir, style):
    path = model_dir / style["file"]
    if not path.is_file():
        pytest.skip(f"{path.name} not generated")
    if style.get("native") == "refuse":
        with pytest.raises(NotRecognized):  # the graph alone is refused, not only its config
            params_from_onnx(path, None)
        return
    cfg, P = params_from_onnx(path, read_hf_config(model_dir))
    assert max_rel_dev(path, cfg, P) < _tolerance(style)


def test_corpus_qdq_weights_exact(tmp_path):
    """Static QDQ int8: with its activation quantize/dequantize pairs removed (and without
    onnxruntime's graph optimizations, which would quantize the activations of the remaining
    weight-only DequantizeLinear -> MatMul again), onnxruntime computes what the recognised
    (dequantized) weights give."""
    path = CORPUS / "tiny-bert" / "onnx" / "qdq_int8.onnx"
    if not path.is_file():
        pytest.skip("no export corpus")
    cfg, P = params_from_onnx(path, None)
    model = onnx.load(str(path))
    const = {i.name for i in model.graph.initializer}
    const |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    q_in = {n.output[0]: n.input[0] for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[0] not in const}
    alias, keep = {}, []
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in q_in:
            alias[n.output[0]] = q_in[n.input[0]]
        elif not (n.op_type == "QuantizeLinear" and n.output[0] in q_in):
            keep.append(n)
    for n in keep:
        for i, name in enumerate(n.input):
            n.input[i] = alias.get(name, name)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    for o in model.graph.output:
        assert o.name not in alias
    onnx.save(model, str(tmp_path / "qdq_plain.onnx"))
    assert max_rel_dev(tmp_path / "qdq_plain.onnx", cfg, P, optimize=False) < 1e-4
