"""Reading an exported sentence-transformers model folder.

A folder as users download it holds ``config.json`` (the transformer's shape),
``tokenizer.json`` (a Hugging Face fast tokenizer), ``modules.json`` (the module pipeline:
Transformer, Pooling, Normalize), ``1_Pooling/config.json``, ``sentence_bert_config.json``
(``max_seq_length``), ``config_sentence_transformers.json`` (prompts, similarity function) and
the ONNX graph, ``onnx/model.onnx`` (or a bare ``model.onnx``), or only the checkpoint
(``model.safetensors``), which the native engine runs for the families it knows.

Every problem is reported as an exception naming the file and what is wrong with it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")

# legacy boolean keys of 1_Pooling/config.json, in the order sentence-transformers concatenates them
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_POOLING_ALIASES = {"mean_sqrt_len": "mean_sqrt_len_tokens", "cls_token": "cls",
                    "mean_tokens": "mean", "max_tokens": "max", "weightedmean_tokens": "weightedmean"}

SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")
_SIMILARITY_ALIASES = {"cos_sim": "cosine", "dot_score": "dot", "dot_product": "dot",
                       "euclidean_sim": "euclidean", "manhattan_sim": "manhattan"}


class ModelFolderError(ValueError):
    """A model folder is missing a file, or a file is malformed."""


def _read_json(path: Path, required: bool = True, expect=dict):
    if not path.is_file():
        if required:
            raise FileNotFoundError(f"{path}: file not found (the model folder needs it)")
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFolderError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFolderError(f"{path}: not valid JSON (nested too deeply)") from None
    if expect is not None and not isinstance(data, expect):
        raise ModelFolderError(f"{path}: expected a JSON {expect.__name__}, got {type(data).__name__}")
    return data


# sentence-transformers Dense activations (torch class names) embedrt computes
DENSE_ACTIVATIONS = {
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
    "torch.nn.modules.activation.GELU": "gelu",
    "torch.nn.modules.activation.SiLU": "silu",
}


@dataclass
class DenseLayer:
    """A sentence-transformers Dense module: ``y = act(x W^T + b)`` (+ x, or + x R^T, with a
    residual)."""

    path: Path
    weight: np.ndarray              # [out_features, in_features] float32
    bias: Optional[np.ndarray]      # [out_features] or None
    activation: str                 # a value of DENSE_ACTIVATIONS
    residual: Optional[np.ndarray] = None  # [out, in] projection of the residual, or None
    use_residual: bool = False

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weight.T
        if self.bias is not None:
            y += self.bias
        act = self.activation
        if act == "tanh":
            y = np.tanh(y)
        elif act == "relu":
            y = np.maximum(y, 0)
        elif act == "sigmoid":
            y = 1.0 / (1.0 + np.exp(-y))
        elif act == "gelu":
            from math import erf, sqrt

            y = (0.5 * y * (1.0 + np.vectorize(erf)(y / sqrt(2.0)))).astype(np.float32)
        elif act == "silu":
            y = y / (1.0 + np.exp(-y))
        if self.use_residual:
            y = y + (x if self.residual is None else x @ self.residual.T)
        return np.ascontiguousarray(y, dtype=np.float32)


def read_dense(folder: Path) -> DenseLayer:
    """A Dense module's folder: config.json and model.safetensors (``linear.weight``,
    ``linear.bias``; ``residual.weight`` with a projected residual). Pickled weights are not read."""
    from .safetensors_io import read_safetensors

    cfg_path = folder / "config.json"
    cfg = _read_json(cfg_path)
    sizes = {}
    for key in ("in_features", "out_features"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= 1 << 20:
            raise ModelFolderError(f"{cfg_path}: '{key}' must be a positive integer, got {v!r:.60}")
        sizes[key] = v
    has_bias = cfg.get("bias", True)
    residual = cfg.get("use_residual", False)
    for key, v in (("bias", has_bias), ("use_residual", residual)):
        if not isinstance(v, bool):
            raise ModelFolderError(f"{cfg_path}: '{key}' must be true or false, got {v!r:.60}")
    name = cfg.get("activation_function", "torch.nn.modules.activation.Tanh")
    if name is None:
        name = "torch.nn.modules.linear.Identity"
    if name not in DENSE_ACTIVATIONS:
        raise ModelFolderError(f"{cfg_path}: activation_function {name!r:.80} is not one embedrt computes "
                               f"({', '.join(sorted(DENSE_ACTIVATIONS))})")
    for key in ("module_input_name", "module_output_name"):
        v = cfg.get(key, "sentence_embedding")
        if v not in (None, "sentence_embedding"):
            raise ModelFolderError(f"{cfg_path}: '{key}' is {v!r:.60}; embedrt runs Dense modules on the "
                                   "sentence embedding only")
    weights = folder / "model.safetensors"
    if not weights.is_file():
        pickled = [p.name for p in (folder / "pytorch_model.bin",) if p.is_file()]
        hint = (f" ({pickled[0]} is a pickle, which embedrt does not load; save the module with "
                "safe_serialization=True)") if pickled else ""
        raise FileNotFoundError(f"{weights}: file not found (the Dense module needs it){hint}")
    tensors = read_safetensors(weights)
    n, k = sizes["out_features"], sizes["in_features"]

    def tensor(key, shape):
        t = tensors.get(key)
        if t is None:
            raise ModelFolderError(f"{weights}: tensor {key!r} is missing")
        t = np.ascontiguousarray(t, dtype=np.float32)
        if t.shape != shape:
            raise ModelFolderError(f"{weights}: tensor {key!r} has shape {list(t.shape)}, config.json says "
                                   f"{list(shape)}")
        if not np.isfinite(t).all():
            raise ModelFolderError(f"{weights}: tensor {key!r} holds NaN or infinity")
        return t

    w = tensor("linear.weight", (n, k))
    b = tensor("linear.bias", (n,)) if has_bias else None
    if not has_bias and "linear.bias" in tensors:
        raise ModelFolderError(f"{weights}: holds 'linear.bias' but config.json says bias is false")
    r = tensor("residual.weight", (n, k)) if residual and n != k else None
    return DenseLayer(path=folder, weight=w, bias=b, activation=DENSE_ACTIVATIONS[name], residual=r,
                      use_residual=residual)


@dataclass
class ModelFolder:
    """What embedrt needs to know about an exported model folder."""

    path: Path
    onnx_path: Path
    tokenizer_path: Path
    config: dict
    pooling: tuple = ("mean",)
    include_prompt: bool = True
    normalize: bool = False
    max_seq_length: Optional[int] = None
    max_position: Optional[int] = None  # the longest sequence the positions allow (tokens)
    hidden_size: Optional[int] = None
    prompts: dict = field(default_factory=dict)
    default_prompt_name: Optional[str] = None
    similarity_fn_name: str = "cosine"
    do_lower_case: bool = False
    # sentence-transformers modules after pooling, in order: DenseLayer, or "normalize" (a
    # Normalize module with a Dense after it; a final Normalize is `normalize`)
    post_pooling: tuple = ()

    @property
    def pooling_name(self) -> str:
        """The pooling modes joined by '+', e.g. 'mean' or 'cls+mean'."""
        return "+".join(self.pooling)


def parse_pooling(cfg: dict, where: Path) -> tuple:
    """The pooling modes of a 1_Pooling/config.json, in sentence-transformers' order."""
    modes = cfg.get("pooling_mode")
    if modes is not None:
        if isinstance(modes, str):
            modes = [modes]
        if not isinstance(modes, (list, tuple)) or not modes:
            raise ModelFolderError(f"{where}: 'pooling_mode' must be a string or a list of strings")
        out = []
        for m in modes:
            if not isinstance(m, str):
                raise ModelFolderError(f"{where}: 'pooling_mode' must be a string or a list of strings, "
                                       f"got {m!r:.60} in it")
            m = _POOLING_ALIASES.get(m, m)
            if m not in POOLING_MODES:
                raise ModelFolderError(f"{where}: unknown pooling mode {m!r}; "
                                       f"supported: {', '.join(POOLING_MODES)}")
            out.append(m)
        return tuple(out)
    out = []
    for key, mode in _LEGACY_POOLING_KEYS.items():
        value = cfg.get(key, False)
        if not isinstance(value, bool):
            raise ModelFolderError(f"{where}: {key!r} must be true or false, got {value!r}")
        if value:
            out.append(mode)
    if not out:
        raise ModelFolderError(f"{where}: no pooling mode is enabled")
    return tuple(out)


