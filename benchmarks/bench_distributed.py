"""Distributed embedding throughput: Ray Data and Spark against one process.

    python benchmarks/bench_distributed.py [--model DIR] [--limit N] [--engines ray,spark]

Measures, on the corpus of stdlib docstrings (or --corpus, a JSON list of texts):
- in-process ``Encoder.encode`` with 1 thread (rows/s; model load excluded);
- Ray Data with 1 and 2 actors x 1 thread: steady rows/s, from the first batch the driver
  receives to the last (actor start-up and model load excluded, reported separately);
- Spark local[1] and local[2] with 1 thread per Python worker: a warm-up job loads the model in
  every worker (reported as start-up), then the timed job.
The ratio "2 workers / in-process" is the scale-out (target >= 1.7x on 2 cores); "1 - 1 worker /
in-process" is the per-row overhead of the engine (target <= 10%).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "fixtures" / "corpus" / "stdlib_docstrings.json"


def _inprocess(model, texts, batch_size, chunk):
    import embedrt

    t = time.perf_counter()
    enc = embedrt.Encoder(model, threads=1)
    load = time.perf_counter() - t
    enc.encode(texts[:8])
    t = time.perf_counter()
    enc.encode(texts, batch_size=batch_size)
    whole = time.perf_counter() - t
    # the engines embed `chunk` rows per call (sorted by length within the call only)
    t = time.perf_counter()
    for s in range(0, len(texts), chunk):
        enc.encode(texts[s:s + chunk], batch_size=batch_size)
    chunked = time.perf_counter() - t
    return {"load_s": load, "rows_s": len(texts) / whole, "rows_s_chunked": len(texts) / chunked}


def _ray(model, texts, actors, chunk, batch_size):
    import ray
    import ray.data

    from embedrt.distributed import embed_ray

    t0 = time.perf_counter()
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)],
                             override_num_blocks=max(1, len(texts) // chunk))
    out = embed_ray(ds, model, batch_size=chunk, encode_batch_size=batch_size, concurrency=actors,
                    threads=1, num_cpus=1)
    first = None
    rows_after_first = 0
    n = 0
    for batch in out.iter_batches(batch_size=None, batch_format="pyarrow"):
        now = time.perf_counter()
        n += batch.num_rows
        if first is None:
            first = now
        else:
            rows_after_first += batch.num_rows
    last = time.perf_counter()
    assert n == len(texts)
    return {"startup_s": first - t0, "rows_s": rows_after_first / (last - first), "total_s": last - t0}


def _spark(model, texts, cores, chunk, batch_size):
    from pyspark.sql import SparkSession

    from embedrt.distributed import embed_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    t0 = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{cores}]").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    session = time.perf_counter() - t0
    parts = cores * 8
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id long, text string").repartition(parts)
    df = df.persist()
    df.count()
    warm = spark.createDataFrame([(i, t) for i, t in enumerate(texts[:cores * 4])],
                                 "id long, text string").repartition(cores)
    t = time.perf_counter()
    embed_spark(warm, model, batch_size=chunk, encode_batch_size=batch_size).count()
    warmup = time.perf_counter() - t
    t = time.perf_counter()
    embed_spark(df, model, batch_size=chunk, encode_batch_size=batch_size) \
        .selectExpr("size(embedding) as d").groupBy().sum("d").collect()
    dt = time.perf_counter() - t
    spark.stop()
    return {"startup_s": session + warmup, "rows_s": len(texts) / dt, "total_s": dt}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="exported model folder (default: the default model)")
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--limit", type=int, help="embed the first N texts only")
    ap.add_argument("--chunk", type=int, default=128, help="rows per engine batch (default 128)")
    ap.add_argument("--batch-size", type=int, default=32, help="texts per inference batch")
    ap.add_argument("--engines", default="ray,spark")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    texts = [str(t) for t in json.loads(Path(args.corpus).read_text(encoding="utf-8"))]
    if args.limit:
        texts = texts[:args.limit]
    engines = args.engines.split(",")
    model = args.model
    if model is None:  # resolve the default model once, on the driver (workers use the same cache)
        from embedrt.encoder.default_model import default_model_dir

        model = str(default_model_dir())
    res = {"rows": len(texts), "inprocess": _inprocess(model, texts, args.batch_size, args.chunk)}
    base = res["inprocess"]["rows_s"]
    if "ray" in engines:
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
        res["ray_init_s"] = time.perf_counter() - t
        res["ray1"] = _ray(model, texts, 1, args.chunk, args.batch_size)
        res["ray2"] = _ray(model, texts, 2, args.chunk, args.batch_size)
        ray.shutdown()
    if "spark" in engines:
        res["spark1"] = _spark(model, texts, 1, args.chunk, args.batch_size)
        res["spark2"] = _spark(model, texts, 2, args.chunk, args.batch_size)

    print(f"rows {len(texts)}, model {model if args.model else 'default'}, chunk {args.chunk}, "
          f"batch {args.batch_size}")
    print(f"{'configuration':34s} {'rows/s':>9s} {'vs 1 proc':>10s} {'start-up s':>11s}")
    ip = res["inprocess"]
    print(f"{'in-process, 1 thread (sorted all)':34s} {ip['rows_s']:9.1f} {1:10.2f} {ip['load_s']:11.1f}")
    print(f"{'in-process, 1 thread, per chunk':34s} {ip['rows_s_chunked']:9.1f} "
          f"{ip['rows_s_chunked'] / base:10.2f} {'':>11s}")
    for key, label in (("ray1", "Ray, 1 actor x 1 thread"), ("ray2", "Ray, 2 actors x 1 thread"),
                       ("spark1", "Spark local[1], 1 thread"), ("spark2", "Spark local[2], 1 thread each")):
        if key in res:
            r = res[key]
            extra = f" (+ray.init {res['ray_init_s']:.1f})" if key.startswith("ray") else ""
            print(f"{label:34s} {r['rows_s']:9.1f} {r['rows_s'] / base:10.2f} {r['startup_s']:11.1f}{extra}")
    for one, two, name in (("ray1", "ray2", "Ray"), ("spark1", "spark2", "Spark")):
        if one in res:
            print(f"{name}: scale-out 2 workers / in-process {res[two]['rows_s'] / base:.2f}x; "
                  f"overhead per row at 1 worker {100 * (1 - res[one]['rows_s'] / base):+.1f}% "
                  f"(vs per-chunk in-process {100 * (1 - res[one]['rows_s'] / ip['rows_s_chunked']):+.1f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
