"""pytest-benchmark suite for the int8 kernels and indexes.

    PYTHONPATH=python python -m pytest benchmarks/bench_int8.py --benchmark-only

Speed goals (checked by benchmarks/compare_int8.py, side by side with onnxruntime):
int8_matmul >= 0.95x onnxruntime MatMulInteger at (1024, 384, 1536) and (1024, 1536, 384),
>= 1.5x at (16, 384, 384), one thread; Int8Index one-query scan >= 90% of memory read bandwidth.
"""
from __future__ import annotations

import numpy as np
import pytest

import embedrt
import embedrt._core as core
from _timing import threads
from embedrt.kernels import Int8Matrix

SHAPES = [(1024, 384, 1536), (1024, 1536, 384), (16, 384, 384)]


@pytest.fixture
def one_thread():
    with threads(1):
        yield


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_int8_matmul(benchmark, one_thread, m, k, n):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    packed = Int8Matrix(rng.integers(-128, 128, (n, k), dtype=np.int8))
    out = np.empty((m, n), np.int32)
    benchmark(core.int8_gemm, a, packed.packed, out)
    benchmark.extra_info["GMAC/s"] = m * k * n / benchmark.stats.stats.min / 1e9


@pytest.mark.parametrize("m,k,n", SHAPES)
def test_onnxruntime_matmul_integer(benchmark, one_thread, m, k, n):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from compare_int8 import _ort_prepacked

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    sess = _ort_prepacked(k, n, b)
    benchmark(sess.run, None, {"A": a})
    benchmark.extra_info["GMAC/s"] = m * k * n / benchmark.stats.stats.min / 1e9


@pytest.fixture(scope="module")
def int8_index():
    rng = np.random.default_rng(1)
    ix = embedrt.Int8Index(384)
    for _ in range(10):
        ix.add(rng.standard_normal((100_000, 384)).astype(np.float32))
    return ix


def test_int8_index_scan_1m(benchmark, int8_index):
    q = np.random.default_rng(2).standard_normal((1, 384)).astype(np.float32)
    benchmark(int8_index.search, q, 10)
    benchmark.extra_info["GB/s"] = int8_index.nbytes / benchmark.stats.stats.min / 1e9


def test_memory_read_1m(benchmark, int8_index):
    flat = int8_index.codes.reshape(-1).view(np.uint8)
    benchmark(core.int8_stream_read, flat)
    benchmark.extra_info["GB/s"] = flat.nbytes / benchmark.stats.stats.min / 1e9
