"""Reading weights for the native engine: Hugging Face config.json and safetensors checkpoints
of every family (read with json + numpy, by the family loaders in arch/), and BERT ONNX graphs:
exports of BertModel in fp32 or float16, their onnxruntime int8 quantizations (dynamic, or
static QDQ), and onnxruntime's transformer fusions. The ONNX reader follows what the graph
computes (what each embedding Gather's index is, the LayerNorms, the attention and the
activation) and refuses, naming the node, what it cannot place.

Every reader returns the same canonical form: ``(cfg, params)`` where ``cfg`` holds ``vocab,
hidden, heads, intermediate, layers, max_position, type_vocab, eps``, the family and its spec
(``family``, ``position``, ``padding_idx``, ``attention_bias``: see arch/) (and, from a graph,
``graph_precision``: "fp32", "float16" or "int8", and ``external_data``: the names of its weight
files) and ``params`` maps names
to float32 arrays in PyTorch layout ([out, in] for matrices)::

    word, pos (absent for rotary positions), type (absent without token types), emb_g, emb_b,
    rel_bias (MPNet)
    L.q_w L.q_b L.k_w L.k_b L.v_w L.v_b L.ao_w L.ao_b L.ln1_g L.ln1_b
    L.up_w L.up_b L.down_w L.down_b L.ln2_g L.ln2_b          (L = layer index)
    L.gate_w                     (SwiGLU: silu(gate_w x) * (up_w x); GeGLU: gelu(up_w x) * (gate_w x))
    final_g final_b              (pre-LayerNorm: after the last layer; L.ln1_* may be absent)

(a family without biases, cfg["linear_bias"] False, has none of the L.*_b of the linears)

Anything that is not an encoder the engine understands raises NotRecognized with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np



class NotRecognized(ValueError):
    """The graph or checkpoint is not an encoder the native engine understands."""


LAYER_KEYS = ("q_w", "q_b", "k_w", "k_b", "v_w", "v_b", "ao_w", "ao_b", "ln1_g", "ln1_b",
              "up_w", "up_b", "down_w", "down_b", "ln2_g", "ln2_b")


# ---------------------------------------------------------------------------------------------
# config.json

def read_hf_config(model_dir) -> dict | None:
    """The engine's config (sizes and spec) from a Hugging Face config.json, by its family
    (arch/, keyed by model_type), or None when there is none."""
    from . import arch

    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise NotRecognized(f"{path}: cannot be read ({e})") from None
    if not isinstance(raw, dict):
        raise NotRecognized(f"{path}: not a JSON object")
    mt = raw.get("model_type")
    cfg = arch.family(mt, path, raw).config(raw, path)
    cfg.setdefault("family", "bert")
    return cfg


def check_params(cfg: dict, params: dict) -> None:
    """Raises NotRecognized unless every array is present with the shape cfg implies."""
    from . import arch

    h, inter = cfg["hidden"], cfg["intermediate"]
    if cfg["heads"] <= 0 or h % cfg["heads"]:
        raise NotRecognized(f"hidden size {h} is not a multiple of {cfg['heads']} heads")
    want = {"word": (cfg["vocab"], h), "emb_g": (h,), "emb_b": (h,)}
    if arch.has_position_table(cfg):
        want["pos"] = (cfg["max_position"], h)
    if cfg.get("type_vocab", 0) > 0:
        want["type"] = (cfg["type_vocab"], h)
    shapes = {"q_w": (h, h), "k_w": (h, h), "v_w": (h, h), "ao_w": (h, h), "up_w": (inter, h),
              "down_w": (h, inter), "up_b": (inter,), "gate_w": (inter, h)}
    keys = [k for k in LAYER_KEYS if cfg.get("linear_bias", True) or k[:-2] in ("ln1", "ln2")
            or not k.endswith("_b")]
    if cfg.get("ffn", "gelu") != "gelu":
        keys.append("gate_w")
    if not cfg.get("up_bias", True):  # JinaBert: biases everywhere but the gated up product
        keys = [k for k in keys if k != "up_b"]
    pre = cfg.get("norm", "post") == "pre"
    if pre:
        want.update(final_g=(h,), final_b=(h,))
    for i in range(cfg["layers"]):
        for key in keys:
            if pre and key in ("ln1_g", "ln1_b") and f"{i}.ln1_g" not in params:
                continue  # a pre-LayerNorm layer may read its input as it is
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
    """name -> numpy array (floating tensors as float32) of a safetensors file, or of a sharded
    checkpoint's index; a malformed file is NotRecognized."""
    from .arch.checkpoint import read_tensors

    return read_tensors(path)


def params_from_safetensors(path, cfg: dict) -> tuple:
    """Canonical (cfg, params) from a safetensors checkpoint, by the family of cfg."""
    from . import arch

    return arch.FAMILIES[cfg.get("family", "bert")].params(read_safetensors(path), cfg, path)


# ---------------------------------------------------------------------------------------------
# ONNX

_ELEMENTWISE = {"Sqrt": np.sqrt, "Reciprocal": np.reciprocal, "Neg": np.negative,
                "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide,
                "Pow": np.power}


# onnxruntime's contrib operators that the recogniser reads by position (whatever domain a
# malformed graph gives them); EmbedLayerNormalization and Attention are padded where read.
_CONTRIB_MIN_INPUTS = {"SkipLayerNormalization": 3, "BiasGelu": 2, "FusedMatMul": 2,
                       "Attention": 2}


def _check_arity(model) -> None:
    """Raises NotRecognized for a node with fewer inputs or outputs than its operator takes (by
    the ONNX schema at the model's opset; a node without a schema needs one output), so that
    a malformed graph is declined rather than read past a node's inputs."""
    from onnx import defs

    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    for node in model.graph.node:
        need_in, need_out = 0, 1
        domain = node.domain or "ai.onnx"
        if domain in ("ai.onnx", "ai.onnx.ml") and domain in opsets:
            try:
                schema = defs.get_schema(node.op_type, opsets[domain], node.domain)
            except Exception:  # onnx's SchemaError: an operator it does not know
                schema = None
            if schema is not None:
                need_in, need_out = schema.min_input, max(1, schema.min_output)
        if need_in == 0:  # no ONNX schema: onnxruntime's operators by their own arity
            need_in = _CONTRIB_MIN_INPUTS.get(node.op_type, 0)
        if len(node.input) < need_in or len(node.output) < need_out:
            raise NotRecognized(f"{node.op_type} node {node.name!r}: {len(node.input)} inputs and "
                                f"{len(node.output)} outputs, the operator takes at least {need_in} and "
                                f"{need_out}; the graph is malformed")


