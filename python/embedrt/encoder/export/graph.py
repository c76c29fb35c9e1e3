"""One ONNX graph writer for every encoder family, driven by the spec the family loaders give
(arch/: ``position``, ``attention_bias``, ``norm``, ``ffn``, ``linear_bias``, ``local_window``,
...) and the canonical params they read (see _native_load), with ``onnx.helper`` only (opset
17, so LayerNormalization is a native op). What it writes is what ``native.reference_forward``
computes, for a padded batch:

    embeddings: word rows; + positions: a table row per position (absolute: 0, 1, ...;
                offset: HF's create_position_ids_from_input_ids, the count of non-padding
                tokens past padding_idx, computed from input_ids in the graph), or none
                (rotary); + the token-type row (token_type_ids where the family takes them,
                else row 0); LayerNorm
    masks:      (1 - attention_mask) * float32.min, shaped [batch, 1, 1, seq]; MPNet's
                relative-position bias ([heads, seq, seq] from a table by distance, the buckets
                precomputed) added to it; ModernBERT's local layers: the min of it and a banded
                mask (float32.min for keys farther than local_window from the query)
    per layer:  post-LN (BERT, MPNet, RoBERTa, NomicBert): LN1(x + Wo attn(x)),
                LN2(h + down(ffn(h))); pre-LN (ModernBERT): x += Wo attn(LN1(x)) (no LN1 where
                the checkpoint has none), x += down(ffn(LN2(x))), a final LayerNorm;
                attention: softmax(q k^T / sqrt(d) + mask) v, q and k rotated for rotary
                positions (rotate_half layout; the cos / sin tables of the global and local
                bases precomputed in fp32, as the engine holds them); ffn: erf GELU (BERT may
                also ask for relu or the tanh GELUs), SwiGLU up * silu(gate), GeGLU
                gelu(up) * gate; linear layers and LayerNorms with or without biases
    output:     last_hidden_state [batch, seq, hidden]

Initializers carry BertModel's names for the canonical slots (``encoder.layer.<i>.attention.
self.query.weight_t``, ...), so a BERT graph written here reads back as a plain BertModel.
"""
from __future__ import annotations

import numpy as np

OPSET = 17
_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "up": "intermediate.dense", "gate": "intermediate.gate",
          "down": "output.dense", "ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}


def takes_token_types(cfg: dict) -> bool:
    """Whether the graph has a token_type_ids input: BERT always (as its exports do), another
    family when its table has more than the one row that every token takes."""
    return cfg.get("family", "bert") == "bert" or int(cfg.get("type_vocab", 0)) > 1


