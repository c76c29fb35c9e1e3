"""embedrt.distributed on a local Ray cluster and Spark local[2]: results equal in-process
encode, every row exactly once (also when an actor is killed or a task fails once), bad input,
and sharded indexes equal to one index."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import embedrt

TINY = Path(__file__).resolve().parent / "data" / "export_corpus" / "tiny-bert"
PACKAGE_PARENT = str(Path(embedrt.__file__).resolve().parents[1])


def _texts(n):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    return [" ".join(words[(i * j) % 8] for j in range(1 + i % 11)) + f" {i}" for i in range(n)]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The tiny model copied to a tmp folder, and a cache of the module's own, for the driver and
    every worker (workers inherit the environment set before Ray / Spark start)."""
    if not (TINY / "onnx" / "model.onnx").is_file():
        pytest.skip("the export corpus (tests/data/export_corpus) is not present")
    root = tmp_path_factory.mktemp("distributed")
    model = root / "tiny-bert"
    shutil.copytree(TINY, model, ignore=shutil.ignore_patterns("onnx", "reference.npz", "corpus.json"))
    (model / "onnx").mkdir()
    shutil.copy2(TINY / "onnx" / "model.onnx", model / "onnx" / "model.onnx")
    saved = {k: os.environ.get(k) for k in ("EMBEDRT_CACHE_DIR", "PYTHONPATH", "PYSPARK_PYTHON")}
    os.environ["EMBEDRT_CACHE_DIR"] = str(root / "cache")
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = PACKAGE_PARENT + (os.pathsep + path if path else "")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    yield {"model": str(model), "root": root}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def encoder(env):
    return embedrt.Encoder(env["model"], threads=1)


