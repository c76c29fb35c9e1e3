"""int8 section of benchmarks/compare.py: embedrt vs onnxruntime and memory bandwidth.

- int8_matmul GMAC/s against onnxruntime MatMulInteger (uint8 x int8, one intra-op thread)
  on the same shapes, interleaved, best of N.
- Int8Index: one query's scan over 1,000,000 x 384 as a fraction of the memory read
  bandwidth measured in the same run (a threaded read of the same bytes).
- Index on the corpus fixture: recall@10 against exact float search, bytes per vector and
  queries per second for binary alone, int8 alone and two-stage at multipliers 1, 4, 10.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from _timing import best_of

GEMM_SHAPES = [(1024, 384, 1536), (1024, 1536, 384), (16, 384, 384)]


def _ort_matmul_integer(k: int, n: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])
    b = helper.make_tensor_value_info("B", TensorProto.INT8, [k, n])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["M", n])
    azp = helper.make_tensor("a_zp", TensorProto.UINT8, [], [128])
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])
    graph = helper.make_graph([node], "mmi", [a, b], [y], initializer=[azp])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def gemm_table(quick: bool) -> str:
    import embedrt
    import embedrt._core as core
    from embedrt.kernels import Int8Matrix

    rng = np.random.default_rng(0)
    rows = ["| m | k | n | embedrt GMAC/s | onnxruntime GMAC/s | ratio |", "|---|---|---|---|---|---|"]
    before = embedrt.get_num_threads()
    embedrt.set_num_threads(1)
    try:
        for m, k, n in GEMM_SHAPES:
            a = rng.integers(-128, 128, (m, k), dtype=np.int8)
            b = rng.integers(-128, 128, (n, k), dtype=np.int8)
            packed = Int8Matrix(b)
            out = np.empty((m, n), np.int32)
            sess = _ort_matmul_integer(k, n)
            au8 = (a.view(np.uint8) ^ 0x80)
            bt = np.ascontiguousarray(b.T)
            feed = {"A": au8}
            # ORT's B is a graph input here; a constant initializer lets it prepack, so use one.
            sess = _ort_prepacked(k, n, bt)
            got = sess.run(None, feed)[0]
            core.int8_gemm(a, packed.packed, out)
            assert (got == out).all(), "onnxruntime and embedrt disagree"
            macs = m * k * n
            reps = max(1, int(2e8 // macs)) if not quick else max(1, int(5e7 // macs))
            ours, theirs = float("inf"), float("inf")
            for _ in range(3 if quick else 5):  # interleaved
                ours = min(ours, best_of(lambda: core.int8_gemm(a, packed.packed, out), 3, calls=reps))
                theirs = min(theirs, best_of(lambda: sess.run(None, feed), 3, calls=reps))
            rows.append(f"| {m} | {k} | {n} | {macs / ours / 1e9:.0f} | {macs / theirs / 1e9:.0f} | "
                        f"{theirs / ours:.2f}x |")
    finally:
        embedrt.set_num_threads(before)
    return "\n".join(rows)


def _ort_prepacked(k: int, n: int, bt: np.ndarray):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    a = helper.make_tensor_value_info("A", TensorProto.UINT8, ["M", k])
    y = helper.make_tensor_value_info("Y", TensorProto.INT32, ["M", n])
    azp = helper.make_tensor("a_zp", TensorProto.UINT8, [], [128])
    b = numpy_helper.from_array(bt, "B")
    node = helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])
    graph = helper.make_graph([node], "mmi", [a], [y], initializer=[azp, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def scan_table(quick: bool) -> str:
    import embedrt
    import embedrt._core as core

    n, dim = (200_000 if quick else 1_000_000), 384
    rng = np.random.default_rng(1)
    ix = embedrt.Int8Index(dim)
    for s in range(0, n, 100_000):
        ix.add(rng.standard_normal((min(100_000, n - s), dim)).astype(np.float32))
    q = rng.standard_normal((1, dim)).astype(np.float32)
    flat = ix.codes.reshape(-1).view(np.uint8)
    rows = ["| threads | memory read GB/s | Int8Index scan GB/s (1 query, k=10) | scan ms | % of read bandwidth |",
            "|---|---|---|---|---|"]
    before = embedrt.get_num_threads()
    try:
        for th in sorted({1, before}):
            embedrt.set_num_threads(th)
            read, scan = float("inf"), float("inf")
            for _ in range(5):  # interleaved
                read = min(read, best_of(lambda: core.int8_stream_read(flat), 2))
                scan = min(scan, best_of(lambda: ix.search(q, 10), 2))
            nbytes = n * dim
            rows.append(f"| {th} | {nbytes / read / 1e9:.1f} | {nbytes / scan / 1e9:.1f} | {scan * 1e3:.1f} | "
                        f"{100 * read / scan:.0f}% |")
    finally:
        embedrt.set_num_threads(before)
    return f"Int8Index over {n:,} x {dim}:\n\n" + "\n".join(rows)


def _corpus():
    env = os.environ.get("EMBEDRT_SHARED")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    path = base / "fixtures" / "corpus" / "stdlib_docstrings.minilm.npy"
    return np.load(path).astype(np.float32) if path.is_file() else None


def recall_table(quick: bool) -> str:
    import embedrt

    x = _corpus()
    if x is None:
        return "(corpus fixture not found: recall table skipped)"
    q = x[:200]
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]

    def recall(ids):
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]))

    rows = ["| method | recall@10 | bytes / vector | queries / s (200 queries, batch) |", "|---|---|---|---|"]
    dim = x.shape[1]
    rows.append(f"| float32 exact (numpy) | 1.000 | {4 * dim} | {200 / best_of(lambda: q @ x.T, 5):.0f} |")
    configs = [("binary (Hamming)", dict(rescore=None), {}),
               ("int8 (exact scan)", dict(coarse=None), {})]
    configs += [(f"binary + int8 rescore, x{m}", {}, dict(rescore_multiplier=m)) for m in (1, 4, 10)]
    configs += [(f"2-bit SDC + int8 rescore, x{m}", dict(coarse="sdc", coarse_bits=2), dict(rescore_multiplier=m))
                for m in (1, 4, 10)]
    for name, kw, skw in configs:
        idx = embedrt.Index(dim, **kw)
        idx.add(x)
        _, ids = idx.search(q, 10, **skw)
        t = best_of(lambda: idx.search(q, 10, **skw), 5)
        rows.append(f"| {name} | {recall(ids):.3f} | {idx.bytes_per_vector} | {200 / t:.0f} |")
    return f"Index on the corpus ({x.shape[0]} x {dim}, first 200 as queries, k=10):\n\n" + "\n".join(rows)


def run(quick: bool = False) -> str:
    parts = ["## int8", "", "int8_matmul vs onnxruntime MatMulInteger (u8 x s8, 1 thread):", "",
             gemm_table(quick), "", scan_table(quick), "", recall_table(quick)]
    return "\n".join(parts)


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
