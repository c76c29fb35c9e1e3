"""Shared pieces of the family loaders: the sizes every config.json gives, the tensor getter
that checks each shape against them, and the embedding and post-LayerNorm layer tensors that
BERT-style checkpoints name alike."""
from __future__ import annotations

import numpy as np

# The layer tensors of a BERT-style block (BERT, RoBERTa, XLM-RoBERTa): canonical slot ->
# module name under ``encoder.layer.<i>.``; ``ln1`` / ``ln2`` are the two post-LayerNorms.
BERT_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "ao": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense",
              "ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}


def find_prefix(tensors: dict, probe: str, prefixes, path, family: str) -> str:
    """The prefix under which a checkpoint stores the base model (``probe`` is a tensor every
    checkpoint of the family has)."""
    from .._native_load import NotRecognized

    for cand in prefixes:
        if cand + probe in tensors:
            return cand
    raise NotRecognized(f"{path}: no {probe}: not a {family} checkpoint")


def getter(tensors: dict, prefix: str, path, layernorm_gamma: bool = False):
    """get(name, shape): the tensor ``prefix + name`` as float32, its shape checked against
    the one the config implies; a missing or misfit tensor is named. With layernorm_gamma, a
    LayerNorm's ``weight`` / ``bias`` may also be stored as ``gamma`` / ``beta`` (checkpoints
    converted from TensorFlow)."""
    from .._native_load import NotRecognized

    def get(name, shape, alt=()):
        if layernorm_gamma and "LayerNorm." in name:
            alt = (*alt, name.replace("LayerNorm.weight", "LayerNorm.gamma")
                   .replace("LayerNorm.bias", "LayerNorm.beta"))
        for cand in (name, *alt):
            key = prefix + cand
            if key in tensors:
                arr = tensors[key]
                if tuple(arr.shape) != tuple(shape):
                    raise NotRecognized(f"{path}: tensor {key} has shape {tuple(arr.shape)}, but "
                                        f"config.json implies {tuple(shape)}")
                if arr.dtype.kind != "f":
                    raise NotRecognized(f"{path}: tensor {key} holds {arr.dtype}, not floats")
                return np.asarray(arr, np.float32)
        raise NotRecognized(f"{path}: missing tensor {prefix + name}")

    return get


def int_field(raw: dict, key: str, path, default=None) -> int:
    from .._native_load import NotRecognized

    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise NotRecognized(f"{path}: {key!r} must be a non-negative integer, got {v!r:.60}")
    return v


def sizes(raw: dict, path, max_position: int, type_vocab: int | None = None) -> dict:
    """The engine's sizes from config.json (BERT's field names; ``max_position`` is the
    default of max_position_embeddings, ``type_vocab`` that of type_vocab_size, or None for a
    family without token types), the activation checked to be erf GELU."""
    from .._native_load import NotRecognized

    act = raw.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_python"):
        raise NotRecognized(f"{path}: activation {act!r} is not supported (only erf GELU)")
    try:
        return {
            "vocab": int(raw["vocab_size"]),
            "hidden": int(raw["hidden_size"]),
            "heads": int(raw["num_attention_heads"]),
            "intermediate": int(raw["intermediate_size"]),
            "layers": int(raw["num_hidden_layers"]),
            "max_position": int(raw.get("max_position_embeddings", max_position)),
            "type_vocab": 0 if type_vocab is None else int(raw.get("type_vocab_size", type_vocab)),
            "eps": float(raw.get("layer_norm_eps", 1e-12)),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise NotRecognized(f"{path}: missing or bad field ({e})") from None


def check_bidirectional(raw: dict, path) -> None:
    """Refuses what makes a BERT-style model attend otherwise than to every token of its text:
    positions other than absolute embeddings, a causal decoder, cross-attention."""
    from .._native_load import NotRecognized

    pet = raw.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise NotRecognized(f"{path}: position_embedding_type {pet!r} is not supported")
    for key in ("is_decoder", "add_cross_attention"):
        if raw.get(key) not in (None, False):
            raise NotRecognized(f"{path}: {key} is {raw[key]!r:.40}: the native engine runs "
                                "bidirectional encoders only")


def embedding_params(get, cfg: dict) -> dict:
    """word, pos, emb_g, emb_b (under ``embeddings.``), shapes from cfg."""
    h = cfg["hidden"]
    return {"word": get("embeddings.word_embeddings.weight", (cfg["vocab"], h)),
            "pos": get("embeddings.position_embeddings.weight", (cfg["max_position"], h)),
            "emb_g": get("embeddings.LayerNorm.weight", (h,)), "emb_b": get("embeddings.LayerNorm.bias", (h,))}


def layer_params(get, tensors: dict, prefix: str, cfg: dict, names: dict, path) -> dict:
    """The canonical layer params of every layer (``names``: slot -> module, as BERT_LAYER),
    each shape checked; a checkpoint with more layers than config.json says is refused."""
    from .._native_load import NotRecognized

    h, inter = cfg["hidden"], cfg["intermediate"]
    shapes = {"up": (inter, h), "down": (h, inter)}
    p = {}
    for i in range(cfg["layers"]):
        pre = f"encoder.layer.{i}."
        for k in ("q", "k", "v", "ao", "up", "down"):
            w = shapes.get(k, (h, h))
            p[f"{i}.{k}_w"] = get(pre + names[k] + ".weight", w)
            p[f"{i}.{k}_b"] = get(pre + names[k] + ".bias", (w[0],))
        for k in ("ln1", "ln2"):
            p[f"{i}.{k}_g"] = get(pre + names[k] + ".weight", (h,))
            p[f"{i}.{k}_b"] = get(pre + names[k] + ".bias", (h,))
    if f"{prefix}encoder.layer.{cfg['layers']}.{names['q']}.weight" in tensors:
        raise NotRecognized(f"{path}: holds more layers than config.json says")
    return p


def position_ids(seq, padding_idx: int) -> np.ndarray:
    """HF create_position_ids_from_input_ids for one unpadded sequence (MPNet, RoBERTa): the
    count of non-padding tokens up to each, past padding_idx; a padding token takes
    padding_idx."""
    mask = (np.asarray(seq) != padding_idx).astype(np.int64)
    return np.cumsum(mask) * mask + padding_idx