class _Graph:
    """Read-only view of an ONNX graph: producers, consumers and constant folding.

    Quantize/dequantize pairs on activations (static QDQ int8) are made transparent: a
    DequantizeLinear fed by a QuantizeLinear of a computed tensor reads as that tensor. The
    engine then runs those activations unquantized."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.nh = numpy_helper
        g = model.graph
        _check_arity(model)
        self.g = g
        self.inits = {i.name: i for i in g.initializer}
        self.inputs = {i.name for i in g.input} - set(self.inits)
        self._index(list(g.node))
        self.alias = {}
        drop = set()
        for node in self.nodes:
            if node.op_type != "DequantizeLinear":
                continue
            q = self.producer.get(node.input[0])
            if q is None or q.op_type != "QuantizeLinear" or self.const(q.input[0]) is not None:
                continue
            self.alias[node.output[0]] = q.input[0]
            drop.add(id(node))
            if all(u.op_type == "DequantizeLinear" for u in self.users(q.output[0])):
                drop.add(id(q))
        if self.alias:
            for node in self.nodes:
                for i, name in enumerate(node.input):
                    if name in self.alias:
                        node.input[i] = self.alias[name]
            self._index([n for n in self.nodes if id(n) not in drop])
        self.outputs = [self.alias.get(o.name, o.name) for o in g.output]

    def _index(self, nodes):
        self.nodes = nodes
        self.const_nodes = {}
        self.producer = {}
        self.consumers = {}
        for node in nodes:
            for o in node.output:
                self.producer[o] = node
            for i in node.input:
                if i:
                    self.consumers.setdefault(i, []).append(node)
            if node.op_type == "Constant":
                self.const_nodes[node.output[0]] = node
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

    @classmethod
    def number(cls, node, name, default):
        """A numeric attribute as a float (`default` when absent); NotRecognized when the
        attribute holds something else (a string, a list, no value, inf or nan)."""
        v = cls.attr(node, name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(float(v)):
            raise NotRecognized(f"{cls.describe(node)}: attribute {name!r} is {v!r}, not a "
                                "finite number")
        return float(v)

    @staticmethod
    def describe(node):
        return f"{node.op_type} {node.name or node.output[0]!r}"

    def tensor(self, t, name):
        """A TensorProto's value; NotRecognized when it cannot be read (an undefined element
        type, data that does not match its dims)."""
        try:
            return self.nh.to_array(t)
        except Exception as e:  # onnx raises TypeError or ValueError, numpy ValueError
            raise NotRecognized(f"tensor {name!r}: cannot be read ({type(e).__name__}: {e})") from None

    def const(self, name):
        """The value of a tensor computed from constants only (through Identity, Cast,
        Transpose, Reshape, Unsqueeze, Squeeze, DequantizeLinear), else None."""
        if name in self._cache:
            return self._cache[name]
        val = None
        if name in self.inits:
            val = self.tensor(self.inits[name], name)
        elif name in self.const_nodes:
            t = self.attr(self.const_nodes[name], "value")
            if t is not None:
                val = self.tensor(t, name)
        elif name in self.producer:
            node = self.producer[name]
            self._cache[name] = None  # a cycle (a malformed graph) reads as not constant
            try:
                val = self._fold(node)
            except NotRecognized:
                raise
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
                # a malformed node on constants (a Cast without its type, a bad perm or shape)
                raise NotRecognized(f"{self.describe(node)}: cannot be folded as a constant "
                                    f"({type(e).__name__}: {e})") from None
        self._cache[name] = val
        return val

    def _fold(self, node):
        from onnx import helper

        op = node.op_type
        if op in _ELEMENTWISE:  # arithmetic on constants (graphs exported without folding)
            args = [self.const(i) for i in node.input]
            if any(a is None for a in args) or any(a.size > 1 << 16 for a in args):
                return None
            args = [np.asarray(a) for a in args]
            if op == "Div" and all(a.dtype.kind in "iu" for a in args):
                return np.trunc(args[0] / args[1]).astype(np.result_type(*args))
            with np.errstate(all="ignore"):
                y = _ELEMENTWISE[op](*args)
            return np.asarray(y).astype(np.result_type(*args))
        if op in ("Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze",
                  "DequantizeLinear"):
            x = self.const(node.input[0])
            if x is None:
                return None
        else:
            return None
        if op == "Identity":
            return x
        if op == "Cast":
            to = helper.tensor_dtype_to_np_dtype(self.attr(node, "to"))
            # A float target rounds through that precision (what onnxruntime computes with)
            # and is then held as float32.
            y = np.asarray(x).astype(to)
            return y.astype(np.float32) if y.dtype.kind == "f" else y
        if op == "Transpose":
            return np.transpose(x, self.attr(node, "perm"))
        if op in ("Reshape", "Unsqueeze", "Squeeze"):
            axes = self.attr(node, "axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self.const(node.input[1])
                if axes is None:
                    return None
            if op == "Reshape":
                shape = [int(s) for s in np.asarray(axes).reshape(-1)]
                shape = [x.shape[i] if s == 0 and not self.attr(node, "allowzero", 0) else s
                         for i, s in enumerate(shape)]
                return x.reshape(shape)
            if op == "Unsqueeze":
                for a in sorted(int(a) % (x.ndim + len(axes)) for a in np.asarray(axes).reshape(-1)):
                    x = np.expand_dims(x, a)
                return x
            if axes is None:
                return np.squeeze(x)
            return np.squeeze(x, tuple(int(a) for a in np.asarray(axes).reshape(-1)))
        # DequantizeLinear of a constant (weights of QDQ and weight-only int8 graphs)
        if self.attr(node, "block_size", 0):
            raise NotRecognized(f"{self.describe(node)}: blocked quantization is not supported")
        s = self.const(node.input[1]) if len(node.input) > 1 else None
        if s is None:
            return None
        zp = self.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        xf = x.astype(np.float32)
        s = np.asarray(s, np.float32)
        zpf = np.asarray(zp, np.float32) if zp is not None else np.float32(0)
        if s.ndim == 1 and s.size > 1:
            axis = int(self.attr(node, "axis", 1)) % xf.ndim
            if xf.shape[axis] != s.size:
                raise NotRecognized(f"{self.describe(node)}: {s.size} scales for axis {axis} "
                                    f"of a {xf.shape} tensor")
            shape = [1] * xf.ndim
            shape[axis] = -1
            s = s.reshape(shape)
            if zpf.ndim == 1:
                zpf = zpf.reshape(shape)
        return (xf - zpf) * s

    def scalar(self, name):
        v = self.const(name)
        if v is None or v.size != 1:
            return None
        return float(np.asarray(v, dtype=np.float64).reshape(-1)[0])

    def root(self, name, through=("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape",
                                  "Flatten")):
        """Walks up through value-preserving ops; returns (tensor, producer or None)."""
        for _ in range(32):
            node = self.producer.get(name)
            if node is None or node.op_type not in through:
                return name, node
            name = node.input[0]
        return name, self.producer.get(name)


def _reciprocal(s: float, what: str) -> float:
    if s == 0.0 or not np.isfinite(s):
        raise NotRecognized(f"{what}: divides by {s}")
    return 1.0 / s


def _close(a, b, rel=2e-3):
    """Equal within the rounding of a float16 constant."""
    return abs(a - b) <= rel * abs(b)


# ---------------------------------------------------------------------------------------------
# Embeddings: what each Gather's index is

_DATA_MOVEMENT = ("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand",
                  "Slice", "Gather", "GatherElements", "Tile", "Transpose")
_SEQ_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


def _value_set(G: _Graph, t: str, depth=0):
    """The values a tensor can take when it only moves values of a constant around (Expand,
    Slice, Gather, ... of a constant, ConstantOfShape): a sorted array; else None."""
    c = G.const(t)
    if c is not None:
        return np.unique(c)
    node = G.producer.get(t)
    if node is None or depth > 32:
        return None
    if node.op_type == "ConstantOfShape":
        v = G.attr(node, "value")
        return np.unique(G.tensor(v, t)) if v is not None else np.zeros(1, np.float32)
    if node.op_type in _DATA_MOVEMENT:
        return _value_set(G, node.input[0], depth + 1)
    return None


def _is_seq_len(G: _Graph, t: str) -> bool:
    """t is the sequence length: dimension 1 of an input of shape [batch, sequence]."""
    for _ in range(16):
        node = G.producer.get(t)
        if node is None:
            return False
        op = node.op_type
        if op in ("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape") or (
                op == "Concat" and len(node.input) == 1):
            t = node.input[0]
        elif op in ("Add", "Sub") and G.scalar(node.input[1]) == 0:
            t = node.input[0]
        elif op == "Add" and G.scalar(node.input[0]) == 0:
            t = node.input[1]
        elif op == "Gather":
            shp = G.producer.get(node.input[0])
            return (G.scalar(node.input[1]) == 1 and shp is not None and shp.op_type == "Shape"
                    and not G.attr(shp, "start", 0) and _is_seq_tensor(G, shp.input[0]))
        elif op == "Slice":
            shp = G.producer.get(node.input[0])
            st = G.scalar(node.input[1])
            en = G.scalar(node.input[2])
            return (st == 1 and en == 2 and shp is not None and shp.op_type == "Shape"
                    and not G.attr(shp, "start", 0) and _is_seq_tensor(G, shp.input[0]))
        elif op == "Shape":
            return (G.attr(node, "start", 0) == 1 and G.attr(node, "end") == 2
                    and _is_seq_tensor(G, node.input[0]))
        else:
            return False
    return False


def _is_seq_tensor(G: _Graph, t: str) -> bool:
    """t is a graph input of shape [batch, sequence] (possibly cast), or the word embeddings
    gathered from input_ids ([batch, sequence, hidden])."""
    r, node = G.root(t, through=("Cast", "Identity"))
    if r in _SEQ_INPUTS and r in G.inputs:
        return True
    if node is not None and node.op_type == "Gather" and G.const(node.input[0]) is not None:
        return G.root(node.input[1], through=("Cast", "Identity"))[0] == "input_ids"
    return False


def _positions_reason(G: _Graph, idx: str):
    """None when idx is 0, 1, ..., L-1 along the sequence (L = the sequence length), else why
    not."""
    c = G.const(idx)
    if c is not None:
        flat = np.asarray(c).reshape(-1)
        if c.ndim and c.shape[-1] == flat.size and np.array_equal(flat, np.arange(flat.size)):
            return None
        return f"the constant index is not 0, 1, 2, ... (starts {flat[:4].tolist()})"
    t, node = G.root(idx, through=("Cast", "Identity", "Unsqueeze", "Reshape", "Expand"))
    if node is None:
        if t == "position_ids" and t in G.inputs:
            return None  # fed 0..L-1 by embedrt's onnxruntime backend too
        return f"it is the graph input {t!r}"
    if node.op_type == "Range":
        start, limit, delta = node.input[:3]
        s, d = G.scalar(start), G.scalar(delta)
        if s != 0 or d != 1:
            return f"{G.describe(node)} counts from {s} in steps of {d}, not from 0 in steps of 1"
        if not _is_seq_len(G, limit):
            return f"{G.describe(node)}: its limit is not the sequence length"
        return None
    if node.op_type == "Slice":
        data = G.const(node.input[0])
        if data is None:
            return f"{G.describe(node)} slices a computed tensor"
        ins = list(node.input) + [""] * (5 - len(node.input))
        starts = G.const(ins[1])
        axes = G.const(ins[3]) if ins[3] else np.arange(np.size(starts))
        steps = G.const(ins[4]) if ins[4] else np.ones(np.size(starts), np.int64)
        if starts is None or axes is None or steps is None or np.size(starts) != 1:
            return f"{G.describe(node)}: the slice is not one constant range"
        if any(np.asarray(v).dtype.kind not in "iu" or np.size(v) < 1 for v in (starts, axes, steps)):
            return f"{G.describe(node)}: the slice's starts, axes and steps are not integers"
        axis = int(np.asarray(axes).reshape(-1)[0]) % data.ndim
        start = int(np.asarray(starts).reshape(-1)[0])
        if int(np.asarray(steps).reshape(-1)[0]) != 1:
            return f"{G.describe(node)}: the slice has a step other than 1"
        if axis != data.ndim - 1 or any(n != 1 for n in data.shape[:-1]):
            return f"{G.describe(node)}: slices a {data.shape} table, not a row of positions"
        row = np.asarray(data).reshape(-1)[start:]
        if row.size == 0 or row[0] != 0:
            first = row[0] if row.size else None
            return (f"{G.describe(node)}: positions start at {first}, not 0 (offset "
                    "positions are not supported)")
        if not np.array_equal(row, np.arange(row.size)):
            return f"{G.describe(node)}: the position buffer is not 0, 1, 2, ..."
        if not _is_seq_len(G, ins[2]):
            return f"{G.describe(node)}: the slice does not end at the sequence length"
        return None
    return f"it is computed by {G.describe(node)}"


def _gather_table(G: _Graph, leaf: str):
    """A summand of the embeddings: (gather node, table float32) when it is a Gather of a
    constant [rows, hidden] table (possibly int8 with a DequantizeLinear, or followed by a
    Cast), else (producer, None)."""
    node = G.producer.get(leaf)
    post = []
    while node is not None and node.op_type in ("Cast", "DequantizeLinear"):
        post.append(node)
        node = G.producer.get(node.input[0])
    if node is None or node.op_type != "Gather":
        return G.producer.get(leaf), None
    table = G.const(node.input[0])
    if table is None or table.ndim != 2 or G.attr(node, "axis", 0) != 0:
        return node, None
    table = np.asarray(table)
    for p in reversed(post):
        if p.op_type == "Cast":
            table = table.astype(_np_dtype(G.attr(p, "to"), G.describe(p)))
        else:
            s = G.const(p.input[1])
            zp = G.const(p.input[2]) if len(p.input) > 2 and p.input[2] else 0
            if s is None or zp is None or np.size(s) != 1 or np.size(zp) != 1:
                raise NotRecognized(f"{G.describe(p)}: the embedding table's scale is not "
                                    "one constant")
            table = (table.astype(np.float32) - np.float32(np.asarray(zp).reshape(-1)[0])) * \
                np.float32(np.asarray(s).reshape(-1)[0])
    if table.dtype.kind != "f":
        raise NotRecognized(f"{G.describe(node)}: the embedding table is not floating point")
    return node, table.astype(np.float32)


def _np_dtype(onnx_type, node_text: str = "a Cast"):
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(onnx_type)
    except (KeyError, TypeError, ValueError):
        raise NotRecognized(f"{node_text}: 'to' is {onnx_type!r}, not an ONNX tensor type") from None


def _sum_leaves(G: _Graph, t: str, out: list, depth=0):
    """The summands of a tree of Adds ending in t."""
    node = G.producer.get(t)
    if node is not None and node.op_type == "Add" and G.const(t) is None and depth < 8:
        for i in node.input:
            _sum_leaves(G, i, out, depth + 1)
    else:
        out.append(t)
    return out


def _embeddings(G: _Graph, path):
    """(word, pos, type, emb_g, emb_b, eps, output tensor) read from the graph."""
    eln = [n for n in G.nodes if n.op_type == "EmbedLayerNormalization"]
    if eln:
        return _embed_layernorm(G, path, eln)
    words = []
    for node in G.nodes:
        if node.op_type == "Gather" and G.root(node.input[1])[0] == "input_ids":
            leaf = node.output[0]
            while len(G.users(leaf)) == 1 and G.users(leaf)[0].op_type in ("Cast",
                                                                          "DequantizeLinear"):
                leaf = G.users(leaf)[0].output[0]
            if _gather_table(G, leaf)[1] is not None:
                words.append(node)
    if len(words) != 1:
        raise NotRecognized(f"{path}: expected one word-embedding Gather on input_ids, found "
                            f"{len(words)}")
    # Down the Adds to the LayerNorm of the summed embeddings.
    t = words[0].output[0]
    ln = None
    for _ in range(8):
        us = G.users(t)
        if len(us) == 1 and us[0].op_type in ("Cast", "DequantizeLinear"):
            t = us[0].output[0]
            continue
        if len(us) == 1 and us[0].op_type == "Add":
            t = us[0].output[0]
            continue
        if len(us) == 1 and us[0].op_type == "SkipLayerNormalization":
            ln = us[0]
        else:
            ln = _layernorm_at(G, t, required=False)
        break
    if ln is None:
        ops = ", ".join(G.describe(u) for u in G.users(t)) or "nothing"
        raise NotRecognized(f"{path}: the summed embeddings are read by {ops}, not a LayerNorm")
    if isinstance(ln, tuple):
        out, emb_g, emb_b, eps = ln
        leaves = _sum_leaves(G, t, [])
    else:  # SkipLayerNormalization(a, b, gamma, beta[, bias]) = LN(a + b + bias)
        out, emb_g, emb_b, eps, bias = _skip_layernorm(G, ln)
        leaves = _sum_leaves(G, ln.input[0], []) + _sum_leaves(G, ln.input[1], [])
        if bias is not None:
            leaves.append(bias)
    hidden = emb_g.shape[0]
    word = pos = typ = None
    row = np.zeros(hidden, np.float64)  # constant summands (folded into the type rows)
    for leaf in leaves:
        if isinstance(leaf, np.ndarray):
            row += leaf
            continue
        c = G.const(leaf)
        if c is not None:
            if c.dtype.kind != "f" or c.size != hidden or c.shape[-1] != hidden:
                raise NotRecognized(f"{path}: constant summand {leaf!r} of shape {c.shape} in "
                                    "the embeddings")
            row += c.reshape(-1)
            continue
        node, table = _gather_table(G, leaf)
        if table is None:
            what = G.describe(node) if node is not None else f"input {leaf!r}"
            raise NotRecognized(f"{path}: {what} is added to the embeddings; not a Gather of "
                                "a constant table")
        if table.shape[1] != hidden:
            raise NotRecognized(f"{G.describe(node)}: table of width {table.shape[1]}, "
                                f"the embeddings have {hidden}")
        kind, value = _classify_index(G, node, table)
        if kind == "row":
            row += value
        else:
            have = {"word": word, "pos": pos, "type": typ}[kind]
            if have is not None:
                raise NotRecognized(f"{path}: a second {kind} embedding table "
                                    f"({G.describe(node)})")
            if kind == "word":
                word = table
            elif kind == "pos":
                pos = table
            else:
                typ = table
    if word is None:
        raise NotRecognized(f"{path}: the word embeddings are not part of the LayerNorm's sum")
    if pos is None:
        raise NotRecognized(f"{path}: no position-embedding Gather (0..L-1) in the embeddings")
    typ = (typ if typ is not None else np.zeros((1, hidden), np.float32)) + row[None, :]
    return word, pos, typ.astype(np.float32), emb_g, emb_b, eps, out


def _classify_index(G: _Graph, node, table):
    """What a Gather's index is: ("word"|"type"|"pos", None) or ("row", table[value])."""
    idx = node.input[1]
    r, _ = G.root(idx)
    if r in G.inputs:
        if r == "input_ids":
            return "word", None
        if r == "token_type_ids":
            return "type", None
    values = _value_set(G, idx)
    if values is not None and values.size == 1:
        v = values.reshape(-1)[0]
        if (np.asarray(v).dtype.kind not in "iuf" or not np.isfinite(v) or v != int(v)
                or not 0 <= int(v) < len(table)):
            raise NotRecognized(f"{G.describe(node)}: constant index {v} outside the table of "
                                f"{len(table)} rows")
        return "row", table[int(v)].astype(np.float64)
    reason = _positions_reason(G, idx)
    if reason is None:
        return "pos", None
    if values is not None:
        raise NotRecognized(f"{G.describe(node)}: the index takes the constant values "
                            f"{values[:8].tolist()}, neither one value for all positions nor "
                            f"0..L-1 ({reason})")
    raise NotRecognized(f"{G.describe(node)}: cannot tell what its index {idx!r} is: not "
                        f"input_ids, token_type_ids, a constant, or the positions 0..L-1 "
                        f"({reason})")


