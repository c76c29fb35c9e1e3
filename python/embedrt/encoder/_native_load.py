"""Reading BERT-family weights for the native engine: Hugging Face config.json, safetensors
checkpoints (read with json + numpy) and ONNX graphs (fp32 exports of BertModel and their
onnxruntime dynamic int8 quantizations).

Every reader returns the same canonical form: ``(cfg, params)`` where ``cfg`` holds ``vocab,
hidden, heads, intermediate, layers, max_position, type_vocab, eps`` and ``params`` maps names
to float32 arrays in PyTorch layout ([out, in] for matrices)::

    word, pos, type, emb_g, emb_b
    L.q_w L.q_b L.k_w L.k_b L.v_w L.v_b L.ao_w L.ao_b L.ln1_g L.ln1_b
    L.up_w L.up_b L.down_w L.down_b L.ln2_g L.ln2_b          (L = layer index)

Anything that is not a BERT the engine understands raises NotRecognized with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import safetensors_io as _safetensors_io


class NotRecognized(ValueError):
    """The graph or checkpoint is not a BERT-family encoder the native engine understands."""


LAYER_KEYS = ("q_w", "q_b", "k_w", "k_b", "v_w", "v_b", "ao_w", "ao_b", "ln1_g", "ln1_b",
              "up_w", "up_b", "down_w", "down_b", "ln2_g", "ln2_b")


# ---------------------------------------------------------------------------------------------
# config.json

def read_hf_config(model_dir) -> dict | None:
    """The relevant fields of a Hugging Face config.json, or None when there is none."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NotRecognized(f"{path}: cannot be read ({e})") from None
    mt = raw.get("model_type")
    if mt is not None and mt not in ("bert",):
        raise NotRecognized(f"{path}: model_type {mt!r} is not a BERT encoder")
    act = raw.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_python"):
        raise NotRecognized(f"{path}: activation {act!r} is not supported (only erf GELU)")
    pet = raw.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise NotRecognized(f"{path}: position_embedding_type {pet!r} is not supported")
    try:
        cfg = {
            "vocab": int(raw["vocab_size"]),
            "hidden": int(raw["hidden_size"]),
            "heads": int(raw["num_attention_heads"]),
            "intermediate": int(raw["intermediate_size"]),
            "layers": int(raw["num_hidden_layers"]),
            "max_position": int(raw.get("max_position_embeddings", 512)),
            "type_vocab": int(raw.get("type_vocab_size", 2)),
            "eps": float(raw.get("layer_norm_eps", 1e-12)),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise NotRecognized(f"{path}: missing or bad field ({e})") from None
    return cfg


def check_params(cfg: dict, params: dict) -> None:
    """Raises NotRecognized unless every array is present with the shape cfg implies."""
    h, inter = cfg["hidden"], cfg["intermediate"]
    if cfg["heads"] <= 0 or h % cfg["heads"]:
        raise NotRecognized(f"hidden size {h} is not a multiple of {cfg['heads']} heads")
    want = {"word": (cfg["vocab"], h), "pos": (cfg["max_position"], h),
            "type": (cfg["type_vocab"], h), "emb_g": (h,), "emb_b": (h,)}
    shapes = {"q_w": (h, h), "k_w": (h, h), "v_w": (h, h), "ao_w": (h, h), "up_w": (inter, h),
              "down_w": (h, inter), "up_b": (inter,)}
    for i in range(cfg["layers"]):
        for key in LAYER_KEYS:
            want[f"{i}.{key}"] = shapes.get(key, (h,))
    for name, shape in want.items():
        arr = params.get(name)
        if arr is None:
            raise NotRecognized(f"missing weight {name}")
        if tuple(arr.shape) != tuple(shape):
            raise NotRecognized(f"weight {name} has shape {tuple(arr.shape)}, expected {shape}")
        if arr.dtype != np.float32:
            params[name] = arr.astype(np.float32)
        if not np.isfinite(params[name]).all():
            raise NotRecognized(f"weight {name} holds NaN or infinity")


# ---------------------------------------------------------------------------------------------
# safetensors

def read_safetensors(path) -> dict:
    """name -> numpy array (floating tensors as float32), via the shared safetensors reader;
    a malformed file is NotRecognized."""
    try:
        return _safetensors_io.read_safetensors(path)
    except _safetensors_io.SafetensorsError as e:
        raise NotRecognized(str(e)) from None


def params_from_safetensors(path, cfg: dict) -> dict:
    """Canonical params from a Hugging Face BertModel (or BertFor*) safetensors checkpoint."""
    tensors = read_safetensors(path)
    prefix = ""
    for cand in ("", "bert.", "model.", "encoder.", "0.auto_model."):
        if cand + "embeddings.word_embeddings.weight" in tensors:
            prefix = cand
            break
    else:
        raise NotRecognized(f"{path}: no embeddings.word_embeddings.weight: not a BERT checkpoint")

    def get(name):
        for cand in (name, name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
                "LayerNorm.bias", "LayerNorm.beta")):
            if prefix + cand in tensors:
                return tensors[prefix + cand]
        raise NotRecognized(f"{path}: missing tensor {prefix + name}")

    p = {"word": get("embeddings.word_embeddings.weight"),
         "pos": get("embeddings.position_embeddings.weight"),
         "emb_g": get("embeddings.LayerNorm.weight"), "emb_b": get("embeddings.LayerNorm.bias")}
    try:
        p["type"] = get("embeddings.token_type_embeddings.weight")
    except NotRecognized:
        p["type"] = np.zeros((1, p["word"].shape[1]), np.float32)
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense"}
    for i in range(cfg["layers"]):
        pre = f"encoder.layer.{i}."
        for key, mod in names.items():
            p[f"{i}.{key}_w"] = get(pre + mod + ".weight")
            p[f"{i}.{key}_b"] = get(pre + mod + ".bias")
        p[f"{i}.ln1_g"] = get(pre + "attention.output.LayerNorm.weight")
        p[f"{i}.ln1_b"] = get(pre + "attention.output.LayerNorm.bias")
        p[f"{i}.ln2_g"] = get(pre + "output.LayerNorm.weight")
        p[f"{i}.ln2_b"] = get(pre + "output.LayerNorm.bias")
    if f"{prefix}encoder.layer.{cfg['layers']}.attention.self.query.weight" in tensors:
        raise NotRecognized(f"{path}: holds more layers than config.json says")
    cfg = dict(cfg)
    cfg["type_vocab"] = p["type"].shape[0]
    check_params(cfg, p)
    return cfg, p