def build_graph(cfg: dict, params: dict, act: str = "gelu", name: str | None = None):
    """The family's forward pass (cfg and params as a family loader returns them) as an
    onnx.ModelProto. ``act`` is BERT's hidden_act for an ffn "gelu" (gelu, relu, gelu_new,
    gelu_pytorch_tanh, gelu_fast)."""
    from onnx import TensorProto, helper, numpy_helper

    from .. import arch
    from ..arch import max_tokens, nomic_bert, spec_of

    spec = spec_of(cfg)
    H, heads = int(cfg["hidden"]), int(cfg["heads"])
    hd = H // heads
    eps = float(cfg["eps"])
    family = spec["family"]
    pre = spec["norm"] == "pre"
    nodes, inits = [], []

    def init(iname, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), iname))
        return iname

    def dense(x, i, slot, tag):
        prefix = f"encoder.layer.{i}.{_NAMES[slot]}"
        w = np.asarray(params[f"{i}.{slot}_w"], np.float32)
        mm = node("MatMul", [x, init(f"{prefix}.weight_t", w.T.copy())], f"{tag}/MatMul")
        b = params.get(f"{i}.{slot}_b")
        if b is None:
            return mm
        return node("Add", [mm, init(f"{prefix}.bias", np.asarray(b, np.float32))], f"{tag}/Add")

    def layer_norm(x, g, b, prefix, tag):
        ins = [x, init(f"{prefix}.weight", np.asarray(g, np.float32))]
        if b is not None and (cfg.get("linear_bias", True) or np.any(b)):
            ins.append(init(f"{prefix}.bias", np.asarray(b, np.float32)))
        return node("LayerNormalization", ins, f"{tag}/LayerNorm", axis=-1, epsilon=eps)

    # constants, each made where it is first used
    consts = {"zero": np.array(0, dtype=np.int64), "one": np.array(1, dtype=np.int64),
              "one_f": np.array(1.0, dtype=np.float32), "half": np.array(0.5, dtype=np.float32),
              "mask_min": np.array(np.finfo(np.float32).min, dtype=np.float32),
              "zero_f": np.array(0.0, dtype=np.float32),
              "axes12": np.array([1, 2], dtype=np.int64), "axis0": np.array([0], dtype=np.int64),
              "axis1": np.array([1], dtype=np.int64),
              "heads_shape": np.array([0, 0, heads, hd], dtype=np.int64),
              "hidden_shape": np.array([0, 0, H], dtype=np.int64),
              "scale": np.array(1.0 / np.sqrt(hd), dtype=np.float32),
              "sqrt2": np.array(np.sqrt(2.0), dtype=np.float32),
              "halves": np.array([hd // 2, hd // 2], dtype=np.int64)}
    made = set()

    def node(op, inputs, oname, **attrs):
        for n in inputs:
            if n.startswith("const/") and n[6:] in consts and n not in made:
                made.add(n)
                init(n, consts[n[6:]])
        nodes.append(helper.make_node(op, inputs, [oname], name=oname, **attrs))
        return oname

    # embeddings: word (+ token type) (+ position), LayerNorm
    word = init("embeddings.word_embeddings.weight", np.asarray(params["word"], np.float32))
    shape = node("Shape", ["input_ids"], "emb/Shape")
    seq = node("Gather", [shape, "const/one"], "emb/SeqLen", axis=0)
    pos_ids = node("Range", ["const/zero", seq, "const/one"], "emb/PositionIds")
    x = node("Gather", [word, "input_ids"], "emb/Word", axis=0)
    types = takes_token_types(cfg)
    if "type" in params and int(cfg.get("type_vocab", 1)) > 0:
        table = np.asarray(params["type"], np.float32)
        if types:
            typ = init("embeddings.token_type_embeddings.weight", table)
            e_typ = node("Gather", [typ, "token_type_ids"], "emb/TokenType", axis=0)
        else:  # every token takes row 0, as HF adds it when no token_type_ids are given
            e_typ = init("embeddings.token_type_embeddings.row0", table[0].copy())
        x = node("Add", [x, e_typ], "emb/Add1")
    if arch.has_position_table(spec):
        pos = init("embeddings.position_embeddings.weight", np.asarray(params["pos"], np.float32))
        idx = pos_ids
        if spec["position"] == "offset":  # cumsum(ids != pad) * (ids != pad) + pad
            pad = init("const/padding_idx", np.array(int(spec["padding_idx"]), dtype=np.int64))
            real = node("Cast", [node("Not", [node("Equal", ["input_ids", pad], "pos/IsPad")], "pos/NotPad")],
                        "pos/Real", to=TensorProto.INT64)
            count = node("CumSum", [real, "const/one"], "pos/CumSum")
            idx = node("Add", [node("Mul", [count, real], "pos/Mul"), pad], "pos/Ids")
        e_pos = node("Gather", [pos, idx], "emb/Position", axis=0)
        x = node("Add", [x, e_pos], "emb/Add2")
    x = layer_norm(x, params["emb_g"], params["emb_b"], "embeddings.LayerNorm", "emb")

    # extended attention mask [batch, 1, 1, seq]: 0 where attended, float32.min elsewhere
    m = node("Cast", ["attention_mask"], "mask/Cast", to=TensorProto.FLOAT)
    inv = node("Sub", ["const/one_f", m], "mask/Sub")
    neg = node("Mul", [inv, "const/mask_min"], "mask/Mul")
    mask = node("Unsqueeze", [neg, "const/axes12"], "mask/Unsqueeze")
    longest = max_tokens(cfg)
    if spec["attention_bias"] == "relative":  # MPNet: bias by j - i, one table for every layer
        table = arch.relative_bias_table(cfg, params, longest)  # [heads, 2 * longest - 1]
        rel = init("encoder.relative_attention_bias.by_distance", table)
        off = init("const/rel_offset", np.array(longest - 1, dtype=np.int64))
        dist = node("Sub", [node("Unsqueeze", [pos_ids, "const/axis0"], "rel/Keys"),
                            node("Unsqueeze", [pos_ids, "const/axis1"], "rel/Queries")], "rel/Distance")
        bias = node("Gather", [rel, node("Add", [dist, off], "rel/Index")], "rel/Bias", axis=1)
        bias = node("Unsqueeze", [bias, "const/axis0"], "rel/Unsqueeze")
        mask = node("Add", [mask, bias], "rel/Mask")
    local_mask = None
    if spec["local_window"] > 0:  # ModernBERT's local layers: keys within local_window
        win = init("const/local_window", np.array(int(spec["local_window"]), dtype=np.int64))
        dist = node("Sub", [node("Unsqueeze", [pos_ids, "const/axis0"], "local/Keys"),
                            node("Unsqueeze", [pos_ids, "const/axis1"], "local/Queries")], "local/Distance")
        far = node("Greater", [node("Abs", [dist], "local/Abs"), win], "local/Far")
        band = node("Where", [far, "const/mask_min", "const/zero_f"], "local/Band")
        local_mask = node("Min", [mask, band], "local/Mask")

    rot = {}
    if spec["position"] == "rotary":  # cos / sin [seq, 1, hd / 2] of each base the layers use
        bases = {"global": spec["rotary_base"]}
        if local_mask is not None:
            bases["local"] = spec["rotary_base_local"]
        for kind, base in bases.items():
            cos, sin = nomic_bert.rotary_tables(base, hd, longest)
            pair = []
            for tname, t in (("cos", cos), ("sin", sin)):
                tab = init(f"rotary/{kind}/{tname}_table", t)
                g = node("Gather", [tab, pos_ids], f"rotary/{kind}/{tname}", axis=0)
                pair.append(node("Unsqueeze", [g, "const/axis1"], f"rotary/{kind}/{tname}_heads"))
            rot[kind] = pair

    def rotate(t, kind, tag):
        """t [batch, seq, heads, hd] rotated per position (rotate_half layout)."""
        c, s = rot[kind]
        a = f"{tag}/a"
        b = f"{tag}/b"
        node("Split", [t, "const/halves"], a, axis=-1)
        nodes[-1].output.append(b)
        lo = node("Sub", [node("Mul", [a, c], f"{tag}/ac"), node("Mul", [b, s], f"{tag}/bs")], f"{tag}/lo")
        hi = node("Add", [node("Mul", [b, c], f"{tag}/bc"), node("Mul", [a, s], f"{tag}/as")], f"{tag}/hi")
        return node("Concat", [lo, hi], f"{tag}/Concat", axis=-1)

    for i in range(cfg["layers"]):
        t = f"layer{i}"
        local = local_mask is not None and i % spec["global_every"] != 0
        res = x
        if pre and f"{i}.ln1_g" in params:
            x = layer_norm(x, params[f"{i}.ln1_g"], params.get(f"{i}.ln1_b"),
                           f"encoder.layer.{i}.{_NAMES['ln1']}", f"{t}/attn_in")
        q = node("Reshape", [dense(x, i, "q", f"{t}/q"), "const/heads_shape"], f"{t}/q/Reshape")
        k = node("Reshape", [dense(x, i, "k", f"{t}/k"), "const/heads_shape"], f"{t}/k/Reshape")
        v = node("Reshape", [dense(x, i, "v", f"{t}/v"), "const/heads_shape"], f"{t}/v/Reshape")
        if rot:
            kind = "local" if local else "global"
            q, k = rotate(q, kind, f"{t}/q/Rotary"), rotate(k, kind, f"{t}/k/Rotary")
        qh = node("Transpose", [q], f"{t}/q/Transpose", perm=[0, 2, 1, 3])
        kh = node("Transpose", [k], f"{t}/k/Transpose", perm=[0, 2, 3, 1])
        vh = node("Transpose", [v], f"{t}/v/Transpose", perm=[0, 2, 1, 3])
        scores = node("MatMul", [qh, kh], f"{t}/attn/QK")
        scaled = node("Mul", [scores, "const/scale"], f"{t}/attn/Scale")
        masked = node("Add", [scaled, local_mask if local else mask], f"{t}/attn/Mask")
        probs = node("Softmax", [masked], f"{t}/attn/Softmax", axis=-1)
        ctx = node("MatMul", [probs, vh], f"{t}/attn/Context")
        ctx = node("Transpose", [ctx], f"{t}/attn/Transpose", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "const/hidden_shape"], f"{t}/attn/Reshape")
        a = dense(ctx, i, "ao", f"{t}/attn_out")
        if pre:
            res = node("Add", [res, a], f"{t}/attn_out/Residual")
            h = layer_norm(res, params[f"{i}.ln2_g"], params.get(f"{i}.ln2_b"),
                           f"encoder.layer.{i}.{_NAMES['ln2']}", f"{t}/ffn_in")
        else:
            a = node("Add", [a, x], f"{t}/attn_out/Residual")
            h = layer_norm(a, params[f"{i}.ln1_g"], params.get(f"{i}.ln1_b"),
                           f"encoder.layer.{i}.{_NAMES['ln1']}", f"{t}/attn_out")
        f = dense(h, i, "up", f"{t}/ffn_in")
        if spec["ffn"] == "swiglu":  # up * silu(gate)
            g = dense(h, i, "gate", f"{t}/gate")
            silu = node("Mul", [g, node("Sigmoid", [g], f"{t}/gate/Sigmoid")], f"{t}/gate/Silu")
            f = node("Mul", [f, silu], f"{t}/ffn/Glu")
        elif spec["ffn"] == "geglu":  # gelu(up) * gate
            g = dense(h, i, "gate", f"{t}/gate")
            f = node("Mul", [_activation(node, init, f, "gelu", f"{t}/act"), g], f"{t}/ffn/Glu")
        else:
            f = _activation(node, init, f, act, f"{t}/act")
        o = dense(f, i, "down", f"{t}/ffn_out")
        if pre:
            x = node("Add", [res, o], f"{t}/ffn_out/Residual")
        else:
            o = node("Add", [o, h], f"{t}/ffn_out/Residual")
            x = layer_norm(o, params[f"{i}.ln2_g"], params.get(f"{i}.ln2_b"),
                           f"encoder.layer.{i}.{_NAMES['ln2']}", f"{t}/ffn_out")
    if pre and cfg["layers"] > 0:
        x = layer_norm(x, params["final_g"], params.get("final_b"), "encoder.final_norm", "final")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    dims = ["batch", "sequence"]
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in names]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [H])]
    graph = helper.make_graph(nodes, name or family, inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="embedrt")
    model.ir_version = min(model.ir_version, 8)
    # (onnx.checker passes on these graphs: the tests run it; it is not run here, where it
    # would add a fifth to the default model's first start)
    return model


