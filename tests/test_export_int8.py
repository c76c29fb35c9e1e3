"""The int8 graph `embedrt export --quantize int8` writes (embedrt.encoder.export.int8): the
rewritten MatMuls against a numpy reference of the scheme (weights per output channel,
activations per token, outlier channels in float), every family's export against its float
graph, and the refusal when the bar is missed."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import embedrt
from embedrt.encoder import gate
from embedrt.encoder.export import ExportError
from embedrt.encoder.export import int8 as q8
from test_export_families import NAMES, _copy, _export


def _two_linears(k=24, n=40, opset=17, seed=0):
    """input_ids -> Gather (embedding table) -> MatMul W1 -> Relu -> MatMul W2: the smallest graph
    with an embedding table and two rewritable MatMuls (one input shared by two of them)."""
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((50, k)).astype(np.float32)
    w1 = rng.standard_normal((k, n)).astype(np.float32)
    w1b = rng.standard_normal((k, n)).astype(np.float32)
    w2 = rng.standard_normal((n, k)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["x"]),
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="l1"),
        helper.make_node("MatMul", ["x", "w1b"], ["h1b"], name="l1b"),
        helper.make_node("Add", ["h1", "h1b"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["last_hidden_state"], name="l2"),
    ]
    inits = [numpy_helper.from_array(a, name) for a, name in ((table, "table"), (w1, "w1"), (w1b, "w1b"), (w2, "w2"))]
    g = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
                       helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["b", "s", k])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m, table, w1, w1b, w2


def _reference_linear(x, w, outliers):
    """The scheme in numpy: x [rows, k] @ w [k, n]."""
    inl = x.copy()
    inl[:, outliers] = 0.0
    s = np.maximum(np.abs(inl).max(axis=1, keepdims=True) / np.float32(127), np.float32(1e-30))
    xq = np.rint(inl / s)
    wi = w.copy()
    wi[outliers] = 0.0
    ws = np.abs(wi).max(axis=0) / 127.0
    ws = np.where(ws > 0, ws, 1.0).astype(np.float32)
    wq = np.clip(np.rint(wi / ws), -127, 127)
    return (xq @ wq) * s * ws + x[:, outliers] @ w[outliers]


def _run(model, ids):
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.asarray(ids, np.int64)[None]
    return s.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("outlier", [False, True])
def test_rewritten_graph_matches_the_numpy_scheme(opset, outlier):
    m, table, w1, w1b, w2 = _two_linears(opset=opset)
    if outlier:  # one input channel far larger than the others: kept in float
        table[:, 5] *= 300.0
        m.graph.initializer[0].CopyFrom(numpy_helper.from_array(table, "table"))
    ids = np.array([3, 7, 0, 49, 12, 12, 30])
    amax = q8.calibrate(m, [ids])
    assert set(amax) == {"x", "r"}
    np.testing.assert_allclose(amax["x"], np.abs(table[ids]).max(axis=0), rtol=1e-6)
    idx_x = q8._outlier_channels(amax["x"], q8._MAX_OUTLIERS, q8.OUTLIER_RATIO)
    assert (5 in idx_x) == outlier
    q = q8.rowwise_int8(m, amax)
    onnx.checker.check_model(q, full_check=True)
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulInteger") == 3 and ops.count("ReduceMax") == 2  # x is quantized once
    assert {i.name for i in q.graph.initializer}.isdisjoint({"w1", "w1b", "w2"})

    x = table[ids]
    h = _reference_linear(x, w1, idx_x) + _reference_linear(x, w1b, idx_x)
    r = np.maximum(h, 0).astype(np.float32)
    idx_r = q8._outlier_channels(amax["r"], q8._MAX_OUTLIERS, q8.OUTLIER_RATIO)
    want = _reference_linear(r, w2, idx_r)
    got = _run(q, ids)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    # and it is an approximation of the float graph, not something else
    exact = r @ w2
    assert np.linalg.norm(got - exact) / np.linalg.norm(exact) < 0.05


def test_zero_rows_and_a_zero_weight_column_stay_finite():
    m, table, *_ = _two_linears()
    table[4] = 0.0
    m.graph.initializer[0].CopyFrom(numpy_helper.from_array(table, "table"))
    w2 = numpy_helper.to_array(m.graph.initializer[3]).copy()
    w2[:, 3] = 0.0
    m.graph.initializer[3].CopyFrom(numpy_helper.from_array(w2, "w2"))
    ids = np.array([4, 4, 1])
    q = q8.rowwise_int8(m, q8.calibrate(m, [ids]))
    got = _run(q, ids)
    assert np.isfinite(got).all()
    np.testing.assert_array_equal(got[:2], 0.0)
    np.testing.assert_array_equal(got[:, 3], 0.0)


def test_a_graph_without_an_embedding_table_is_refused(tmp_path):
    m = _two_linears()[0]
    m.graph.node[0].input[1] = "attention_mask"
    with pytest.raises(ExportError, match="embedding table"):
        q8.quantize_int8(m, tmp_path / "q.onnx")


@pytest.mark.parametrize("name", NAMES)
def test_every_family_exports_an_int8_graph_close_to_its_float_graph(tmp_path, name):
    src, out = _export(name, tmp_path, quantize="int8")
    q = onnx.load(str(out / "onnx" / "model_qint8.onnx"))
    assert q.doc_string == q8._DOC
    assert sum(n.op_type == "MatMulInteger" for n in q.graph.node) >= 4
    assert not any(n.op_type == "DynamicQuantizeLinear" for n in q.graph.node)
    ref = np.load(src / "reference.npz")
    texts = [str(t) for t in ref["texts"]]
    a = embedrt.Encoder(out, backend="onnxruntime").encode(texts)
    b = embedrt.Encoder(out, backend="onnxruntime", onnx_file="model_qint8.onnx").encode(texts)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99, cos.min()


def test_an_int8_graph_below_the_bar_is_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(gate, "INT8_MIN_COS", 1.000001)
    src = _copy("tiny-mpnet", tmp_path)
    with pytest.raises(ExportError, match="cosine of only"):
        embedrt.export(src, tmp_path / "out", quantize="int8")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_a_graph_too_large_for_one_message_runs_from_a_file(monkeypatch):
    m, table, w1, w1b, w2 = _two_linears()
    ids = np.array([1, 2, 3])
    inline = q8.calibrate(m, [ids])
    monkeypatch.setattr(q8, "_INLINE_BYTES", 0)
    from_file = q8.calibrate(m, [ids])
    assert set(from_file) == set(inline)
    for k in inline:
        np.testing.assert_array_equal(from_file[k], inline[k])
    assert len(m.graph.initializer[0].raw_data) > 0  # the caller's graph keeps its weights


def test_the_native_engine_does_not_take_the_int8_graph_for_one_it_knows(tmp_path):
    """The rewritten graph is no structure the native engine recognizes: auto runs it on
    onnxruntime and says why, native raises."""
    from embedrt.encoder.native import NotRecognized

    src, out = _export("tiny-mpnet", tmp_path, quantize="int8")
    enc = embedrt.Encoder(out, onnx_file="onnx/model_qint8.onnx")
    assert enc.backend_info["backend"] == "onnxruntime"
    assert "does not recognize" in enc.backend_info["reason"]
    with pytest.raises(NotRecognized):
        embedrt.Encoder(out, onnx_file="onnx/model_qint8.onnx", backend="native")