# ---------------------------------------------------------------------------------------------
# ONNX

class _Graph:
    def __init__(self, model):
        from onnx import numpy_helper

        self.nh = numpy_helper
        g = model.graph
        self.g = g
        self.inits = {i.name: i for i in g.initializer}
        self.const_nodes = {}
        self.producer = {}
        self.consumers = {}
        for node in g.node:
            for o in node.output:
                self.producer[o] = node
            for i in node.input:
                self.consumers.setdefault(i, []).append(node)
            if node.op_type == "Constant":
                self.const_nodes[node.output[0]] = node
        self.inputs = {i.name for i in g.input}
        self._cache = {}

    def users(self, name):
        return self.consumers.get(name, [])

    @staticmethod
    def attr(node, name, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def const(self, name):
        """The value of a tensor computed from constants only (through Transpose, Cast,
        Identity, DequantizeLinear, Reshape, Unsqueeze), else None."""
        if name in self._cache:
            return self._cache[name]
        val = None
        if name in self.inits:
            val = self.nh.to_array(self.inits[name])
        elif name in self.const_nodes:
            t = self.attr(self.const_nodes[name], "value")
            if t is not None:
                val = self.nh.to_array(t)
        elif name in self.producer:
            node = self.producer[name]
            ins = [self.const(i) if i else None for i in node.input]
            if node.op_type in ("Identity", "Cast") and ins and ins[0] is not None:
                val = ins[0]
                if node.op_type == "Cast":
                    val = val.astype(np.float32) if val.dtype.kind == "f" else val
            elif node.op_type == "Transpose" and ins[0] is not None:
                perm = self.attr(node, "perm")
                val = np.transpose(ins[0], perm)
            elif node.op_type == "DequantizeLinear" and ins[0] is not None and ins[1] is not None:
                x = ins[0].astype(np.float32)
                zp = ins[2].astype(np.float32) if len(ins) > 2 and ins[2] is not None else 0.0
                s = ins[1].astype(np.float32)
                axis = self.attr(node, "axis", 1)
                if np.ndim(s) == 1 and x.ndim > 1:
                    shape = [1] * x.ndim
                    shape[axis] = -1
                    s = s.reshape(shape)
                    zp = np.reshape(zp, shape) if np.ndim(zp) == 1 else zp
                val = (x - zp) * s
        self._cache[name] = val
        return val

    def scalar(self, name):
        v = self.const(name)
        if v is None or v.size != 1:
            return None
        return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])


