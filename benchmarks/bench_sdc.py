"""pytest-benchmark suite for multi-bit binary codes (SDC).

    PYTHONPATH=python python -m pytest benchmarks/bench_sdc.py --benchmark-only

The speed goal (at least 2x FAISS IndexPQFastScan at the same code size, one thread) is
measured side by side in compare_sdc.py; these benchmarks track embedrt alone.
"""
from __future__ import annotations

import numpy as np
import pytest

import embedrt
from _timing import threads

N = 200_000
DIM = 512
M = 64


@pytest.fixture(scope="module")
def codes():
    rng = np.random.default_rng(0)
    out = {}
    for bits in (1, 2, 4):
        out[bits] = (rng.integers(0, 256, size=(M, bits, DIM // 8), dtype=np.uint8),
                     rng.integers(0, 256, size=(N, bits, DIM // 8), dtype=np.uint8))
    return out


@pytest.fixture
def one_thread():
    with threads(1):
        yield


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_sdc_topk_one_thread(benchmark, codes, one_thread, bits):
    q, db = codes[bits]
    benchmark.extra_info["ms_per_query"] = None
    benchmark(embedrt.sdc_topk, q, db, 10)
    benchmark.extra_info["ms_per_query"] = benchmark.stats["min"] / M * 1e3


def test_sdc_topk_all_threads(benchmark, codes):
    q, db = codes[2]
    benchmark(embedrt.sdc_topk, q, db, 10)


def test_sdc_scores(benchmark, codes, one_thread):
    q, db = codes[2]
    benchmark(embedrt.sdc, q[:16], db[:50_000])


def test_encode(benchmark):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20_000, 384)).astype(np.float32)
    b = embedrt.ResidualBinarizer(2).fit(X[:4000])
    benchmark(b.encode, X)
