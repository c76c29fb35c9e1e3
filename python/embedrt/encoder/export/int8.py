"""int8 quantization of an exported encoder graph for onnxruntime, with the native engine's scheme.

onnxruntime's own dynamic quantization (``quantize_dynamic``) quantizes each activation with one
scale for the whole tensor. Encoders whose activations carry outliers in a few tokens or channels
lose most of their precision that way: all-mpnet-base-v2 exported and quantized so keeps a mean
cosine of 0.91 to its float embeddings (0.85 at worst) on docstring texts. This module writes the
scheme the native engine runs instead, in plain ONNX operators:

* weights: int8, symmetric, one scale per output channel;
* activations: one scale per token (row), computed on the fly (the largest ``|x|`` of the row,
  by ``ReduceMax`` and ``ReduceMin``), quantized by ``QuantizeLinear`` along the rows of the
  activation flattened to [tokens, channels], as uint8 around a zero point of 128 for
  ``MatMulInteger``; its int32 product is scaled by the row's and the column's scales;
* the few input channels that carry activation outliers (found once, on the fixed synthetic
  sequences the native engine calibrates on) stay in float: they are zeroed before the
  quantization and their float product is added back.

Every MatMul whose second input is a 2-D float initializer is rewritten; the products of two
activations (attention) and everything else stay as they are. The result is checked against the
float graph on the probe sequences before it is written: below ``gate.INT8_MIN_COS`` it is not
written and ExportError says what it reached.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import gate
from ..native import MAX_OUTLIERS, OUTLIER_RATIO, _outlier_channels, _quantize_rows

__all__ = ["quantize_int8", "calibrate", "rowwise_int8"]

# Outlier channels kept in float per MatMul input (the native engine's most for any slot).
_MAX_OUTLIERS = max(MAX_OUTLIERS.values())
_DOC = ("embedrt int8: weights per output channel, activations per token (MatMulInteger), "
        "outlier input channels in float")


def _weight_matmuls(model) -> dict:
    """{position in the graph: node} of the MatMul nodes whose second input is a 2-D float
    initializer and first is not one."""
    from onnx import TensorProto

    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for pos, n in enumerate(model.graph.node):
        if n.op_type != "MatMul" or len(n.input) != 2 or n.input[0] in inits:
            continue
        w = inits.get(n.input[1])
        if w is not None and w.data_type == TensorProto.FLOAT and len(w.dims) == 2:
            out[pos] = n
    return out


# A graph at least this large cannot be serialized into one protobuf message: it is handed to
# onnxruntime as a file with its weights beside it.
_INLINE_BYTES = 2_000_000_000


def _runner(model):
    """(session, its inputs' {name: dtype}) of `model` (a ModelProto) on onnxruntime."""
    import onnxruntime as ort

    from ..ort_backend import _input_types

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if model.ByteSize() < _INLINE_BYTES:
        s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    else:
        import tempfile

        import onnx

        with tempfile.TemporaryDirectory(prefix="embedrt-int8-") as tmp:
            path = Path(tmp) / "graph.onnx"
            big = onnx.ModelProto()
            big.CopyFrom(model)  # save_model moves the weights out of the proto it is given
            onnx.save_model(big, str(path), save_as_external_data=True, location="graph.onnx.data")
            del big
            s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return s, _input_types(s)


def _feed(types, ids):
    """The inputs of one sequence alone (no padding), as the onnxruntime backend makes them."""
    from ..ort_backend import _make_feed

    return _make_feed(types, [np.asarray(ids, np.int64)])[0]


def calibrate(model, seqs: list) -> dict:
    """Per input channel, the largest |x| each rewritten MatMul's input reaches over `seqs`
    (each run alone), by the float graph: {input name: float32 [channels]}."""
    return _calibrated(model, seqs)[0]


def _calibrated(model, seqs: list) -> tuple:
    """(calibrate()'s maxima, the float graph's mean-pooled first output per sequence), from one
    run of each sequence."""
    import onnx
    from onnx import TensorProto, helper

    xs = sorted({n.input[0] for n in _weight_matmuls(model).values()})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    have = {o.name for o in probe.graph.output}
    for x in xs:
        if x not in have:
            probe.graph.output.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, None))
    session, types = _runner(probe)
    del probe
    first = model.graph.output[0].name
    amax, pooled = {}, []
    for ids in seqs:
        out = session.run([first, *xs], _feed(types, ids))
        pooled.append(out[0][0].astype(np.float64).mean(axis=0))
        for x, v in zip(xs, out[1:]):
            a = np.abs(v.reshape(-1, v.shape[-1])).max(axis=0)
            amax[x] = a if x not in amax else np.maximum(amax[x], a)
    return amax, np.stack(pooled)


