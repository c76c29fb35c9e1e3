"""The local engine: a pyarrow Table embedded in this process, batch after batch."""
from __future__ import annotations

from ._worker import check_texts, encode, make_options, to_arrow


def check_arrow_column(schema, column: str) -> None:
    """Raises KeyError naming `column` when the schema lacks it, TypeError when it holds no text."""
    import pyarrow as pa

    if column not in schema.names:
        raise KeyError(f"column {column!r} is not in the input (columns: {', '.join(schema.names)})")
    t = schema.field(column).type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
            or getattr(pa.types, "is_string_view", lambda _t: False)(t)):
        raise TypeError(f"column {column!r} has type {t}, expected text (string)")


def embed_table(table, model=None, *, column="text", output_column="embedding", batch_size=256,
                precision="float32", normalize=None, truncate_dim=None, prompt_name=None,
                backend="auto", threads=None, on_null="error", ranges=None,
                calibration_embeddings=None, encode_batch_size=32, progress=False, row_offset=0):
    """Embeds the `column` of a ``pyarrow.Table`` in this process; returns the table with
    `output_column` appended (the same Arrow types as :func:`embed_ray`). Errors name the row
    by its index in the table (plus `row_offset`). `progress`: a tqdm bar, or True for one."""
    import pyarrow as pa

    opts = make_options(model, column=column, output_column=output_column, batch_size=batch_size,
                        encode_batch_size=encode_batch_size, precision=precision, normalize=normalize,
                        truncate_dim=truncate_dim, prompt_name=prompt_name, backend=backend,
                        threads=threads or _all_threads(), on_null=on_null, ranges=ranges,
                        calibration_embeddings=calibration_embeddings)
    check_arrow_column(table.schema, column)
    if output_column in table.schema.names:
        raise ValueError(f"the input already has a column {output_column!r}")
    col = table.column(column)
    n = table.num_rows
    bar, own_bar = progress, False
    if progress is True:
        from tqdm.auto import tqdm

        bar, own_bar = tqdm(total=n, desc="Embedding", unit="row"), True
    elif progress is None or progress is False:
        bar = None
    chunks = []
    try:
        for start in range(0, n, opts.batch_size):
            values = col.slice(start, opts.batch_size).to_pylist()
            texts = check_texts(values, opts.on_null, lambda i, s=start: f"row {row_offset + s + i}")
            chunks.append(to_arrow(encode(texts, opts), opts.precision))
            if bar is not None:
                bar.update(len(texts))
    finally:
        if own_bar:
            bar.close()
    if not chunks:
        chunks = [to_arrow(encode([], opts), opts.precision)]
    out = pa.chunked_array(chunks)
    return table.append_column(output_column, out)


def embed_parquet(input, output, model=None, *, column="text", output_column="embedding",
                  batch_size=256, progress=True, **options) -> int:
    """Streams a Parquet file through :func:`embed_table` into a new Parquet file (rows in input
    order, memory bounded by a few batches); returns the number of rows."""
    import pyarrow.parquet as pq

    src = pq.ParquetFile(input)
    check_arrow_column(src.schema_arrow, column)
    n = src.metadata.num_rows
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="Embedding", unit="row")
    writer = None
    done = 0
    try:
        for batch in src.iter_batches(batch_size=max(batch_size, 1024)):
            import pyarrow as pa

            out = embed_table(pa.Table.from_batches([batch]), model, column=column,
                              output_column=output_column, batch_size=batch_size, progress=bar,
                              row_offset=done, **options)
            if writer is None:
                writer = pq.ParquetWriter(output, out.schema)
            writer.write_table(out)
            done += out.num_rows
        if writer is None:  # no rows: an empty file with the output schema
            import pyarrow as pa

            empty = embed_table(src.schema_arrow.empty_table(), model, column=column,
                                output_column=output_column, batch_size=batch_size, **options)
            writer = pq.ParquetWriter(output, empty.schema)
            writer.write_table(empty)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    return done


def _all_threads() -> int:
    from .._runtime import get_num_threads

    return get_num_threads()
