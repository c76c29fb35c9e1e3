"""``embedrt embed-dataset``: a Parquet file of texts in, the same rows with embeddings out, on
Ray Data, Spark or in this process."""
from __future__ import annotations

import os
import sys
import time

from ..quantize import ENCODE_PRECISIONS as PRECISIONS

_EXAMPLES = """\
examples:
  embedrt embed-dataset --engine local --input docs.parquet --column text --output out.parquet
  embedrt embed-dataset --engine ray --input docs.parquet --output out.parquet --concurrency 8
  embedrt embed-dataset --engine spark --input s3a://bucket/docs/ --output s3a://bucket/emb/ \\
      --model /shared/models/my-model --precision ubinary

Output: a path ending in .parquet is written as one file, in input order; any other path as a
folder of Parquet files (the engine's own writer). The model folder must be readable at the
same path on every worker; without --model, each worker uses the default model it has installed.
int8 / uint8 need --ranges FILE.npy (per-dimension [min, max], shape [2, dim]).
Ray: connects to RAY_ADDRESS when set, else starts a local cluster. Spark: uses the master given
by spark-submit / SPARK_MASTER, else local[*].
"""


def add_parser(subparsers):
    """Registers ``embed-dataset`` on an argparse subparsers object."""
    import argparse

    p = subparsers.add_parser("embed-dataset", help="embed a Parquet file of texts on Ray, Spark or locally",
                              description="Embeds the text column of a Parquet dataset and writes its rows "
                                          "with an embedding column.",
                              epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=["ray", "spark", "local"], default="local")
    p.add_argument("--input", required=True, metavar="DOCS.parquet", help="Parquet file or folder")
    p.add_argument("--column", default="text", help="the text column (default: text)")
    p.add_argument("--output", required=True, metavar="OUT.parquet",
                   help="a .parquet file, or a folder")
    p.add_argument("--output-column", default="embedding")
    p.add_argument("-m", "--model", metavar="DIR", help="exported model folder (default: all-MiniLM-L6-v2)")
    p.add_argument("--backend", default="auto", choices=["auto", "native", "onnxruntime"])
    p.add_argument("--batch-size", type=int, default=256, help="rows per batch (default: 256)")
    p.add_argument("--precision", default="float32", choices=PRECISIONS)
    p.add_argument("--ranges", metavar="FILE.npy", help="int8/uint8 quantization ranges [2, dim]")
    p.add_argument("--dims", type=int, metavar="N", help="keep the first N dimensions (Matryoshka)")
    p.add_argument("--prompt-name", help="use one of the model's prompts")
    p.add_argument("--concurrency", type=int, default=None,
                   help="ray: actors (default: the cluster's CPUs / threads); local: ignored")
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads per worker (default: 1 on ray/spark, all cores locally)")
    p.add_argument("--on-null", choices=["error", "empty"], default="error",
                   help="a null text: fail (default) or embed it as ''")
    p.add_argument("--no-progress", action="store_true", help="local: no progress bar")
    p.set_defaults(func=cmd_embed_dataset)
    return p


def _options(args) -> dict:
    opts = dict(column=args.column, output_column=args.output_column, batch_size=args.batch_size,
                precision=args.precision, truncate_dim=args.dims, prompt_name=args.prompt_name,
                backend=args.backend, on_null=args.on_null)
    if args.ranges:
        import numpy as np

        opts["ranges"] = np.load(args.ranges)
    return opts


def _single_file(path: str) -> bool:
    return path.endswith(".parquet") and not os.path.isdir(path)


def cmd_embed_dataset(args) -> int:
    try:
        return _embed_dataset(args)
    except KeyError as e:  # a missing column: an input error like the others
        raise ValueError(e.args[0] if e.args else str(e)) from None


def _embed_dataset(args) -> int:
    t0 = time.perf_counter()
    opts = _options(args)
    if args.engine == "local":
        from .local import embed_parquet

        n = embed_parquet(args.input, args.output, args.model, threads=args.threads,
                          progress=not args.no_progress, **opts)
    elif args.engine == "ray":
        n = _run_ray(args, opts)
    else:
        n = _run_spark(args, opts)
    dt = time.perf_counter() - t0
    print(f"embedded {n} rows into {args.output} in {dt:.1f} s ({args.engine})", file=sys.stderr)
    return 0


def _run_ray(args, opts) -> int:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError("--engine ray needs Ray: pip install \"embedrt[distributed]\"") from None
    from .ray_data import embed_ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        # A local cluster gets one logical CPU more than the machine has: the reading and
        # writing tasks (mostly waiting on I/O) need a CPU of Ray's while the embedding actors
        # hold one each; without it, actors on every core would leave the reader none and wait
        # for it forever.
        extra = {} if address else {"num_cpus": (os.cpu_count() or 1) + 1}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **extra)
    threads = args.threads or 1
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # one CPU of the cluster stays free for the reading and writing tasks
    concurrency = args.concurrency or max(1, (cpus - 1) // threads)
    if concurrency * threads >= cpus:
        raise ValueError(f"--concurrency {concurrency} x {threads} threads would hold all {cpus} CPUs of "
                         "the Ray cluster, leaving none for reading and writing the data; "
                         f"use at most {max(1, (cpus - 1) // threads)}")
    ds = ray.data.read_parquet(args.input)
    out = embed_ray(ds, args.model, threads=threads, num_cpus=threads, concurrency=concurrency, **opts)
    if not _single_file(args.output):
        out.write_parquet(args.output)
        return out.count()
    import pyarrow.parquet as pq

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    writer, n = None, 0
    try:
        for batch in out.iter_batches(batch_format="pyarrow", batch_size=None):
            if writer is None:
                writer = pq.ParquetWriter(args.output, batch.schema)
            writer.write_table(batch)
            n += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return n


def _run_spark(args, opts) -> int:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ImportError("--engine spark needs pyspark: pip install \"embedrt[distributed]\"") from None
    from .spark import embed_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("embedrt embed-dataset")
    if not os.environ.get("SPARK_MASTER") and "spark.master" not in os.environ.get("PYSPARK_SUBMIT_ARGS", ""):
        builder = builder.master("local[*]")
    spark = builder.getOrCreate()
    df = spark.read.parquet(args.input)
    out = embed_spark(df, args.model, threads=args.threads or 1, **opts)
    if not _single_file(args.output):
        out.write.mode("error").parquet(args.output)
        return spark.read.parquet(args.output).count()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = out.toArrow() if hasattr(out, "toArrow") else pa.Table.from_pandas(out.toPandas(), preserve_index=False)
    pq.write_table(table, args.output)
    return table.num_rows
