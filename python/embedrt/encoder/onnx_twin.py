"""The float twin of a quantized ONNX graph: the same graph with its int8 arithmetic undone.

An int8 graph computes an approximation of a float model: onnxruntime's dynamic quantization
(``DynamicQuantizeLinear`` -> ``MatMulInteger`` -> ``Cast`` -> ``Mul`` by the two scales)
quantizes activations at run time, a static QDQ graph rounds activations through
``QuantizeLinear`` -> ``DequantizeLinear`` pairs. Their outputs sit a percent or so away from
the float model, too far to prove that the native engine read the weights right. The twin
replaces each such pattern by the float operation it approximates, with the weights
dequantized by float nodes over the int8 constants as they are (``MatMul(x, (Cast(Wq) -
zero_point) * scale)``, which onnxruntime folds once; no float copy of the weights is made
here); activation pairs become the tensor itself. So onnxruntime on the twin computes exactly
what the recognised weights must give. Any quantized operation the twin cannot undo makes it None: the model then cannot be
proven.
"""
from __future__ import annotations

import numpy as np

_QUANT_OPS = {"MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear",
              "QLinearMatMul", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
              "QGemm", "QEmbedLayerNormalization", "QLinearAdd", "QLinearMul"}


def float_twin(model):
    """A new ModelProto without int8 arithmetic, or None when a pattern is not understood."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())  # leave the caller's alone
    g = model.graph
    consts = {i.name: i for i in g.initializer}
    const_nodes = {n.output[0]: n for n in g.node if n.op_type == "Constant"}

    def value(name):
        if name in consts:
            return numpy_helper.to_array(consts[name])
        node = const_nodes.get(name)
        if node is not None:
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        return None

    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    removed, replaced, new_inits, alias = set(), {}, [], {}

    def dequantized(q_name, zp, scale, out_name):
        """Nodes computing (float(q) - zp) * scale into out_name (zp, scale: small float32
        arrays shaped to broadcast against q)."""
        base = out_name + "_twin"
        zp_name, s_name = base + "_zero_point", base + "_scale"
        new_inits.append(numpy_helper.from_array(np.asarray(zp, np.float32), zp_name))
        new_inits.append(numpy_helper.from_array(np.asarray(scale, np.float32), s_name))
        return [helper.make_node("Cast", [q_name], [base + "_f"], to=onnx.TensorProto.FLOAT,
                                 name=base + "_cast"),
                helper.make_node("Sub", [base + "_f", zp_name], [base + "_c"], name=base + "_sub"),
                helper.make_node("Mul", [base + "_c", s_name], [out_name], name=base + "_mul")]

    def only_user(t, op):
        us = users.get(t, [])
        return us[0] if len(us) == 1 and us[0].op_type == op else None

    for n in g.node:
        if n.op_type == "MatMulInteger":
            dq = producer.get(n.input[0])
            wq = value(n.input[1])
            if dq is None or dq.op_type != "DynamicQuantizeLinear" or wq is None or wq.ndim != 2:
                return None
            wzp = value(n.input[3]) if len(n.input) > 3 and n.input[3] else np.zeros((), wq.dtype)
            if wzp is None:
                return None
            cast = only_user(n.output[0], "Cast")
            mul = only_user(cast.output[0], "Mul") if cast is not None else None
            if mul is None:
                return None
            other = [i for i in mul.input if i != cast.output[0]]
            smul = producer.get(other[0]) if len(other) == 1 else None
            if smul is None or smul.op_type != "Mul" or dq.output[1] not in smul.input:
                return None
            ws = value([i for i in smul.input if i != dq.output[1]][0])
            if ws is None:
                return None
            wname = n.output[0] + "_float_weight"
            # in the MatMulInteger's place, so the nodes stay in topological order
            replaced[id(n)] = dequantized(
                n.input[1], np.asarray(wzp, np.float32).reshape(1, -1),
                np.asarray(ws, np.float32).reshape(1, -1), wname) + [
                helper.make_node("MatMul", [dq.input[0], wname], [mul.output[0]],
                                 name=(n.name or wname) + "_float")]
            removed.update(id(x) for x in (cast, mul))
        elif n.op_type == "QuantizeLinear" and value(n.input[0]) is None:
            dqs = users.get(n.output[0], [])
            if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs):
                return None
            for d in dqs:
                alias[d.output[0]] = n.input[0]
                removed.add(id(d))
            removed.add(id(n))
        elif n.op_type == "DequantizeLinear" and value(n.input[0]) is not None:
            x = value(n.input[0])
            s = np.asarray(value(n.input[1]), np.float32)
            zp = value(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            zp = np.zeros((), np.float32) if zp is None else np.asarray(zp, np.float32)
            if any(a.name == "block_size" and a.i for a in n.attribute):
                return None
            if s.ndim == 1 and x.ndim > 1:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                shape = [1] * x.ndim
                shape[axis] = -1
                s = s.reshape(shape)
                zp = zp.reshape(shape) if zp.ndim == 1 else zp
            replaced[id(n)] = dequantized(n.input[0], zp, s, n.output[0])
        elif n.op_type == "DequantizeLinear" and id(n) not in removed:
            # rows gathered from a quantized table (embeddings): gather from the dequantized one
            gather = producer.get(n.input[0])
            table = value(gather.input[0]) if gather is not None and gather.op_type == "Gather" else None
            s = value(n.input[1])
            zp = value(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros((), np.float32)
            if table is None or s is None or zp is None or np.size(s) != 1 or np.size(zp) != 1 or \
                    len(users.get(gather.output[0], [])) != 1:
                return None
            # the gathered int8 rows are dequantized (the same values as gathering from the
            # dequantized table)
            replaced[id(n)] = dequantized(gather.output[0], np.float32(np.asarray(zp).reshape(())),
                                          np.float32(np.asarray(s).reshape(())), n.output[0])

    def resolve(t):
        seen = 0
        while t in alias and seen < 64:
            t, seen = alias[t], seen + 1
        return t

    kept = []
    for n in g.node:
        if id(n) not in removed:
            r = replaced.get(id(n), n)
            kept.extend(r if isinstance(r, list) else [r])
    for n in kept:
        for i, name in enumerate(n.input):
            n.input[i] = resolve(name)
    for o in g.output:
        if o.name in alias:
            return None  # a graph output that is a quantized pair: not a shape this reads
    # drop what no longer feeds anything (the scale products, DynamicQuantizeLinear)
    outputs = {o.name for o in g.output}
    while True:
        needed = set(outputs)
        for n in kept:
            needed.update(n.input)
        live = [n for n in kept if any(o in needed for o in n.output)]
        if len(live) == len(kept):
            break
        kept = live
    if any(n.op_type in _QUANT_OPS for n in kept):
        return None
    del g.node[:]
    g.node.extend(kept)
    used = {i for n in kept for i in n.input}
    inits = [i for i in g.initializer if i.name in used and i.name not in {t.name for t in new_inits}]
    del g.initializer[:]
    g.initializer.extend(inits + [t for t in new_inits if t.name in used])
    return model