def rowwise_int8(model, amax: dict):
    """Rewrites `model` (in place) to the int8 scheme of this module, with the outlier channels
    of `amax` (from calibrate()); returns it."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    targets = _weight_matmuls(model)
    inits = {i.name: i for i in g.initializer}
    added, replaced, nodes = [], set(), []
    # activation name -> (its uint8 rows [rows, k], their scales [rows, 1], the outlier channels,
    # their float values, the activation's shape but the last axis)
    quantized = {}

    def const(name, arr):
        added.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    inv127 = const("embedrt_q/inv127", np.float32(1.0 / 127.0))
    tiny = const("embedrt_q/tiny", np.float32(1e-30))
    zp = const("embedrt_q/zero_point", np.uint8(128))
    one = const("embedrt_q/one", np.array([1], np.int64))
    zero = const("embedrt_q/zero", np.array([0], np.int64))
    last = const("embedrt_q/minus_one", np.array([-1], np.int64))
    axis1 = one if opset >= 18 else None

    def reduce(op, x, y):  # over the channels of [rows, k], to [rows]
        if axis1 is None:
            return helper.make_node(op, [x], [y], axes=[1], keepdims=0)
        return helper.make_node(op, [x, axis1], [y], keepdims=0)

    def quantize_input(x, k):
        pre = f"{x}/embedrt_q"
        idx = _outlier_channels(amax[x], _MAX_OUTLIERS, OUTLIER_RATIO) if x in amax else np.zeros(0, np.int64)
        src = x
        if idx.size:
            mask = np.ones(k, np.float32)
            mask[idx] = 0.0
            nodes.append(helper.make_node("Mul", [x, const(pre + "/mask", mask)], [pre + "/inliers"]))
            nodes.append(helper.make_node("Gather", [x, const(pre + "/outlier_idx", idx)],
                                          [pre + "/outliers"], axis=-1))
            src = pre + "/inliers"
        nodes.extend([
            helper.make_node("Reshape", [src, const(pre + "/2d", np.array([-1, k], np.int64))], [pre + "/x2"]),
            reduce("ReduceMax", pre + "/x2", pre + "/mx"),
            reduce("ReduceMin", pre + "/x2", pre + "/mn"),
            helper.make_node("Neg", [pre + "/mn"], [pre + "/nmn"]),
            helper.make_node("Max", [pre + "/mx", pre + "/nmn"], [pre + "/absmax"]),
            helper.make_node("Mul", [pre + "/absmax", inv127], [pre + "/scale0"]),
            helper.make_node("Max", [pre + "/scale0", tiny], [pre + "/scale1"]),
            helper.make_node("Shape", [pre + "/scale1"], [pre + "/rows"]),
            helper.make_node("Expand", [zp, pre + "/rows"], [pre + "/zps"]),
            helper.make_node("QuantizeLinear", [pre + "/x2", pre + "/scale1", pre + "/zps"], [pre + "/u8"], axis=0),
            helper.make_node("Unsqueeze", [pre + "/scale1", one], [pre + "/scale"]),
            helper.make_node("Shape", [x], [pre + "/shape"]),
            helper.make_node("Slice", [pre + "/shape", zero, last], [pre + "/lead"]),
        ])
        return pre + "/u8", pre + "/scale", idx, pre + "/outliers", pre + "/lead"

    for pos, n in enumerate(g.node):
        if pos not in targets:
            nodes.append(n)
            continue
        x, wname = n.input
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)  # [k, n]
        if x not in quantized:
            quantized[x] = quantize_input(x, w.shape[0])
        q, scale, idx, outliers, lead = quantized[x]
        inl = w.copy()
        inl[idx] = 0.0
        wq, ws = _quantize_rows(np.ascontiguousarray(inl.T))  # per output channel
        pre = f"{n.name or n.output[0]}/embedrt_q"
        y = n.output[0]
        prod = pre + "/int8"
        nodes += [
            helper.make_node("MatMulInteger", [q, const(wname + "/int8", np.ascontiguousarray(wq.T)), zp],
                             [pre + "/i32"]),
            helper.make_node("Cast", [pre + "/i32"], [pre + "/f32"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [pre + "/f32", scale], [pre + "/rows"]),
            helper.make_node("Mul", [pre + "/rows", const(wname + "/scale", ws.astype(np.float32))], [pre + "/p2"]),
            helper.make_node("Concat", [lead, const(pre + "/n", np.array([w.shape[1]], np.int64))],
                             [pre + "/oshape"], axis=0),
            helper.make_node("Reshape", [pre + "/p2", pre + "/oshape"], [prod if idx.size else y]),
        ]
        if idx.size:
            nodes += [helper.make_node("MatMul", [outliers, const(wname + "/outlier_rows", w[idx])],
                                       [pre + "/outlier_product"]),
                      helper.make_node("Add", [prod, pre + "/outlier_product"], [y])]
        replaced.add(wname)
    still = {i for n in nodes for i in n.input}
    keep = [i for i in g.initializer if i.name not in replaced or i.name in still]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(keep + added)
    model.doc_string = _DOC
    return model


def _pooled(session, types, seqs) -> np.ndarray:
    return np.stack([session.run(None, _feed(types, ids))[0][0].astype(np.float64).mean(axis=0)
                     for ids in seqs])


def quantize_int8(model, out_path, longest: int = 256, special_ids=(None, None)) -> tuple:
    """Writes the int8 form of the float encoder graph `model` (a ModelProto, or the path of
    one) to `out_path`; returns (path, min cosine on the probe).

    Calibrated and checked on the native engine's probe sequences (random ids of 1 .. `longest`
    tokens, `special_ids` = (CLS, SEP) at their ends); raises ExportError, writing nothing, when
    the mean-pooled int8 output falls below ``gate.INT8_MIN_COS`` of the float one."""
    import onnx

    from . import ExportError, _save

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    seqs = gate.probe_sequences(_vocabulary(model), max(1, int(longest)), special_ids)
    amax, want = _calibrated(model, seqs)
    q = onnx.ModelProto()
    q.CopyFrom(model)
    rowwise_int8(q, amax)
    session, types = _runner(q)
    _, cos = gate.deviation(_pooled(session, types, seqs), want, normalize=True)
    del session
    if not cos >= gate.INT8_MIN_COS:
        raise ExportError(f"int8 quantization reaches a cosine of only {cos:.4f} to the float graph on "
                          f"the probe (at least {gate.INT8_MIN_COS} is needed); export without "
                          "--quantize, or run the float graph on the native int8 engine")
    out_path = Path(out_path)
    _save(onnx, q, out_path)
    return out_path, cos


def _vocabulary(model) -> int:
    """The rows of the embedding table input_ids index (ExportError when no Gather reads them)."""
    from . import ExportError

    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == "input_ids" and n.input[0] in inits:
            return int(inits[n.input[0]].dims[0])
    raise ExportError("the graph has no embedding table that input_ids index")
