"""pytest-benchmark suite for the bit-code kernels and BinaryIndex (one thread).

    PYTHONPATH=python python -m pytest benchmarks/bench_bits.py --benchmark-only

Groups compare embedrt with faiss.IndexBinaryFlat where FAISS has the same operation.
Speed goals and the side-by-side table live in compare_bits.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import embedrt
from _timing import threads

faiss = pytest.importorskip("faiss")

N = 200_000
rng = np.random.default_rng(0)
CODES = rng.integers(0, 256, (N, 64), dtype=np.uint8)
QUERIES = rng.integers(0, 256, (64, 64), dtype=np.uint8)


@pytest.fixture(autouse=True)
def one_thread():
    with threads(1, faiss):
        yield


@pytest.fixture(scope="module")
def embedrt_index():
    index = embedrt.BinaryIndex(512)
    index.add(CODES)
    return index


@pytest.fixture(scope="module")
def faiss_index():
    index = faiss.IndexBinaryFlat(512)
    index.add(CODES)
    return index


@pytest.mark.benchmark(group="search 64 q x 200k x 512 bit, k=10")
def test_search_embedrt(benchmark, embedrt_index, faiss_index):
    D, _ = benchmark(embedrt_index.search, QUERIES, 10)
    np.testing.assert_array_equal(D, faiss_index.search(QUERIES, 10)[0])


@pytest.mark.benchmark(group="search 64 q x 200k x 512 bit, k=10")
def test_search_faiss(benchmark, faiss_index):
    benchmark(faiss_index.search, QUERIES, 10)


@pytest.mark.benchmark(group="search 1 q x 200k x 512 bit, k=10")
def test_search_one_query_embedrt(benchmark, embedrt_index):
    benchmark(embedrt_index.search, QUERIES[:1], 10)


@pytest.mark.benchmark(group="search 1 q x 200k x 512 bit, k=10")
def test_search_one_query_faiss(benchmark, faiss_index):
    benchmark(faiss_index.search, QUERIES[:1], 10)


@pytest.mark.benchmark(group="search 64 q x 200k x 512 bit, k=1000")
def test_search_large_k_embedrt(benchmark, embedrt_index):
    benchmark(embedrt_index.search, QUERIES, 1000)


@pytest.mark.benchmark(group="search 64 q x 200k x 512 bit, k=1000")
def test_search_large_k_faiss(benchmark, faiss_index):
    benchmark(faiss_index.search, QUERIES, 1000)


@pytest.mark.parametrize("width", [32, 64, 128, 100])
@pytest.mark.benchmark(group="hamming 256 x 4096")
def test_hamming(benchmark, width):
    a = rng.integers(0, 256, (256, width), dtype=np.uint8)
    b = rng.integers(0, 256, (4096, width), dtype=np.uint8)
    benchmark(embedrt.hamming, a, b)


@pytest.mark.benchmark(group="binary_matmul 256 x 4096 x 512 bit")
def test_binary_matmul(benchmark):
    a, b = CODES[:256], CODES[:4096]
    benchmark(embedrt.binary_matmul, a, b)


@pytest.mark.benchmark(group="pack_bits 10k x 384 float32")
def test_pack_bits(benchmark):
    x = rng.standard_normal((10_000, 384)).astype(np.float32)
    benchmark(embedrt.pack_bits, x)


@pytest.mark.benchmark(group="pack_bits 10k x 384 float32")
def test_numpy_packbits(benchmark):
    x = rng.standard_normal((10_000, 384)).astype(np.float32)
    benchmark(lambda: np.packbits(x > 0, axis=-1))