def _linear_from(G: _Graph, x: str):
    """Every linear layer (x @ W + b) reading tensor x: a list of (out_tensor, W[out, in], b)."""
    found = []
    for node in G.users(x):
        if node.op_type == "MatMul" and node.input[0] == x:
            w = G.const(node.input[1])
            if w is None or w.ndim != 2:
                continue
            found.append(_with_bias(G, node.output[0], w.astype(np.float32)))
        elif node.op_type == "DynamicQuantizeLinear":
            xq, xs, xzp = node.output[:3]
            for mm in G.users(xq):
                if mm.op_type != "MatMulInteger" or mm.input[0] != xq:
                    continue
                wq = G.const(mm.input[1])
                if wq is None or wq.ndim != 2:
                    raise NotRecognized(f"MatMulInteger {mm.name!r}: weight is not a constant matrix")
                wzp = G.const(mm.input[3]) if len(mm.input) > 3 and mm.input[3] else None
                out = mm.output[0]
                # Cast -> Mul(., xs * w_scale)
                cast = [u for u in G.users(out) if u.op_type == "Cast"]
                if len(cast) != 1:
                    raise NotRecognized(f"MatMulInteger {mm.name!r}: expected a Cast after it")
                mul = [u for u in G.users(cast[0].output[0]) if u.op_type == "Mul"]
                if len(mul) != 1:
                    raise NotRecognized(f"MatMulInteger {mm.name!r}: expected a scale Mul after it")
                other = [i for i in mul[0].input if i != cast[0].output[0]][0]
                smul = G.producer.get(other)
                if smul is None or smul.op_type != "Mul" or xs not in smul.input:
                    raise NotRecognized(f"MatMulInteger {mm.name!r}: unexpected scale computation")
                ws = G.const([i for i in smul.input if i != xs][0])
                if ws is None:
                    raise NotRecognized(f"MatMulInteger {mm.name!r}: weight scale is not constant")
                w = wq.astype(np.float32)
                if wzp is not None:
                    w = w - np.asarray(wzp, np.float32).reshape(1, -1)
                w = w * np.asarray(ws, np.float32).reshape(1, -1)
                found.append(_with_bias(G, mul[0].output[0], w))
    return found


def _with_bias(G: _Graph, mm_out: str, w_in_out: np.ndarray):
    """Follows an optional Add(bias) after a matrix product; returns (out, W[out, in], b)."""
    w = np.ascontiguousarray(w_in_out.T, dtype=np.float32)
    users = G.users(mm_out)
    if len(users) == 1 and users[0].op_type == "Add":
        other = [i for i in users[0].input if i != mm_out]
        b = G.const(other[0]) if other else None
        if b is not None and b.ndim == 1 and b.shape[0] == w.shape[0]:
            return users[0].output[0], w, b.astype(np.float32)
    return mm_out, w, np.zeros(w.shape[0], np.float32)


_SHAPE_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity")