def _activation(node, init, x, act, tag):
    if act == "relu":
        return node("Relu", [x], f"{tag}/Relu")
    if act == "gelu":  # x * 0.5 * (1 + erf(x / sqrt(2)))
        d = node("Div", [x, "const/sqrt2"], f"{tag}/Div")
        e = node("Erf", [d], f"{tag}/Erf")
        a = node("Add", [e, "const/one_f"], f"{tag}/Add")
        m = node("Mul", [x, a], f"{tag}/Mul")
        return node("Mul", [m, "const/half"], f"{tag}/Mul_half")
    # tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    c = init(f"{tag}/c", np.array(np.sqrt(2.0 / np.pi), dtype=np.float32))
    k = init(f"{tag}/k", np.array(0.044715, dtype=np.float32))
    x3 = node("Mul", [node("Mul", [x, x], f"{tag}/x2"), x], f"{tag}/x3")
    inner = node("Add", [x, node("Mul", [x3, k], f"{tag}/kx3")], f"{tag}/inner")
    th = node("Tanh", [node("Mul", [inner, c], f"{tag}/scaled")], f"{tag}/Tanh")
    a = node("Add", [th, "const/one_f"], f"{tag}/Add")
    return node("Mul", [node("Mul", [x, a], f"{tag}/Mul"), "const/half"], f"{tag}/Mul_half")