def find_onnx(path: Path, onnx_file=None) -> Path:
    if onnx_file is not None:
        p = Path(onnx_file)
        cands = [p] if p.is_absolute() else [path / p, path / "onnx" / p]
        for c in cands:
            if c.is_file():
                return c
        raise FileNotFoundError(f"{cands[0]}: ONNX file not found (onnx_file={str(onnx_file)!r})")
    for c in (path / "onnx" / "model.onnx", path / "model.onnx"):
        if c.is_file():
            return c
    raise FileNotFoundError(f"{path / 'onnx' / 'model.onnx'}: file not found (nor {path / 'model.onnx'}); "
                            "is this an exported model folder? (embedrt export makes one from a checkpoint)")


def read_model_folder(path, onnx_file=None, require_onnx: bool = True) -> ModelFolder:
    """Reads the configuration of a model folder (see the module docstring). Without
    require_onnx (and no onnx_file), a folder without a graph has onnx_path None."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model folder not found")
    if not path.is_dir():
        raise NotADirectoryError(f"{path}: not a folder (expected a model folder)")

    config = _read_json(path / "config.json")
    tokenizer_path = path / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"{tokenizer_path}: file not found (embedrt needs a Hugging Face "
                                "fast tokenizer file)")
    if require_onnx or onnx_file is not None:
        onnx_path = find_onnx(path, onnx_file)
    else:  # a checkpoint folder (model.safetensors) may have no graph: the native engine runs it
        onnx_path = next((c for c in (path / "onnx" / "model.onnx", path / "model.onnx") if c.is_file()), None)

    def _pos_int(d, key, where):
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ModelFolderError(f"{where}: {key!r} must be a positive integer, got {v!r}")
        return v

    from .arch import config_field

    pos_key = config_field(config, "max_position_embeddings")
    max_position = _pos_int(config, pos_key, path / "config.json")
    if max_position is not None:
        from .arch import position_limit

        rows = max_position
        max_position = position_limit(config, rows)  # tokens: positions past a padding index
        if max_position < 1:
            raise ModelFolderError(f"{path / 'config.json'}: {pos_key} {rows} leaves no "
                                   "position past the padding index")
    hidden = (_pos_int(config, config_field(config, "hidden_size"), path / "config.json")
              or _pos_int(config, "d_model", path / "config.json"))

    # the module pipeline
    modules = _read_json(path / "modules.json", required=False, expect=list)
    pooling = ("mean",)
    include_prompt = True
    normalize = False
    pooling_dim = None
    post = []
    if modules is None:
        pass  # a plain transformer: mean pooling, as sentence-transformers does
    else:
        have_pooling = False
        for i, m in enumerate(modules):
            if not isinstance(m, dict) or not isinstance(m.get("type"), str):
                raise ModelFolderError(f"{path / 'modules.json'}: entry {i} has no 'type'")
            kind = m["type"].rsplit(".", 1)[-1]
            sub = m.get("path", "") or ""
            if not isinstance(sub, str):
                raise ModelFolderError(f"{path / 'modules.json'}: entry {i} has a non-string 'path'")
            if kind == "Transformer":
                continue
            if kind == "Pooling":
                cfg_path = path / sub / "config.json"
                cfg = _read_json(cfg_path)
                pooling = parse_pooling(cfg, cfg_path)
                inc = cfg.get("include_prompt", True)
                if not isinstance(inc, bool):
                    raise ModelFolderError(f"{cfg_path}: 'include_prompt' must be true or false")
                include_prompt = inc
                key = "word_embedding_dimension" if "word_embedding_dimension" in cfg else "embedding_dimension"
                pooling_dim = _pos_int(cfg, key, cfg_path)
                have_pooling = True
            elif kind == "Normalize":
                post.append("normalize")
            elif kind == "Dense":
                if not have_pooling:
                    raise ModelFolderError(f"{path / 'modules.json'}: the Dense module (entry {i}) comes "
                                           "before any Pooling module; embedrt runs Dense on pooled embeddings")
                post.append(read_dense(path / sub))
            else:
                raise ModelFolderError(f"{path / 'modules.json'}: module {m['type']!r} (entry {i}) is not "
                                       "supported; embedrt runs Transformer, Pooling, Dense and Normalize")
        if not have_pooling:
            pooling = ("mean",)
        while post and post[-1] == "normalize":  # trailing Normalize modules: the folder's default
            post.pop()
            normalize = True
    if pooling_dim is not None and hidden is not None and pooling_dim != hidden:
        raise ModelFolderError(f"{path}: the pooling dimension {pooling_dim} differs from the "
                               f"hidden size {hidden} in config.json")
    width = hidden * len(pooling) if hidden is not None else None  # what pooling gives
    for layer in post:
        if layer == "normalize":
            continue
        if width is not None and layer.in_features != width:
            raise ModelFolderError(f"{layer.path}: in_features {layer.in_features} differs from the width "
                                   f"{width} of its input (the pooled embedding or the Dense before it)")
        width = layer.out_features

    sbert = _read_json(path / "sentence_bert_config.json", required=False) or {}
    max_seq = _pos_int(sbert, "max_seq_length", path / "sentence_bert_config.json")
    do_lower = sbert.get("do_lower_case", False)
    if not isinstance(do_lower, bool):
        raise ModelFolderError(f"{path / 'sentence_bert_config.json'}: 'do_lower_case' must be true or "
                               f"false, got {do_lower!r:.60}")
    if max_seq is None:
        tok_cfg = _read_json(path / "tokenizer_config.json", required=False) or {}
        tml = tok_cfg.get("model_max_length")
        if isinstance(tml, int) and not isinstance(tml, bool) and 0 < tml < 1_000_000:
            max_seq = tml
    if max_seq is None:
        max_seq = max_position
    if max_seq is not None and max_position is not None:
        max_seq = min(max_seq, max_position)

    st = _read_json(path / "config_sentence_transformers.json", required=False) or {}
    where = path / "config_sentence_transformers.json"
    prompts = st.get("prompts") or {}
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and (v is None or isinstance(v, str))
                                                for k, v in prompts.items()):
        raise ModelFolderError(f"{where}: 'prompts' must map names to strings")
    prompts = {k: (v or "") for k, v in prompts.items()}
    default_prompt_name = st.get("default_prompt_name")
    if default_prompt_name is not None and not isinstance(default_prompt_name, str):
        raise ModelFolderError(f"{where}: 'default_prompt_name' must be a string, got {default_prompt_name!r:.60}")
    if default_prompt_name is not None and default_prompt_name not in prompts:
        raise ModelFolderError(f"{where}: default_prompt_name {default_prompt_name!r} is not one of the "
                               f"prompts {sorted(prompts)}")
    sim = st.get("similarity_fn_name") or "cosine"
    if not isinstance(sim, str):
        raise ModelFolderError(f"{where}: 'similarity_fn_name' must be a string, got {sim!r:.60}")
    sim = _SIMILARITY_ALIASES.get(sim, sim)
    if sim not in SIMILARITY_FUNCTIONS:
        raise ModelFolderError(f"{where}: unknown similarity_fn_name {sim!r}; "
                               f"supported: {', '.join(SIMILARITY_FUNCTIONS)}")

    return ModelFolder(path=path, onnx_path=onnx_path, tokenizer_path=tokenizer_path, config=config,
                       pooling=pooling, include_prompt=include_prompt, normalize=normalize,
                       max_seq_length=max_seq, max_position=max_position, hidden_size=hidden,
                       prompts=prompts, default_prompt_name=default_prompt_name,
                       similarity_fn_name=sim, do_lower_case=do_lower, post_pooling=tuple(post))