def _follow_to_matmul(G: _Graph, t: str):
    """From tensor t through shape ops and scalar Mul/Div to a MatMul. Returns
    (matmul node, input index, scalar factor)."""
    factor = 1.0
    for _ in range(16):
        users = [u for u in G.users(t) if u.op_type not in ("Shape",)]
        if len(users) != 1:
            raise NotRecognized(f"tensor {t!r}: expected one consumer on the attention path")
        u = users[0]
        if u.op_type == "MatMul":
            return u, list(u.input).index(t), factor
        if u.op_type in _SHAPE_OPS:
            t = u.output[0]
        elif u.op_type in ("Mul", "Div"):
            other = [i for i in u.input if i != t][0]
            s = G.scalar(other)
            if s is None:
                raise NotRecognized(f"{u.op_type} {u.name!r} on the attention path is not by a constant")
            factor *= s if u.op_type == "Mul" else 1.0 / s
            t = u.output[0]
        else:
            raise NotRecognized(f"unexpected {u.op_type} {u.name!r} on the attention path")
    raise NotRecognized("attention path too long")


def _layernorm_after_residual(G: _Graph, t: str, residual: str):
    """t -> Add(t, residual) -> LayerNormalization. Returns (ln_out, gamma, beta, eps)."""
    users = G.users(t)
    add = [u for u in users if u.op_type == "Add" and residual in u.input]
    if len(add) != 1:
        raise NotRecognized(f"tensor {t!r}: expected a residual Add")
    return _layernorm(G, add[0].output[0])


def _layernorm(G: _Graph, t: str):
    users = G.users(t)
    ln = [u for u in users if u.op_type == "LayerNormalization"]
    if len(ln) != 1:
        if any(u.op_type == "ReduceMean" for u in users):
            raise NotRecognized("LayerNorm is decomposed into primitive ops; export with opset >= 17")
        raise NotRecognized(f"tensor {t!r}: expected a LayerNormalization")
    node = ln[0]
    g = G.const(node.input[1])
    b = G.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if g is None:
        raise NotRecognized(f"LayerNormalization {node.name!r}: scale is not constant")
    if b is None:
        b = np.zeros_like(g)
    if G.attr(node, "axis", -1) not in (-1, len(g.shape) and -1):
        raise NotRecognized(f"LayerNormalization {node.name!r}: axis is not the last one")
    eps = float(G.attr(node, "epsilon", 1e-5))
    return node.output[0], g.astype(np.float32), b.astype(np.float32), eps


def _gelu_from(G: _Graph, t: str):
    """t -> erf GELU subgraph -> the tensor the next linear reads. Returns that tensor."""
    seen = set()
    frontier = [t]
    ops = []
    outs = set()
    for _ in range(12):
        nxt = []
        for x in frontier:
            if x != t and _linear_from(G, x):
                outs.add(x)
                continue
            for u in G.users(x):
                if id(u) in seen:
                    continue
                seen.add(id(u))
                ops.append(u.op_type)
                if u.op_type == "Tanh":
                    raise NotRecognized("tanh-approximated GELU is not supported")
                if u.op_type not in ("Div", "Mul", "Erf", "Add"):
                    raise NotRecognized(f"unexpected {u.op_type} {u.name!r} in the activation")
                nxt.append(u.output[0])
        if not nxt:
            break
        frontier = nxt
    if len(outs) != 1:
        raise NotRecognized("could not find the feed-forward activation output")
    if sorted(ops) not in (sorted(["Div", "Erf", "Add", "Mul", "Mul"]),
                           sorted(["Mul", "Erf", "Add", "Mul", "Mul"])):
        raise NotRecognized(f"feed-forward activation is not the erf GELU (ops {ops})")
    return outs.pop()


