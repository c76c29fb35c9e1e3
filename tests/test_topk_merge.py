"""The one top-k (csrc/kernels/topk.h) across database parts and threads: ties at the part
boundaries, k = 1, k = n, k > n, for the Hamming, SDC and int8 scans, against numpy."""
from __future__ import annotations

import numpy as np
import pytest

import embedrt

THREADS = (1, 2, 3)


@pytest.fixture
def restore_threads():
    before = embedrt.get_num_threads()
    yield
    embedrt.set_num_threads(before)


def ranked(scores: np.ndarray, k: int, descending: bool):
    """Reference: by score (ascending or descending), ties by the smaller id, first k."""
    n = scores.shape[1]
    ids = np.broadcast_to(np.arange(n), scores.shape)
    order = np.lexsort((ids, -scores if descending else scores), axis=1)[:, :min(k, n)]
    return np.take_along_axis(scores, order, 1), order.astype(np.int64)


def per_threads(fn):
    return [(embedrt.set_num_threads(t), fn())[1] for t in THREADS]


def tie_codes(rng, n, width, distinct):
    """n codes, almost all copies of `distinct` base codes (long runs of equal distances that
    cross every part boundary), a few random ones among them."""
    base = rng.integers(0, 256, (distinct, width), dtype=np.uint8)
    codes = base[rng.integers(0, distinct, n)]
    codes[::97] = rng.integers(0, 256, (len(codes[::97]), width), dtype=np.uint8)
    return base, codes


# ------------------------------------------------------------------ Hamming (parts of >= 16384 codes)

@pytest.mark.isa
@pytest.mark.parametrize("k", [1, 2, 8, 100, 512, 40_000, 40_007])
def test_hamming_ties_across_parts(isa, k, restore_threads):
    rng = np.random.default_rng(k)
    base, b = tie_codes(rng, 40_000, 8, 3)
    a = np.concatenate([base, rng.integers(0, 256, (1, 8), dtype=np.uint8)])
    d = np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1).astype(np.int32)
    rd, ri = ranked(d, k, descending=False)
    for D, I in per_threads(lambda: embedrt.hamming_topk(a, b, k)):
        np.testing.assert_array_equal(I, ri)
        np.testing.assert_array_equal(D, rd)


@pytest.mark.isa
@pytest.mark.parametrize("k", [1, 5, 512, 33_000])
def test_hamming_all_equal(isa, k, restore_threads):
    # every distance ties: the answer is ids 0..k-1, whatever parts the threads scanned
    b = np.full((33_000, 16), 0x5A, np.uint8)
    a = np.full((2, 16), 0x0F, np.uint8)
    for D, I in per_threads(lambda: embedrt.hamming_topk(a, b, k)):
        np.testing.assert_array_equal(I, np.tile(np.arange(k), (2, 1)))
        assert (D == 64).all()


# ------------------------------------------------------------------ SDC (parts of 256-code blocks)

def sdc_levels(codes, dim):
    u = codes.shape[1]
    bits = np.unpackbits(codes, axis=2)[:, :, :dim].astype(np.int64) * 2 - 1
    return np.einsum("npd,p->nd", bits, 2 ** np.arange(u - 1, -1, -1))


@pytest.mark.isa
@pytest.mark.parametrize("k", [1, 3, 256, 300, 3001, 4000])
def test_sdc_ties_across_parts(isa, k, restore_threads):
    rng = np.random.default_rng(k)
    dim, n = 40, 3001
    base = np.packbits(rng.integers(0, 2, (4, 2, dim), dtype=np.uint8), axis=2)
    d = base[rng.integers(0, 4, n)]
    d[::89] = np.packbits(rng.integers(0, 2, (len(d[::89]), 2, dim), dtype=np.uint8), axis=2)
    q = np.concatenate([base[:2], np.packbits(rng.integers(0, 2, (1, 2, dim), dtype=np.uint8), axis=2)])
    ref = (sdc_levels(q, dim) @ sdc_levels(d, dim).T).astype(np.int32)
    rs, ri = ranked(ref, k, descending=True)
    for s, i in per_threads(lambda: embedrt.sdc_topk(q, d, k, dim=dim)):
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_array_equal(s, rs)


@pytest.mark.isa
def test_sdc_all_equal_many_queries(isa, restore_threads):
    # more queries than one tile (64) and every score equal
    d = np.zeros((2000, 1, 8), np.uint8)
    q = np.full((70, 1, 8), 0xFF, np.uint8)
    for k in (1, 2000):
        for s, i in per_threads(lambda: embedrt.sdc_topk(q, d, k, dim=64)):
            np.testing.assert_array_equal(i, np.tile(np.arange(k), (70, 1)))
            assert (s == -64).all()


# ------------------------------------------------------------------ int8 (parts of >= 64 KB of rows)

def int8_reference(ix, q, k):
    from embedrt.index.int8 import query_q16

    q16, qs = query_q16(q, ix.dim)
    dots = q16[:, :ix.dim].astype(np.int64) @ ix.codes.astype(np.int64).T
    scores = (qs[:, None] * ix.scales[None, :]).astype(np.float32) * dots.astype(np.float32)
    return ranked(scores, k, descending=True)


@pytest.mark.isa
@pytest.mark.parametrize("k", [1, 4, 8192, 20_000, 20_005])
def test_int8_ties_across_parts(isa, k, restore_threads):
    rng = np.random.default_rng(k)
    base = rng.standard_normal((3, 8)).astype(np.float32)
    x = base[rng.integers(0, 3, 20_000)]
    x[::101] = rng.standard_normal((len(x[::101]), 8)).astype(np.float32)
    ix = embedrt.Int8Index(8)
    ix.add(x)
    q = np.concatenate([base, -base[:1]])
    rs, ri = int8_reference(ix, q, k)
    for s, i in per_threads(lambda: ix.search(q, k)):
        np.testing.assert_array_equal(i, ri)
        np.testing.assert_array_equal(s, rs)


@pytest.mark.isa
def test_int8_nan_scores_rank_last(isa, restore_threads):
    # scales whose product overflows: inf * 0 = NaN, inf * -1 = -inf. The order stays total:
    # numbers by score, then NaN, each group by id; the same on every path and thread count.
    x = np.zeros((20_000, 8), np.float32)
    x[:, 0] = 1e30
    x[5_000:, 1] = -1e30
    x[10_000:] = 0
    x[15_000:, 1] = 1.0
    ix = embedrt.Int8Index(8)
    ix.add(x)
    q = np.zeros((1, 8), np.float32)
    q[0, 1] = 1e30
    want = np.concatenate([np.arange(15_000, 20_000), np.arange(10_000, 15_000),
                           np.arange(5_000, 10_000), np.arange(0, 5_000)])
    for s, i in per_threads(lambda: ix.search(q, 20_000)):
        np.testing.assert_array_equal(i[0], want)
        assert (s[0, :5_000] > 0).all() and (s[0, 5_000:10_000] == 0).all()
        assert (s[0, 10_000:15_000] == -np.inf).all() and np.isnan(s[0, 15_000:]).all()