@pytest.fixture(scope="module")
def ray_cluster(env):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'embedrt[distributed]')")
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'embedrt[distributed]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def spark(env):
    pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'embedrt[distributed]')")
    from pyspark.sql import SparkSession

    # local[2, 2]: two cores, and a task may fail once and be retried
    session = (SparkSession.builder.master("local[2,2]").appName("embedrt-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _ranges(encoder, texts):
    emb = encoder.encode(texts)
    return np.vstack((emb.min(axis=0), emb.max(axis=0)))


def _decode(values, precision):
    if precision in ("binary", "ubinary"):
        dtype = np.int8 if precision == "binary" else np.uint8
        return np.stack([np.frombuffer(bytes(v), dtype) for v in values])
    rows = np.stack([np.asarray(v) for v in values])
    return rows.astype(np.float32) if precision.startswith("float") else rows


def _check(encoder, texts, ids, values, precision, ranges=None):
    """Every id once, and the embeddings of in-process encode (bit for bit for integer codes)."""
    ids = np.asarray(ids)
    assert sorted(ids.tolist()) == list(range(len(texts)))
    got = _decode(values, precision)[np.argsort(ids)]
    if precision in ("int8", "uint8"):
        want = embedrt.quantize(encoder.encode(texts), precision, ranges=ranges)
        assert np.array_equal(got, want.astype(got.dtype)) and np.array_equal(got.astype(want.dtype), want)
        # the ranges of the whole corpus make it what encode(precision=...) gives
        if ranges is not None:
            assert np.array_equal(want, encoder.encode(texts, precision=precision))
    elif precision in ("binary", "ubinary"):
        want = encoder.encode(texts, precision=precision)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    else:
        want = encoder.encode(texts, precision=precision).astype(np.float32)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- Ray
@pytest.mark.parametrize("precision", ["float32", "ubinary", "binary", "int8"])
def test_ray_matches_encode(ray_cluster, env, encoder, precision):
    import ray.data

    from embedrt.distributed import embed_ray

    texts = _texts(240)
    ds = ray.data.from_items([{"id": i, "text": t, "extra": f"x{i}"} for i, t in enumerate(texts)],
                             override_num_blocks=4)
    ranges = _ranges(encoder, texts) if precision == "int8" else None
    out = embed_ray(ds, env["model"], precision=precision, batch_size=40, ranges=ranges)
    table = out.to_arrow_refs()
    import pyarrow as pa

    table = pa.concat_tables(ray.get(table))
    assert set(table.schema.names) == {"id", "text", "extra", "embedding"}
    rows = table.to_pylist()
    for r in rows:
        assert r["extra"] == f"x{r['id']}" and r["text"] == texts[r["id"]]
    if precision == "float32":
        assert pa.types.is_fixed_size_list(table.schema.field("embedding").type)
    _check(encoder, texts, [r["id"] for r in rows], [r["embedding"] for r in rows], precision, ranges)


def test_ray_actor_killed_mid_job(ray_cluster, env, encoder):
    import ray
    import ray.data

    from embedrt.distributed import embed_ray

    texts = _texts(2000)
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=40)
    out = embed_ray(ds, env["model"], batch_size=25, concurrency=2)
    ids, values, killed = [], [], []
    for n, batch in enumerate(out.iter_batches(batch_size=25, batch_format="pyarrow")):
        ids.extend(batch.column("id").to_pylist())
        values.extend(batch.column("embedding").to_pylist())
        if n == 2 and not killed:
            for actor_id, info in ray._private.state.actors().items():
                if "_RayEmbedder" in info.get("ActorClassName", "") and info.get("State") == "ALIVE":
                    handle = ray._private.worker.global_worker.core_worker.get_actor_handle(
                        ray.ActorID.from_hex(actor_id))
                    ray.kill(handle, no_restart=False)  # as a crash: Ray restarts it
                    killed.append(actor_id)
                    break
    assert killed, "no map actor was found to kill"
    restarts = ray._private.state.actors()[killed[0]].get("NumRestarts")
    assert restarts >= 1
    _check(encoder, texts, ids, values, "float32")


def test_ray_bad_input(ray_cluster, env):
    import ray.data

    from embedrt.distributed import embed_ray

    rows = [{"id": i, "text": f"t{i}" if i != 17 else None} for i in range(30)]
    ds = ray.data.from_items(rows)
    with pytest.raises(Exception, match=r"row \d+ of a batch .*text is None"):
        embed_ray(ds, env["model"], batch_size=64, concurrency=1).take_all()
    out = embed_ray(ds, env["model"], batch_size=64, concurrency=1, on_null="empty").take_all()
    assert len(out) == 30
    by_id = {r["id"]: np.asarray(r["embedding"]) for r in out}
    empty = embedrt.Encoder(env["model"], threads=1).encode([""])[0]
    np.testing.assert_allclose(by_id[17], empty, atol=1e-5)
    with pytest.raises(KeyError, match="'body'"):
        embed_ray(ds, env["model"], column="body")
    with pytest.raises(ValueError, match="ranges"):
        embed_ray(ds, env["model"], precision="int8")


def test_ray_model_missing_names_path_and_worker(ray_cluster, env):
    import ray.data

    from embedrt.distributed import embed_ray

    missing = str(env["root"] / "no-such-model")
    ds = ray.data.from_items([{"text": "a"}, {"text": "b"}])
    ctx = ray.data.DataContext.get_current()
    keep = getattr(ctx, "max_consecutive_actor_init_deaths", None)
    if keep is not None:
        ctx.max_consecutive_actor_init_deaths = 1
    try:
        with pytest.raises(Exception) as info:
            embed_ray(ds, missing, concurrency=1).take_all()
    finally:
        if keep is not None:
            ctx.max_consecutive_actor_init_deaths = keep
    assert missing in str(info.value) and "pid" in str(info.value)


# ----------------------------------------------------------------------------- Spark
def _spark_df(spark, texts, partitions=3, nulls=()):
    rows = [(i, None if i in nulls else t, f"x{i}") for i, t in enumerate(texts)]
    return spark.createDataFrame(rows, "id long, text string, extra string").repartition(partitions)


@pytest.mark.parametrize("precision", ["float32", "ubinary", "uint8"])
def test_spark_matches_encode(spark, env, encoder, precision):
    from embedrt.distributed import embed_spark

    texts = _texts(200)
    ranges = _ranges(encoder, texts) if precision == "uint8" else None
    out = embed_spark(_spark_df(spark, texts), env["model"], precision=precision, batch_size=32, ranges=ranges)
    expected = {"float32": "array<float>", "ubinary": "binary", "uint8": "array<int>"}[precision]
    assert out.schema["embedding"].dataType.simpleString() == expected
    rows = out.collect()
    assert all(r.extra == f"x{r.id}" and r.text == texts[r.id] for r in rows)
    _check(encoder, texts, [r.id for r in rows], [r.embedding for r in rows], precision, ranges)


def test_spark_task_failing_once_is_retried(spark, env, encoder):
    import pandas as pd

    from embedrt.distributed import embed_spark

    texts = _texts(300)
    out = embed_spark(_spark_df(spark, texts), env["model"], batch_size=20)

    def fail_first_attempt(frames):
        from pyspark import TaskContext

        ctx = TaskContext.get()
        for n, pdf in enumerate(frames):
            yield pdf
            if ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
                raise RuntimeError("injected failure after the first batch")

    flaky = out.mapInPandas(fail_first_attempt, schema=out.schema)
    rows = flaky.collect()
    assert isinstance(pd.__version__, str)
    _check(encoder, texts, [r.id for r in rows], [r.embedding for r in rows], "float32")


def test_spark_bad_input(spark, env, encoder):
    from embedrt.distributed import embed_spark

    texts = _texts(40)
    df = _spark_df(spark, texts, partitions=1, nulls={17})
    with pytest.raises(Exception, match=r"partition 0, row \d+ .*text is None"):
        embed_spark(df, env["model"]).collect()
    rows = embed_spark(df, env["model"], on_null="empty").collect()
    assert len(rows) == 40
    got = np.asarray([r.embedding for r in rows if r.id == 17][0], np.float32)
    np.testing.assert_allclose(got, encoder.encode([""])[0], atol=1e-5)
    with pytest.raises(KeyError, match="'body'"):
        embed_spark(df, env["model"], column="body")
    with pytest.raises(TypeError, match="'id'.*string"):
        embed_spark(df, env["model"], column="id")


# ----------------------------------------------------------------------------- local / CLI
def test_local_bad_input_names_row(env):
    pa = pytest.importorskip("pyarrow")
    from embedrt.distributed import embed_table

    texts = [f"t{i}" for i in range(40)]
    texts[17] = None
    table = pa.table({"text": texts})
    with pytest.raises(ValueError, match=r"^row 17: text is None"):
        embed_table(table, env["model"], batch_size=8, threads=1)
    with pytest.raises(KeyError, match="'body'"):
        embed_table(table, env["model"], column="body")


def test_cli_local_engine(env, encoder, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from embedrt.cli import main

    texts = _texts(150)
    pq.write_table(pa.table({"id": list(range(150)), "text": texts}), tmp_path / "docs.parquet")
    rc = main(["embed-dataset", "--engine", "local", "--input", str(tmp_path / "docs.parquet"),
               "--output", str(tmp_path / "out.parquet"), "--model", env["model"], "--batch-size", "32",
               "--precision", "ubinary", "--threads", "1"])
    assert rc == 0
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == list(range(150))
    _check(encoder, texts, out.column("id").to_pylist(), out.column("embedding").to_pylist(), "ubinary")
    rc = main(["embed-dataset", "--engine", "local", "--input", str(tmp_path / "docs.parquet"),
               "--output", str(tmp_path / "x.parquet"), "--column", "body", "--model", env["model"]])
    assert rc == 1


@pytest.mark.parametrize("engine", ["ray", "spark"])
@pytest.mark.parametrize("single_file", [True, False], ids=["file", "folder"])
def test_cli_ray_and_spark_engines(request, engine, single_file, env, encoder, tmp_path):
    """The CLI on a cluster that has no CPU to spare beyond its embedding actors (2 CPUs): the
    reading and writing tasks still run, and every row comes out once."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from embedrt.cli import main

    request.getfixturevalue("ray_cluster" if engine == "ray" else "spark")
    texts = _texts(120)
    pq.write_table(pa.table({"id": list(range(120)), "text": texts}), tmp_path / "docs.parquet")
    out = tmp_path / ("out.parquet" if single_file else "out")
    rc = main(["embed-dataset", "--engine", engine, "--input", str(tmp_path / "docs.parquet"),
               "--output", str(out), "--model", env["model"], "--batch-size", "32", "--threads", "1"])
    assert rc == 0
    table = pq.read_table(out)
    ids = table.column("id").to_pylist()
    assert sorted(ids) == list(range(120))
    if single_file:
        assert ids == list(range(120))  # one file keeps the input order
    _check(encoder, texts, ids, table.column("embedding").to_pylist(), "float32")
    if engine == "ray":  # actors on every CPU would leave none for reading: refused, not a hang
        assert main(["embed-dataset", "--engine", "ray", "--input", str(tmp_path / "docs.parquet"),
                     "--output", str(tmp_path / "y.parquet"), "--model", env["model"],
                     "--concurrency", "2"]) == 1


# ----------------------------------------------------------------------------- ShardedIndex
def _assert_same(a, b):
    assert a[0].dtype == b[0].dtype and a[1].dtype == b[1].dtype
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("kind", ["binary", "int8", "two-stage"])
def test_sharded_index_equals_one_index(tmp_path, kind):
    from embedrt.distributed import ShardedIndex, build_index

    rng = np.random.default_rng(7)
    n = 5003
    if kind == "binary":
        # 5 significant bits: 32 distinct codes over 5003 rows, ties everywhere
        x = rng.standard_normal((n, 5)).astype(np.float32)
        data = embedrt.quantize(x, "ubinary")
        one = embedrt.BinaryIndex(5)
        one.add(data)
        queries = data[:64]
        manifest = build_index(data, kind, shards=7, path=tmp_path, nbits=5)
    else:
        # values on a coarse grid: many equal int8 vectors and sign codes
        data = (np.round(rng.standard_normal((n, 8)) * 2) / 2).astype(np.float32)
        one = embedrt.Int8Index(8) if kind == "int8" else embedrt.Index(8)
        one.add(data)
        queries = data[:64]
        manifest = build_index([data[:1000], data[1000:]], kind, shards=7, path=tmp_path)
    index = ShardedIndex.load(manifest, mmap=True)
    assert len(index) == n and len(index.shards) == 7
    spans = [(e["offset"], e["rows"]) for e in index.manifest["shards"]]
    assert spans[0][0] == 0 and all(a + r == b for (a, r), (b, _) in zip(spans, spans[1:]))
    for k in (1, 10, 200):
        _assert_same(one.search(queries, k), index.search(queries, k))
    if kind == "two-stage":
        _assert_same(one.search(queries, 10, rescore_multiplier=1), index.search(queries, 10, rescore_multiplier=1))
    ShardedIndex.load(manifest, verify=True).verify()


def test_sharded_index_from_ray_embeddings(ray_cluster, env, encoder, tmp_path):
    import ray.data

    from embedrt.distributed import ShardedIndex, build_index, embed_ray

    texts = _texts(300)
    ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=6)
    emb_ds = embed_ray(ds, env["model"], precision="ubinary", batch_size=50)
    manifest = build_index(emb_ds, "binary", shards=4, path=tmp_path)
    codes = encoder.encode(texts, precision="ubinary")
    one = embedrt.BinaryIndex(codes.shape[1] * 8)
    one.add(codes)
    _assert_same(one.search(codes[:20], 15), ShardedIndex.load(manifest).search(codes[:20], 15))
    # a shard file that does not match its manifest is refused
    shard = Path(manifest).parent / ShardedIndex.load(manifest).manifest["shards"][0]["file"]
    with open(shard, "ab") as f:
        f.write(b"x")
    with pytest.raises(ValueError, match="bytes"):
        ShardedIndex.load(manifest)