def _embed_layernorm(G: _Graph, path, nodes):
    """onnxruntime's fused EmbedLayerNormalization(input_ids, segment_ids, word, position,
    segment, gamma, beta[, mask, position_ids])."""
    if len(nodes) != 1:
        raise NotRecognized(f"{path}: {len(nodes)} EmbedLayerNormalization nodes")
    node = nodes[0]
    ins = list(node.input) + [""] * (9 - len(node.input))
    if G.root(ins[0])[0] != "input_ids":
        raise NotRecognized(f"{G.describe(node)}: its token input is not input_ids")
    tables = []
    for i in (2, 3, 4):
        t = G.const(ins[i]) if ins[i] else None
        if ins[i] and (t is None or t.ndim != 2 or t.dtype.kind != "f"):
            raise NotRecognized(f"{G.describe(node)}: input {i} is not a constant table")
        tables.append(None if t is None else t.astype(np.float32))
    word, pos, seg = tables
    if word is None or pos is None:
        raise NotRecognized(f"{G.describe(node)}: no {'word' if word is None else 'position'} "
                            "embedding table (input 2 or 3 is empty)")
    g, b = G.const(ins[5]), G.const(ins[6])
    if g is None or b is None:
        raise NotRecognized(f"{G.describe(node)}: gamma/beta are not constant")
    hidden = word.shape[1]
    if ins[8]:
        reason = _positions_reason(G, ins[8])
        if reason is not None:
            raise NotRecognized(f"{G.describe(node)}: position_ids are not 0..L-1 ({reason})")
    if seg is None or not ins[1]:
        typ = np.zeros((1, hidden), np.float32)
    elif G.root(ins[1])[0] == "token_type_ids" and "token_type_ids" in G.inputs:
        typ = seg
    else:
        values = _value_set(G, ins[1])
        if values is None or values.size != 1 or not 0 <= int(values[0]) < len(seg):
            raise NotRecognized(f"{G.describe(node)}: its segment ids {ins[1]!r} are neither "
                                "token_type_ids nor one constant")
        typ = seg[int(values[0])][None, :]
    eps = G.number(node, "epsilon", 1e-12)
    return (word, pos, typ, g.astype(np.float32), b.astype(np.float32), eps, node.output[0])


