"""The onnxruntime backend: runs any exported encoder graph on the CPU.

The graph's inputs and outputs are read, not assumed: inputs ``input_ids`` and
``attention_mask`` (and ``token_type_ids`` when the graph has it), output either per-token
(``last_hidden_state`` / ``token_embeddings``, pooled here) or already pooled
(``sentence_embedding``, used as is).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger("embedrt")

_ORT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32,
              "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_TOKEN_OUTPUTS = ("token_embeddings", "last_hidden_state")
_POOLED_OUTPUT = "sentence_embedding"
_PROBE_TOLERANCE = 1e-4  # max relative deviation per token of a rebuilt graph from the original


def _input_types(session) -> dict:
    return {i.name: _ORT_TYPES.get(i.type, np.int64) for i in session.get_inputs()}


def _make_feed(input_types: dict, ids: list, type_ids=None):
    """The padded inputs of a batch for a graph with `input_types`: (feed, lengths)."""
    n = len(ids)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    width = int(lengths.max()) if n else 0
    return _feed_of(input_types, ids, type_ids, lengths, width), lengths


def _feed_of(input_types, ids, type_ids, lengths, width, pad_id: int = 0,
             position_padding_idx=None) -> dict:
    """The padded inputs: input_ids padded with `pad_id` (the tokenizer's), and position_ids
    (for a graph that takes them) as the model makes them: 0, 1, ... or, for a family whose
    positions start past a padding index (MPNet, RoBERTa), HF's create_position_ids (the count
    of non-padding tokens past it; padding_idx for a padding token and the padding)."""
    n = len(ids)
    mask = np.arange(width)[None, :] < lengths[:, None]
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    input_ids[mask] = np.concatenate(ids) if n > 1 else ids[0]
    feed = {}
    for name, dtype in input_types.items():
        if name == "input_ids":
            value = input_ids
        elif name == "attention_mask":
            value = mask.astype(dtype)
        elif name == "token_type_ids":
            value = np.zeros((n, width), dtype=dtype)
            if type_ids is not None:
                value[mask] = np.concatenate(type_ids) if n > 1 else type_ids[0]
        elif position_padding_idx is None:  # position_ids
            value = np.broadcast_to(np.arange(width, dtype=dtype), (n, width)).copy()
        else:
            real = mask & (input_ids != position_padding_idx)
            value = np.cumsum(real, axis=1) * real + position_padding_idx
        if value.dtype != dtype:
            value = value.astype(dtype)
        feed[name] = value
    return feed


def _probe_ids(config: dict) -> list:
    """A few random id sequences of different lengths within the model's vocabulary."""
    rng = np.random.default_rng(20240611)
    vocab = int(config["vocab_size"])
    longest = max(2, min(int(config["max_position_embeddings"]), 24))
    lengths = sorted({min(longest, n) for n in (3, 11, 24)})
    return [rng.integers(0, vocab, n).astype(np.int64) for n in lengths]


def rebuilt_deviation(original, rebuilt, config: dict) -> float:
    """The max relative deviation (per token, over a probe of random id sequences) of the
    per-token output of `rebuilt` from that of `original` (two onnxruntime sessions)."""
    ids = _probe_ids(config)
    outs = []
    for sess in (original, rebuilt):
        feed, lengths = _make_feed(_input_types(sess), ids)
        outs.append(np.asarray(sess.run([sess.get_outputs()[0].name], feed)[0], dtype=np.float64))
    a, b = outs
    if a.shape != b.shape:
        return float("inf")
    mask = np.arange(a.shape[1])[None, :] < lengths[:, None]
    a, b = a[mask], b[mask]
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    num = np.linalg.norm(a - b, axis=-1)
    den = np.maximum(np.linalg.norm(a, axis=-1), 1e-30)
    return float(np.max(num / den)) if num.size else 0.0