def params_from_onnx(path, cfg: dict | None) -> tuple:
    """Canonical (cfg, params) from an ONNX export of BertModel (fp32 or dynamic int8)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises several types on a bad file
        raise NotRecognized(f"{path}: cannot be read as ONNX ({e})") from None
    G = _Graph(model)
    if "input_ids" not in G.inputs:
        raise NotRecognized(f"{path}: no input named input_ids")

    # Embeddings: Gathers of constant tables added together, then LayerNormalization.
    word = pos = typ = None
    emb_sum = None
    for node in G.g.node:
        if node.op_type != "Gather":
            continue
        table = G.const(node.input[0])
        if table is None or table.ndim != 2:
            continue
        out = node.output[0]
        users = G.users(out)
        if len(users) == 1 and users[0].op_type == "DequantizeLinear":
            table = G.const(node.input[0]).astype(np.float32)
            dq = users[0]
            s = G.const(dq.input[1])
            zp = G.const(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else 0
            table = (table - np.float32(np.asarray(zp, np.float32))) * np.float32(np.asarray(s, np.float32))
            out = dq.output[0]
        idx = node.input[1]
        if idx == "input_ids":
            word = table.astype(np.float32)
        elif idx == "token_type_ids":
            typ = table.astype(np.float32)
        else:
            pos = table.astype(np.float32)
        # find the LayerNormalization below the Add chain
        t = out
        for _ in range(4):
            us = G.users(t)
            if len(us) != 1:
                break
            if us[0].op_type == "LayerNormalization":
                emb_sum = t
                break
            if us[0].op_type != "Add":
                break
            t = us[0].output[0]
    if word is None:
        raise NotRecognized(f"{path}: no word-embedding Gather on input_ids")
    if pos is None:
        raise NotRecognized(f"{path}: no position-embedding Gather")
    if emb_sum is None:
        raise NotRecognized(f"{path}: embeddings are not followed by a LayerNormalization")
    if typ is None:
        typ = np.zeros((1, word.shape[1]), np.float32)
    hcur, emb_g, emb_b, eps = _layernorm(G, emb_sum)
    hidden = word.shape[1]
    params = {"word": word, "pos": pos, "type": typ, "emb_g": emb_g, "emb_b": emb_b}

    layer = 0
    heads_seen = None
    while True:
        lins = _linear_from(G, hcur)
        if not lins:
            break
        if len(lins) != 3:
            raise NotRecognized(f"layer {layer}: expected 3 projections (Q, K, V), found {len(lins)}")
        roles = {}
        for out, w, b in lins:
            mm, idx, factor = _follow_to_matmul(G, out)
            roles[(mm.name or mm.output[0], idx)] = (out, w, b, factor, mm)
        by_mm = {}
        for (mmname, idx), v in roles.items():
            by_mm.setdefault(mmname, {})[idx] = v
        scores = [d for d in by_mm.values() if set(d) == {0, 1}]
        ctxmm = [d for d in by_mm.values() if set(d) == {1}]
        if len(scores) != 1 or len(ctxmm) != 1:
            raise NotRecognized(f"layer {layer}: Q, K, V do not form an attention block")
        q = scores[0][0]
        k = scores[0][1]
        v = ctxmm[0][1]
        score_mm, ctx_mm = q[4], v[4]
        # scores -> (Add mask / Div / Mul) -> Softmax -> (IsNaN/Where) -> context MatMul
        t = score_mm.output[0]
        qk_factor = q[3] * k[3]
        softmax_seen = False
        for _ in range(8):
            us = [u for u in G.users(t) if u.op_type not in ("Shape", "IsNaN")]
            if len(us) != 1:
                raise NotRecognized(f"layer {layer}: attention scores have {len(us)} consumers")
            u = us[0]
            if u is ctx_mm:
                break
            if u.op_type == "Softmax":
                if G.attr(u, "axis", -1) not in (-1, 3):
                    raise NotRecognized(f"layer {layer}: Softmax is not over the last axis")
                softmax_seen = True
            elif u.op_type in ("Mul", "Div") and not softmax_seen:
                other = [i for i in u.input if i != t][0]
                s = G.scalar(other)
                if s is None:
                    raise NotRecognized(f"layer {layer}: attention scores scaled by a non-constant")
                qk_factor *= s if u.op_type == "Mul" else 1.0 / s
            elif u.op_type == "Add" and not softmax_seen:
                pass  # the attention mask
            elif u.op_type == "Where" and softmax_seen:
                pass  # NaN guard of fully masked rows
            else:
                raise NotRecognized(f"layer {layer}: unexpected {u.op_type} in attention")
            t = u.output[0]
        else:
            raise NotRecognized(f"layer {layer}: attention path too long")
        if not softmax_seen:
            raise NotRecognized(f"layer {layer}: no Softmax in attention")
        if v[3] != 1.0:
            raise NotRecognized(f"layer {layer}: values are scaled")
        # context -> shape ops -> attention output linear
        t = ctx_mm.output[0]
        for _ in range(6):
            if _linear_from(G, t):
                break
            us = [u for u in G.users(t) if u.op_type != "Shape"]
            if len(us) != 1 or us[0].op_type not in _SHAPE_OPS:
                raise NotRecognized(f"layer {layer}: unexpected ops after the attention context")
            t = us[0].output[0]
        ao = _linear_from(G, t)
        if len(ao) != 1:
            raise NotRecognized(f"layer {layer}: no attention output projection")
        ao_out, ao_w, ao_b = ao[0]
        h1, ln1_g, ln1_b, _ = _layernorm_after_residual(G, ao_out, hcur)
        up = _linear_from(G, h1)
        if len(up) != 1:
            raise NotRecognized(f"layer {layer}: expected one intermediate projection")
        up_out, up_w, up_b = up[0]
        g_out = _gelu_from(G, up_out)
        down = _linear_from(G, g_out)
        if len(down) != 1:
            raise NotRecognized(f"layer {layer}: expected one output projection")
        down_out, down_w, down_b = down[0]
        hnext, ln2_g, ln2_b, _ = _layernorm_after_residual(G, down_out, h1)

        head_dim = round(1.0 / (qk_factor * qk_factor)) if qk_factor > 0 else 0
        if head_dim <= 0 or hidden % head_dim or abs(qk_factor - head_dim ** -0.5) > 1e-4 * qk_factor:
            raise NotRecognized(f"layer {layer}: attention scale {qk_factor} is not 1/sqrt(head_dim)")
        heads = hidden // head_dim
        if heads_seen is not None and heads != heads_seen:
            raise NotRecognized("layers differ in their number of heads")
        heads_seen = heads
        P = params
        P[f"{layer}.q_w"], P[f"{layer}.q_b"] = q[1], q[2]
        P[f"{layer}.k_w"], P[f"{layer}.k_b"] = k[1], k[2]
        P[f"{layer}.v_w"], P[f"{layer}.v_b"] = v[1], v[2]
        P[f"{layer}.ao_w"], P[f"{layer}.ao_b"] = ao_w, ao_b
        P[f"{layer}.ln1_g"], P[f"{layer}.ln1_b"] = ln1_g, ln1_b
        P[f"{layer}.up_w"], P[f"{layer}.up_b"] = up_w, up_b
        P[f"{layer}.down_w"], P[f"{layer}.down_b"] = down_w, down_b
        P[f"{layer}.ln2_g"], P[f"{layer}.ln2_b"] = ln2_g, ln2_b
        hcur = hnext
        layer += 1
    if layer == 0:
        raise NotRecognized(f"{path}: no transformer layer found after the embeddings")
    outs = [o.name for o in G.g.output]
    if hcur not in outs and not any(u.op_type in ("Identity",) for u in G.users(hcur)):
        raise NotRecognized(f"{path}: the last layer's output is not a graph output")

    found = {"vocab": word.shape[0], "hidden": hidden, "heads": heads_seen,
             "intermediate": params["0.up_w"].shape[0], "layers": layer,
             "max_position": pos.shape[0], "type_vocab": typ.shape[0], "eps": eps}
    if cfg is not None:
        for key in ("hidden", "heads", "intermediate", "layers", "vocab"):
            if cfg[key] != found[key]:
                raise NotRecognized(f"{path}: the graph has {key} = {found[key]} but config.json "
                                    f"says {cfg[key]}")
        found["eps"] = cfg["eps"]
    check_params(found, params)
    return found, params