# ---------------------------------------------------------------------------------------------
# LayerNorm

def _reduce_axes(G: _Graph, node):
    axes = G.attr(node, "axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = G.const(node.input[1])
    return None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]


def _last_axis(G: _Graph, node) -> bool:
    return G.attr(node, "keepdims", 1) == 1 and _reduce_axes(G, node) in ([-1], [2])


def _layernorm_at(G: _Graph, t: str, required=True):
    """The LayerNorm reading t (LayerNormalization, or decomposed into ReduceMean / Sub / Pow /
    ReduceMean / Add eps / Sqrt / Div / Mul gamma / Add beta): (out, gamma, beta, eps)."""
    users = G.users(t)
    ln = [u for u in users if u.op_type == "LayerNormalization" and u.input[0] == t]
    if len(ln) == 1:
        node = ln[0]
        g = G.const(node.input[1])
        b = G.const(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if g is None or (len(node.input) > 2 and node.input[2] and b is None):
            raise NotRecognized(f"{G.describe(node)}: scale or bias is not constant")
        if G.attr(node, "axis", -1) not in (-1, 2):
            raise NotRecognized(f"{G.describe(node)}: normalizes from axis "
                                f"{G.attr(node, 'axis')}, not the last one")
        b = np.zeros_like(g) if b is None else b
        _check_gamma_beta(G, node, g, b)
        return (node.output[0], g.astype(np.float32), b.astype(np.float32),
                G.number(node, "epsilon", 1e-5))
    rm = [u for u in users if u.op_type == "ReduceMean" and u.input[0] == t]
    if len(rm) == 1:
        return _decomposed_layernorm(G, t, rm[0])
    if required:
        ops = ", ".join(G.describe(u) for u in users) or "nothing"
        raise NotRecognized(f"tensor {t!r} is read by {ops}; expected a LayerNorm")
    return None


def _decomposed_layernorm(G: _Graph, x: str, rm):
    def fail(why):
        raise NotRecognized(f"LayerNorm decomposed from {G.describe(rm)}: {why}")

    def one(t, op, other=None):
        us = [u for u in G.users(t) if u.op_type == op and (other is None or other in u.input)]
        if len(us) != 1:
            fail(f"expected one {op} reading {t!r}")
        return us[0]

    def const_operand(node, t):
        others = [i for i in node.input if i != t]
        v = G.const(others[0]) if len(others) == 1 else None
        if v is None:
            fail(f"{G.describe(node)} is not by a constant")
        return v

    if not _last_axis(G, rm):
        fail("the mean is not over the last axis")
    sub = one(rm.output[0], "Sub", x)
    if list(sub.input) != [x, rm.output[0]]:
        fail(f"{G.describe(sub)} is not x - mean(x)")
    d = sub.output[0]
    sq = [u for u in G.users(d) if u.op_type == "Pow" or
          (u.op_type == "Mul" and list(u.input) == [d, d])]
    if len(sq) != 1:
        fail("no square of x - mean(x)")
    sq = sq[0]
    if sq.op_type == "Pow" and (sq.input[0] != d or G.scalar(sq.input[1]) != 2.0):
        fail(f"{G.describe(sq)} is not a square")
    rm2 = one(sq.output[0], "ReduceMean")
    if not _last_axis(G, rm2):
        fail("the variance is not over the last axis")
    add = one(rm2.output[0], "Add")
    eps = const_operand(add, rm2.output[0])
    if eps.size != 1:
        fail("epsilon is not a scalar")
    eps = float(np.asarray(eps, np.float64).reshape(-1)[0])
    sqrt = one(add.output[0], "Sqrt")
    std = sqrt.output[0]
    div = [u for u in G.users(d) if u.op_type == "Div" and list(u.input) == [d, std]]
    if div:
        normed = div[0].output[0]
    else:
        rec = one(std, "Reciprocal")
        normed = one(d, "Mul", rec.output[0]).output[0]
    mul = one(normed, "Mul")
    g = const_operand(mul, normed)
    badd = one(mul.output[0], "Add")
    b = const_operand(badd, mul.output[0])
    if g.dtype.kind != "f" or b.dtype.kind != "f" or g.ndim != 1 or b.shape != g.shape:
        fail("gamma/beta are not vectors")
    return badd.output[0], g.astype(np.float32), b.astype(np.float32), eps


def _check_gamma_beta(G: _Graph, node, g, b) -> None:
    """A fused LayerNorm's scale and bias: float vectors of one length."""
    if g.dtype.kind != "f" or b.dtype.kind != "f" or g.ndim != 1 or b.shape != g.shape:
        raise NotRecognized(f"{G.describe(node)}: scale and bias are not float vectors of one "
                            f"length (shapes {g.shape} and {b.shape})")


def _skip_layernorm(G: _Graph, node):
    """SkipLayerNormalization(x, skip, gamma[, beta[, bias]]): (out, gamma, beta, eps, bias)."""
    ins = list(node.input) + [""] * (5 - len(node.input))
    g = G.const(ins[2])
    b = G.const(ins[3]) if ins[3] else None
    bias = G.const(ins[4]) if ins[4] else None
    if g is None or (ins[3] and b is None) or (ins[4] and bias is None):
        raise NotRecognized(f"{G.describe(node)}: gamma, beta or bias is not constant")
    b = np.zeros_like(g) if b is None else b
    _check_gamma_beta(G, node, g, b)
    eps = G.number(node, "epsilon", 1e-12)
    bias = None if bias is None else bias.astype(np.float32)
    return node.output[0], g.astype(np.float32), b.astype(np.float32), eps, bias


def _layernorm_after_residual(G: _Graph, t: str, residual: str):
    """t + residual -> LayerNorm: (ln_out, gamma, beta, eps, extra bias of t or None)."""
    users = G.users(t)
    skip = [u for u in users if u.op_type == "SkipLayerNormalization"
            and set(u.input[:2]) == {t, residual}]
    if len(skip) == 1:
        return _skip_layernorm(G, skip[0])
    add = [u for u in users if u.op_type == "Add" and set(u.input) == {t, residual}]
    if len(add) != 1:
        ops = ", ".join(G.describe(u) for u in users) or "nothing"
        raise NotRecognized(f"tensor {t!r} is read by {ops}; expected the residual Add")
    return _layernorm_at(G, add[0].output[0]) + (None,)


# ---------------------------------------------------------------------------------------------
# Linear layers, activation, attention

def _linear_from(G: _Graph, x: str):
    """Every linear layer (x @ W + b) reading tensor x: a list of (out_tensor, W[out, in], b)."""
    found = []
    for node in G.users(x):
        if node.op_type == "MatMul" and node.input[0] == x:
            w = G.const(node.input[1])
            if w is None or w.ndim != 2:
                continue
            if w.dtype.kind != "f":
                raise NotRecognized(f"{G.describe(node)}: weight of type {w.dtype}")
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

_FAST_GELU = ("the engine implements the exact (erf) GELU only; a tanh-approximated GELU "
              "is not supported (optimize without GELU approximation)")


def _gelu_from(G: _Graph, t: str):
    """t -> erf GELU -> the tensor the next linear reads: (that tensor, bias added first)."""
    users = G.users(t)
    if len(users) == 1:
        u = users[0]
        if u.op_type in ("FastGelu", "GemmFastGelu", "QuickGelu"):
            raise NotRecognized(f"{G.describe(u)}: {_FAST_GELU}")
        if u.op_type == "Gelu":
            approx = G.attr(u, "approximate", "none")
            approx = approx.decode() if isinstance(approx, bytes) else approx
            if approx != "none":
                raise NotRecognized(f"{G.describe(u)} approximate={approx!r}: {_FAST_GELU}")
            return u.output[0], None
        if u.op_type == "BiasGelu":
            b = G.const(u.input[1]) if u.input[0] == t else None
            if b is None or b.ndim != 1:
                raise NotRecognized(f"{G.describe(u)}: its bias is not a constant vector")
            return u.output[0], b.astype(np.float32)
    if any(u.op_type == "Tanh" for n in users for u in [n] + G.users(n.output[0])):
        raise NotRecognized(f"tensor {t!r}: {_FAST_GELU}")
    return _erf_gelu(G, t), None


def _erf_gelu(G: _Graph, x: str):
    """0.5 * x * (1 + erf(x / sqrt(2))) spelled with Div/Mul/Erf/Add; returns its output."""
    def fail(why):
        ops = ", ".join(G.describe(u) for u in G.users(x)) or "nothing"
        raise NotRecognized(f"the feed-forward activation on {x!r} (read by {ops}) is not the "
                            f"erf GELU: {why}")

    def by_const(node, t):
        others = [i for i in node.input if i != t]
        return G.scalar(others[0]) if len(others) == 1 else None

    erf = None
    for u in G.users(x):
        s = by_const(u, x) if u.op_type in ("Div", "Mul") else None
        if s is None:
            continue
        k = _reciprocal(s, G.describe(u)) if u.op_type == "Div" else s
        e = [v for v in G.users(u.output[0]) if v.op_type == "Erf"]
        if _close(k, 2 ** -0.5) and len(e) == 1:
            erf = e[0]
    if erf is None:
        if any(u.op_type == "Tanh" for u in G.users(x)):
            fail(_FAST_GELU)
        fail("no Erf(x / sqrt(2))")
    add = [v for v in G.users(erf.output[0]) if v.op_type == "Add"]
    if len(add) != 1 or by_const(add[0], erf.output[0]) != 1.0:
        fail("no 1 + erf(...)")
    a = add[0].output[0]
    users = G.users(a)
    if len(users) != 1 or users[0].op_type != "Mul":
        fail("1 + erf(...) is not multiplied")
    m = users[0]
    other = [i for i in m.input if i != a]
    if len(other) != 1:
        fail(f"{G.describe(m)}")
    other = other[0]
    nxt = G.users(m.output[0])
    if other == x:  # (x * (1 + erf)) * 0.5
        if len(nxt) == 1 and nxt[0].op_type == "Mul" and _close(by_const(nxt[0], m.output[0]) or 0, 0.5):
            return nxt[0].output[0]
        fail("no factor 0.5")
    s = G.scalar(other)
    if s is not None and _close(s, 0.5):  # ((1 + erf) * 0.5) * x
        if len(nxt) == 1 and nxt[0].op_type == "Mul" and set(nxt[0].input) == {m.output[0], x}:
            return nxt[0].output[0]
        fail("no factor x")
    half = G.producer.get(other)  # (x * 0.5) * (1 + erf)
    if half is not None and half.op_type == "Mul" and x in half.input and \
            _close(by_const(half, x) or 0, 0.5):
        return m.output[0]
    fail("unexpected factors")


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
        if u.op_type == "FusedMatMul":  # onnxruntime: alpha * (A @ B), B possibly transposed
            if any(G.attr(u, a, 0) for a in ("transA", "transBatchA", "transBatchB")):
                raise NotRecognized(f"{G.describe(u)}: transposed batch or left operand")
            return u, list(u.input).index(t), factor * G.number(u, "alpha", 1.0)
        if u.op_type in _SHAPE_OPS:
            t = u.output[0]
        elif u.op_type in ("Mul", "Div"):
            other = [i for i in u.input if i != t][0]
            s = G.scalar(other)
            if s is None:
                raise NotRecognized(f"{u.op_type} {u.name!r} on the attention path is not by a constant")
            factor *= s if u.op_type == "Mul" else _reciprocal(s, G.describe(u))
            t = u.output[0]
        else:
            raise NotRecognized(f"unexpected {u.op_type} {u.name!r} on the attention path")
    raise NotRecognized("attention path too long")


def _mask_only(G: _Graph, t: str) -> str | None:
    """None when t is computed from attention_mask, shapes and constants only, else the
    first foreign input or node found."""
    seen = set()
    stack = [t]
    while stack:
        name = stack.pop()
        if name in seen or not name:
            continue
        seen.add(name)
        if name in G.inputs:
            if name != "attention_mask":
                return f"the graph input {name!r}"
            continue
        node = G.producer.get(name)
        if node is None or node.op_type == "Shape":
            continue
        if node.op_type in ("MatMul", "MatMulInteger", "Softmax", "LayerNormalization"):
            return G.describe(node)
        stack.extend(node.input)
    return None


def _attention_scores(G: _Graph, layer, score_mm, ctx_mm, qk_factor):
    """scores -> (Add mask / scale) -> Softmax -> (NaN guard) -> context MatMul. Returns the
    overall scale of the scores."""
    t = score_mm.output[0]
    softmax_seen = False
    for _ in range(10):
        us = [u for u in G.users(t) if u.op_type not in ("Shape", "IsNaN")]
        if len(us) != 1:
            raise NotRecognized(f"layer {layer}: attention scores have {len(us)} consumers")
        u = us[0]
        if u is ctx_mm:
            break
        if u.op_type == "Softmax":
            if G.attr(u, "axis", -1) not in (-1, 3) or softmax_seen:
                raise NotRecognized(f"layer {layer}: {G.describe(u)} is not over the last axis")
            softmax_seen = True
        elif u.op_type in ("Mul", "Div") and not softmax_seen:
            other = [i for i in u.input if i != t][0]
            s = G.scalar(other)
            if s is None:
                raise NotRecognized(f"layer {layer}: attention scores scaled by a non-constant")
            qk_factor *= s if u.op_type == "Mul" else _reciprocal(s, G.describe(u))
        elif u.op_type == "Add" and not softmax_seen:
            other = [i for i in u.input if i != t][0]
            why = _mask_only(G, other)
            if why is not None:
                raise NotRecognized(f"layer {layer}: {G.describe(u)} adds to the attention "
                                    f"scores something computed from {why}, not a mask")
        elif u.op_type == "Where" and not softmax_seen and u.input[0] != t:
            # Where(mask, scores, -inf) / Where(mask, -inf, scores)
            why = _mask_only(G, u.input[0])
            other = [i for i in u.input[1:] if i != t]
            if why is not None or len(other) != 1 or G.const(other[0]) is None:
                raise NotRecognized(f"layer {layer}: {G.describe(u)} on the attention scores "
                                    "is not a mask")
        elif u.op_type == "Where" and softmax_seen:
            # NaN guard of fully masked rows: Where(IsNaN(p), 0, p)
            cond = G.producer.get(u.input[0])
            if cond is None or cond.op_type != "IsNaN" or cond.input[0] != t or \
                    u.input[2] != t or G.scalar(u.input[1]) != 0:
                raise NotRecognized(f"layer {layer}: {G.describe(u)} after the Softmax is not "
                                    "a NaN guard")
        elif u.op_type == "Cast":
            pass
        else:
            raise NotRecognized(f"layer {layer}: unexpected {G.describe(u)} in attention")
        t = u.output[0]
    else:
        raise NotRecognized(f"layer {layer}: attention path too long")
    if not softmax_seen:
        raise NotRecognized(f"layer {layer}: no Softmax in attention")
    return qk_factor


def _heads_from_scale(layer, hidden, qk_factor):
    head_dim = round(1.0 / (qk_factor * qk_factor)) if qk_factor > 0 else 0
    if head_dim <= 0 or hidden % head_dim or not _close(qk_factor, head_dim ** -0.5):
        raise NotRecognized(f"layer {layer}: attention scale {qk_factor} is not 1/sqrt(head_dim)")
    return hidden // head_dim


def _unfused_attention(G: _Graph, layer, hidden, lins):
    """Q, K, V projections -> scores -> context. Returns (q, k, v, heads, context tensor)."""
    if len(lins) != 3:
        raise NotRecognized(f"layer {layer}: expected 3 projections (Q, K, V), found {len(lins)}")
    by_mm = {}
    for out, w, b in lins:
        mm, idx, factor = _follow_to_matmul(G, out)
        by_mm.setdefault(id(mm), {})[idx] = (w, b, factor, mm)
    scores = [d for d in by_mm.values() if set(d) == {0, 1}]
    ctxmm = [d for d in by_mm.values() if set(d) == {1}]
    if len(scores) != 1 or len(ctxmm) != 1:
        raise NotRecognized(f"layer {layer}: Q, K, V do not form an attention block")
    q, k, v = scores[0][0], scores[0][1], ctxmm[0][1]
    score_mm, ctx_mm = q[3], v[3]
    if v[2] != 1.0 or ctx_mm.op_type != "MatMul":
        raise NotRecognized(f"layer {layer}: values are scaled")
    qk_factor = q[2] * k[2]
    if score_mm.op_type == "FusedMatMul":  # its alpha is counted once, not per operand
        qk_factor *= _reciprocal(G.number(score_mm, "alpha", 1.0), G.describe(score_mm))
    qk_factor = _attention_scores(G, layer, score_mm, ctx_mm, qk_factor)
    heads = _heads_from_scale(layer, hidden, qk_factor)
    return q[:2], k[:2], v[:2], heads, ctx_mm.output[0]


def _fused_attention(G: _Graph, layer, hidden, node):
    """onnxruntime's Attention(input, weight [hidden, 3 hidden], bias [3 hidden], mask_index)."""
    ins = list(node.input) + [""] * (8 - len(node.input))
    if any(ins[4:]):
        raise NotRecognized(f"{G.describe(node)}: past state or attention bias inputs are not "
                            "supported")
    if G.attr(node, "unidirectional", 0) or G.attr(node, "do_rotary", 0):
        raise NotRecognized(f"{G.describe(node)}: causal or rotary attention is not supported")
    sizes = G.attr(node, "qkv_hidden_sizes")
    if sizes and list(sizes) != [hidden] * 3:
        raise NotRecognized(f"{G.describe(node)}: qkv_hidden_sizes {list(sizes)}")
    heads = int(G.number(node, "num_heads", 0))
    if heads <= 0 or hidden % heads:
        raise NotRecognized(f"{G.describe(node)}: num_heads {heads} for hidden size {hidden}")
    scale = G.number(node, "scale", 0.0)
    if scale and not _close(scale, (hidden // heads) ** -0.5, 1e-4):
        raise NotRecognized(f"{G.describe(node)}: scale {scale} is not 1/sqrt(head_dim)")
    w = G.const(ins[1])
    b = G.const(ins[2]) if ins[2] else np.zeros(3 * hidden, np.float32)
    if w is None or b is None or w.shape != (hidden, 3 * hidden) or b.shape != (3 * hidden,):
        raise NotRecognized(f"{G.describe(node)}: packed QKV weight/bias are not constants of "
                            f"shape ({hidden}, {3 * hidden}) / ({3 * hidden},)")
    if ins[3]:
        src = G.producer.get(ins[3])
        if not (src is not None and src.op_type == "EmbedLayerNormalization") and \
                _mask_only(G, ins[3]) is not None:
            raise NotRecognized(f"{G.describe(node)}: its mask is not computed from "
                                "attention_mask")
    w = w.astype(np.float32)
    b = b.astype(np.float32)
    parts = [(np.ascontiguousarray(w[:, i * hidden:(i + 1) * hidden].T),
              b[i * hidden:(i + 1) * hidden].copy()) for i in range(3)]
    return parts[0], parts[1], parts[2], heads, node.output[0]


def _graph_output(G: _Graph, t: str) -> bool:
    for _ in range(4):
        if t in G.outputs:
            return True
        us = G.users(t)
        if len(us) != 1 or us[0].op_type not in ("Identity", "Cast"):
            return False
        t = us[0].output[0]
    return False


def _load_model(path):
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # onnx raises several types on a bad file
        raise NotRecognized(f"{path}: cannot be read as ONNX ({e})") from None
    from onnx.external_data_helper import uses_external_data, _get_all_tensors

    locations = set()
    for t in _get_all_tensors(model):
        if uses_external_data(t):
            for e in t.external_data:
                if e.key == "location":
                    locations.add(e.value)
    for loc in sorted(locations):
        if not (path.parent / loc).is_file():
            raise NotRecognized(f"{path}: its weights are in the external data file {loc!r}, "
                                f"which is not beside it")
    if locations:
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except Exception as e:
            raise NotRecognized(f"{path}: cannot read its external data ({e})") from None
    return model, sorted(locations)


def params_from_onnx(path, cfg: dict | None) -> tuple:
    """Canonical (cfg, params) from an ONNX export of BertModel: fp32 or float16 weights,
    onnxruntime dynamic int8, static QDQ int8, or onnxruntime's transformer fusions
    (EmbedLayerNormalization, Attention, SkipLayerNormalization, Gelu/BiasGelu)."""
    from .gate import graph_precision

    if cfg is not None and cfg.get("family", "bert") != "bert":
        raise NotRecognized(f"{path}: the ONNX reader knows BERT graphs only; a {cfg['family']} model "
                            "runs natively from its safetensors checkpoint")
    model, data_files = _load_model(path)
    precision = graph_precision(model)
    G = _Graph(model)
    del model
    if "input_ids" not in G.inputs:
        raise NotRecognized(f"{path}: no input named input_ids")

    word, pos, typ, emb_g, emb_b, eps, hcur = _embeddings(G, path)
    hidden = word.shape[1]
    params = {"word": word, "pos": pos, "type": typ, "emb_g": emb_g, "emb_b": emb_b}
    epsilons = [eps]

    layer = 0
    heads_seen = None
    while True:
        lins = _linear_from(G, hcur)
        fused = [u for u in G.users(hcur) if u.op_type == "Attention"]
        if fused:
            if len(fused) != 1 or lins:
                raise NotRecognized(f"layer {layer}: unexpected readers of the layer input")
            q, k, v, heads, ctx = _fused_attention(G, layer, hidden, fused[0])
        elif lins:
            q, k, v, heads, ctx = _unfused_attention(G, layer, hidden, lins)
        else:
            break
        # context -> shape ops -> attention output linear
        t = ctx
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
        h1, ln1_g, ln1_b, e1, extra = _layernorm_after_residual(G, ao_out, hcur)
        if extra is not None:
            ao_b = ao_b + extra
        up = _linear_from(G, h1)
        if len(up) != 1:
            raise NotRecognized(f"layer {layer}: expected one intermediate projection")
        up_out, up_w, up_b = up[0]
        g_out, extra = _gelu_from(G, up_out)
        if extra is not None:
            up_b = up_b + extra
        down = _linear_from(G, g_out)
        if len(down) != 1:
            raise NotRecognized(f"layer {layer}: expected one output projection")
        down_out, down_w, down_b = down[0]
        hnext, ln2_g, ln2_b, e2, extra = _layernorm_after_residual(G, down_out, h1)
        if extra is not None:
            down_b = down_b + extra
        epsilons += [e1, e2]

        if heads_seen is not None and heads != heads_seen:
            raise NotRecognized("layers differ in their number of heads")
        heads_seen = heads
        P = params
        P[f"{layer}.q_w"], P[f"{layer}.q_b"] = q
        P[f"{layer}.k_w"], P[f"{layer}.k_b"] = k
        P[f"{layer}.v_w"], P[f"{layer}.v_b"] = v
        P[f"{layer}.ao_w"], P[f"{layer}.ao_b"] = ao_w, ao_b
        P[f"{layer}.ln1_g"], P[f"{layer}.ln1_b"] = ln1_g, ln1_b
        P[f"{layer}.up_w"], P[f"{layer}.up_b"] = up_w, up_b
        P[f"{layer}.down_w"], P[f"{layer}.down_b"] = down_w, down_b
        P[f"{layer}.ln2_g"], P[f"{layer}.ln2_b"] = ln2_g, ln2_b
        hcur = hnext
        layer += 1
    if not _graph_output(G, hcur):
        ops = ", ".join(G.describe(u) for u in G.users(hcur)) or "nothing"
        where = f"layer {layer - 1}'s output" if layer else "the embeddings' output"
        raise NotRecognized(f"{path}: {where} is read by {ops}, which is neither a transformer "
                            "layer nor the graph output")
    if layer == 0:
        raise NotRecognized(f"{path}: no transformer layer found after the embeddings")
    if max(epsilons) > min(epsilons) * (1 + 1e-6):
        raise NotRecognized(f"{path}: the LayerNorms use different epsilons {sorted(set(epsilons))}")

    found = {"vocab": word.shape[0], "hidden": hidden, "heads": heads_seen,
             "intermediate": params["0.up_w"].shape[0], "layers": layer,
             "max_position": pos.shape[0], "type_vocab": typ.shape[0], "eps": eps}
    if not eps > 0:
        raise NotRecognized(f"{path}: the LayerNorm epsilon is {eps} (a float16 graph rounds a tiny "
                            "epsilon to 0); the engine needs a positive one")
    if cfg is not None:
        for key in ("hidden", "heads", "intermediate", "layers", "vocab"):
            if cfg[key] != found[key]:
                raise NotRecognized(f"{path}: the graph has {key} = {found[key]} but config.json "
                                    f"says {cfg[key]}")
        # The epsilon is the graph's, not config.json's: the graph is what onnxruntime runs and
        # what the native engine must reproduce. config.json's spelling is kept only when it is
        # the same number at the graph's float32 precision.
        if np.float32(cfg["eps"]) == np.float32(eps):
            found["eps"] = float(cfg["eps"])
    check_params(found, params)
    found["family"] = "bert"
    found["graph_precision"] = precision
    found["external_data"] = data_files
    return found, params