class OnnxRuntimeBackend:
    """Runs an ONNX encoder graph; a `backend.Backend`. ``embed(ids, type_ids, pooling)`` pads
    one batch to its longest text and returns pooled float32 [n, dim] (not normalized)."""

    kind = "onnxruntime"
    name = "onnxruntime"
    precision = None  # the graph computes as it says
    max_position = None  # the folder's config.json says
    skips_prompt = True

    def __init__(self, onnx_path, threads=None, config=None):
        import onnxruntime as ort

        from .._runtime import get_num_threads

        self.path = Path(onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads) if threads else get_num_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no spin-waiting: the threads of an idle server or of the native engine beside it stay free
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.rebuilt = False
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: onnxruntime cannot load this graph ({e})") from None
        if config is not None and config.get("model_type") == "bert":
            # A plain BertModel graph (e.g. a torch.onnx export) is rebuilt from its own weights
            # into embedrt's graph: the same arithmetic without the exporter's extra passes over
            # the [batch, heads, seq, seq] attention tensors (NaN guards, mask expansion). The
            # shape of the rebuild (heads, epsilon, activation) comes from config.json, so it is
            # used only when it computes what the graph computes on a probe.
            try:
                from .export import rebuild_bert_graph

                model = rebuild_bert_graph(self.path, config)
                source = model.SerializeToString() if model.ByteSize() < 2_000_000_000 else None
                del model
                if source is not None:
                    rebuilt = ort.InferenceSession(source, sess_options=opts,
                                                   providers=["CPUExecutionProvider"])
                    dev = rebuilt_deviation(self.session, rebuilt, config)
                    if dev <= _PROBE_TOLERANCE:
                        self.session, self.rebuilt = rebuilt, True
                    else:
                        logger.warning("embedrt: %s runs as it is: the graph rebuilt from config.json "
                                       "deviates from it by %.3g (relative, per token; the bound is "
                                       "%g); config.json does not describe this graph", self.path.name,
                                       dev, _PROBE_TOLERANCE)
                    del rebuilt
            except Exception as e:  # noqa: BLE001 - any graph that does not fit runs as it is
                logger.debug("embedrt: %s runs as it is (%s)", self.path.name, e)
        self.threads = opts.intra_op_num_threads
        self.pad_id = 0
        self.position_padding_idx = None

        inputs = {i.name: i for i in self.session.get_inputs()}
        if "input_ids" not in inputs:
            raise ValueError(f"{self.path}: the graph has no 'input_ids' input "
                             f"(inputs: {', '.join(inputs)})")
        unknown = set(inputs) - {"input_ids", "attention_mask", "token_type_ids", "position_ids"}
        if unknown:
            raise ValueError(f"{self.path}: the graph has inputs embedrt cannot feed: {', '.join(sorted(unknown))}")
        self._input_types = _input_types(self.session)

        outputs = {o.name: o for o in self.session.get_outputs()}
        self.pooled = False
        out = None
        if _POOLED_OUTPUT in outputs:
            out, self.pooled = _POOLED_OUTPUT, True
        else:
            for n in _TOKEN_OUTPUTS:
                if n in outputs:
                    out = n
                    break
        if out is None:  # the first output of rank 3 (per token) or rank 2 (pooled)
            for o in self.session.get_outputs():
                if len(o.shape) in (2, 3):
                    out, self.pooled = o.name, len(o.shape) == 2
                    break
        if out is None:
            raise ValueError(f"{self.path}: no per-token (rank 3) or pooled (rank 2) output among "
                             f"{', '.join(outputs)}")
        self.output_name = out
        shape = outputs[out].shape
        self.dim = shape[-1] if shape and isinstance(shape[-1], int) else None
        self._outputs = [out]
        logger.debug("onnxruntime graph %s: inputs %s, output %s (%s)", self.path.name,
                     list(inputs), out, "pooled" if self.pooled else "per token")

    def set_padding(self, pad_id=None, position_padding_idx=None) -> None:
        """Pads batches with `pad_id` (the tokenizer's pad id; None: 0) and, for a graph that
        takes position_ids, numbers positions past `position_padding_idx` (the model's padding
        index where its positions start past it, else None: 0, 1, ...)."""
        self.pad_id = 0 if pad_id is None else int(pad_id)
        self.position_padding_idx = None if position_padding_idx is None else int(position_padding_idx)

    def width(self, modes: int, hidden=None):
        """The width of embed()'s rows for `modes` concatenated pooling modes: the graph's
        pooled width, or its per-token width (or `hidden` when the graph leaves it symbolic)
        times `modes`; None when unknown."""
        if self.pooled:
            return self.dim
        per_token = self.dim or hidden
        return per_token * int(modes) if per_token else None

    def load_report(self) -> dict:
        """{"source", "engine_file", "gate"} of this load (see backend.Backend): the graph."""
        return {"source": str(self.path), "engine_file": None, "gate": None}

    @property
    def input_names(self):
        return list(self._input_types)

    def run(self, ids: list, type_ids=None) -> tuple:
        """Pads one batch and runs the graph: (output, lengths)."""
        n = len(ids)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        width = int(lengths.max()) if n else 0
        feed = _feed_of(self._input_types, ids, type_ids, lengths, width, self.pad_id,
                        self.position_padding_idx)
        out = self.session.run(self._outputs, feed)[0]
        return out, lengths

    def embed(self, ids: list, type_ids=None, pooling="mean", skip: int = 0) -> np.ndarray:
        """Pooled float32 [len(ids), dim] for a batch of unpadded int64 id arrays."""
        if not ids:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out, lengths = self.run(ids, type_ids)
        if self.pooled:
            return np.ascontiguousarray(out, dtype=np.float32)
        if out.dtype != np.float32:
            out = out.astype(np.float32)
        from .pooling import pool

        return pool(out, lengths, pooling, skip=skip)
