"""Bit codes: pack_bits / unpack_bits, hamming, hamming_topk, binary_matmul against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedrt

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def ref_hamming(a, b):
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.uint32)
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1, dtype=np.uint32)


def ref_topk(a, b, k):
    d = ref_hamming(a, b).astype(np.int64)
    kk = min(k, b.shape[0])
    ids = np.broadcast_to(np.arange(b.shape[0]), d.shape)
    order = np.lexsort((ids, d), axis=1)[:, :kk]
    return np.take_along_axis(d, order, 1).astype(np.int32), order.astype(np.int64)


def rand_codes(rng, n, width):
    return rng.integers(0, 256, (n, width), dtype=np.uint8)


@pytest.fixture
def one_thread_then_restore():
    before = embedrt.get_num_threads()
    yield
    embedrt.set_num_threads(before)


# ------------------------------------------------------------------ pack_bits / unpack_bits

@pytest.mark.isa
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.bool_])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 384, 1000])
def test_pack_bits_matches_numpy(isa, dtype, d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((5, d))
    x[:, ::3] = 0.0
    x = (x > 0) if dtype is np.bool_ else x.astype(dtype)
    got = embedrt.pack_bits(x)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.packbits(x > 0, axis=-1))


@pytest.mark.isa
def test_pack_bits_signs_and_edge_values(isa):
    x = np.array([[0.0, -0.0, 1e-45, -1e-45, np.inf, -np.inf, 3.0, -2.0, 5e-324 * 0 + 1.0]],
                 dtype=np.float32)
    np.testing.assert_array_equal(embedrt.pack_bits(x), np.packbits(x > 0, axis=-1))
    tiny = np.array([1e-300, -1e-300, 0.0, 1e-320], dtype=np.float64)  # below float32's range
    np.testing.assert_array_equal(embedrt.pack_bits(tiny), np.packbits(tiny > 0, axis=-1))


def test_pack_bits_shapes():
    rng = np.random.default_rng(1)
    x1 = rng.standard_normal(20).astype(np.float32)
    assert embedrt.pack_bits(x1).shape == (3,)
    np.testing.assert_array_equal(embedrt.pack_bits(x1), np.packbits(x1 > 0, axis=-1))
    x3 = rng.standard_normal((2, 3, 13)).astype(np.float32)
    np.testing.assert_array_equal(embedrt.pack_bits(x3), np.packbits(x3 > 0, axis=-1))
    assert embedrt.pack_bits(np.zeros((0, 10), np.float32)).shape == (0, 2)
    assert embedrt.pack_bits(np.zeros((4, 0), np.float32)).shape == (4, 0)
    xt = rng.standard_normal((40, 30)).astype(np.float32).T  # non-contiguous
    np.testing.assert_array_equal(embedrt.pack_bits(xt), np.packbits(xt > 0, axis=-1))


@pytest.mark.isa
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_pack_bits_rejects_nan(isa, dtype):
    for pos in [0, 9, 16, 70]:
        x = np.ones((2, 71), dtype=dtype)
        x[1, pos] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            embedrt.pack_bits(x)


def test_pack_bits_bad_input():
    with pytest.raises(TypeError):
        embedrt.pack_bits(np.ones((2, 8), dtype=np.int32))
    with pytest.raises(TypeError):
        embedrt.pack_bits(np.ones((2, 8), dtype=np.complex64))
    with pytest.raises(ValueError):
        embedrt.pack_bits(np.float32(1.0))


@pytest.mark.parametrize("d", [0, 1, 7, 8, 13, 64, 100])
def test_unpack_bits_round_trip(d):
    rng = np.random.default_rng(d)
    x = rng.standard_normal((6, d)).astype(np.float32)
    codes = embedrt.pack_bits(x)
    bits = embedrt.unpack_bits(codes, d)
    np.testing.assert_array_equal(bits, (x > 0).astype(np.uint8))
    full = rand_codes(rng, 3, 5)
    np.testing.assert_array_equal(embedrt.unpack_bits(full, 37), np.unpackbits(full, axis=-1, count=37))
    np.testing.assert_array_equal(embedrt.unpack_bits(full[0], 40), np.unpackbits(full[0]))


def test_unpack_bits_bad_input():
    with pytest.raises(ValueError):
        embedrt.unpack_bits(np.zeros((2, 2), np.uint8), 17)
    with pytest.raises(ValueError):
        embedrt.unpack_bits(np.zeros((2, 2), np.uint8), -1)
    with pytest.raises(TypeError):
        embedrt.unpack_bits(np.zeros((2, 2), np.int8), 8)


# ------------------------------------------------------------------ hamming

@pytest.mark.isa
@SETTINGS
@given(width=st.integers(1, 300), m=st.integers(0, 9), n=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_hamming_matches_numpy(isa, width, m, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rand_codes(rng, m, width), rand_codes(rng, n, width)
    got = embedrt.hamming(a, b)
    assert got.dtype == np.uint32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, ref_hamming(a, b))


@pytest.mark.isa
@pytest.mark.parametrize("width", [1, 8, 31, 32, 63, 64, 65, 128, 129, 300])
def test_hamming_extremes(isa, width):
    ones = np.full((3, width), 255, np.uint8)
    zeros = np.zeros((17, width), np.uint8)
    assert (embedrt.hamming(ones, zeros) == 8 * width).all()
    assert (embedrt.hamming(zeros, ones) == 8 * width).all()
    assert (embedrt.hamming(ones, ones) == 0).all()


@pytest.mark.isa
def test_hamming_large_tiles(isa):
    # more queries and codes than one tile, with a partial last block of 8 codes
    rng = np.random.default_rng(5)
    a, b = rand_codes(rng, 600, 64), rand_codes(rng, 2053, 64)
    np.testing.assert_array_equal(embedrt.hamming(a, b), ref_hamming(a, b))


def test_hamming_one_dimensional_and_noncontiguous():
    rng = np.random.default_rng(2)
    a, b = rand_codes(rng, 4, 16), rand_codes(rng, 10, 32)[:, ::2]
    np.testing.assert_array_equal(embedrt.hamming(a, b), ref_hamming(a, np.ascontiguousarray(b)))
    np.testing.assert_array_equal(embedrt.hamming(a[0], b), ref_hamming(a[:1], np.ascontiguousarray(b)))


def test_hamming_bad_input():
    a = np.zeros((2, 8), np.uint8)
    with pytest.raises(TypeError, match="a"):
        embedrt.hamming(a.astype(np.int8), a)
    with pytest.raises(TypeError, match="b"):
        embedrt.hamming(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="width"):
        embedrt.hamming(a, np.zeros((2, 9), np.uint8))
    with pytest.raises(ValueError):
        embedrt.hamming(np.zeros((2, 2, 2), np.uint8), a)
    with pytest.raises(ValueError):
        embedrt.hamming(np.zeros((2, 0), np.uint8), np.zeros((2, 0), np.uint8))
    with pytest.raises(TypeError):
        embedrt.hamming("abc", a)


# ------------------------------------------------------------------ hamming_topk

@pytest.mark.isa
@SETTINGS
@given(width=st.integers(1, 300), m=st.integers(0, 6), n=st.integers(0, 60), k=st.integers(1, 70),
       seed=st.integers(0, 2**32 - 1))
def test_topk_matches_numpy(isa, width, m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, b = rand_codes(rng, m, width), rand_codes(rng, n, width)
    D, I = embedrt.hamming_topk(a, b, k)
    rD, rI = ref_topk(a, b, k)
    assert D.dtype == np.int32 and I.dtype == np.int64
    assert D.shape == I.shape == (m, min(k, n))
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)


@pytest.mark.isa
@pytest.mark.parametrize("k", [1, 3, 10, 11, 25, 40, 300, 1000])
def test_topk_ties(isa, k):
    # a few distinct codes repeated many times: every k crosses a tie group
    rng = np.random.default_rng(k)
    base = rand_codes(rng, 4, 16)
    b = base[rng.integers(0, 4, 997)]
    a = np.concatenate([base[:2], rand_codes(rng, 3, 16)])
    D, I = embedrt.hamming_topk(a, b, k)
    rD, rI = ref_topk(a, b, k)
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)


@pytest.mark.isa
@pytest.mark.parametrize("k", [5, 300, 5000])
def test_topk_threads_and_blocks(isa, k, one_thread_then_restore):
    # enough codes to split the database across threads; k > 512 selects by counting
    rng = np.random.default_rng(11)
    b = rand_codes(rng, 40_000, 8)
    b[30_000:30_100] = b[5]  # ties spread over database blocks
    a = np.concatenate([b[5:6], rand_codes(rng, 2, 8)])
    rD, rI = ref_topk(a, b, k)
    results = []
    for threads in (1, 2):
        embedrt.set_num_threads(threads)
        results.append(embedrt.hamming_topk(a, b, k))
    for D, I in results:
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)


@pytest.mark.isa
@pytest.mark.parametrize("width", [1, 15, 16, 17, 63, 64, 65, 127, 200])
@pytest.mark.parametrize("m", [4, 5, 6, 7, 64])
def test_topk_many_queries(isa, width, m):
    # four queries and more (the table-lookup scan at avx2): query tiles of 3 with 1 or 2 left
    # over, code rows split into byte-sum runs, partial blocks of 32 codes, ties, nbits that
    # leave unused bits in the last byte (set in the codes and queries: they must not count)
    rng = np.random.default_rng(width * 100 + m)
    n = 32 * 9 + 13
    b = rand_codes(rng, n, width)
    b[40:70] = b[3]
    b[::11] = 0xFF
    a = rand_codes(rng, m, width)
    a[0] = b[3]
    a[1] = 0xFF
    for nbits in {8 * width, max(1, 8 * width - 3)}:
        D, I = embedrt._core.hamming_topk(a, b, 10, nbits)
        keep = np.unpackbits(np.full(width, 255, np.uint8))[: 8 * width].copy()
        keep[nbits:] = 0
        mask = np.packbits(keep)
        rD, rI = ref_topk(a & mask, b & mask, 10)
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)
        np.testing.assert_array_equal(embedrt._core.hamming(a, b, nbits), ref_hamming(a & mask, b & mask))


@pytest.mark.isa
@pytest.mark.parametrize("width", [4095, 4096])
def test_topk_widest_table_codes(isa, width):
    # 4095 bytes: the widest codes of the table scan (16-bit sums up to 32760); 4096: past it
    ones = np.full((5, width), 255, np.uint8)
    b = np.zeros((40, width), np.uint8)
    b[7] = 0xFF
    b[9, : width // 2] = 0xFF
    D, I = embedrt.hamming_topk(ones, b, 3)
    np.testing.assert_array_equal(D, np.tile([0, 8 * width - 8 * (width // 2), 8 * width], (5, 1)))
    np.testing.assert_array_equal(I, np.tile([7, 9, 0], (5, 1)))


def test_topk_extremes_and_k_larger_than_n():
    ones = np.full((2, 300), 255, np.uint8)
    zeros = np.zeros((5, 300), np.uint8)
    D, I = embedrt.hamming_topk(ones, zeros, 100)
    assert D.shape == (2, 5) and (D == 2400).all()
    np.testing.assert_array_equal(I, np.tile(np.arange(5), (2, 1)))


def test_topk_empty_and_bad_input():
    a = np.zeros((3, 8), np.uint8)
    D, I = embedrt.hamming_topk(a, np.zeros((0, 8), np.uint8), 4)
    assert D.shape == I.shape == (3, 0)
    D, I = embedrt.hamming_topk(np.zeros((0, 8), np.uint8), a, 4)
    assert D.shape == I.shape == (0, 3)
    with pytest.raises(ValueError, match="k"):
        embedrt.hamming_topk(a, a, 0)
    with pytest.raises(TypeError):
        embedrt.hamming_topk(a, a, 2.5)
    with pytest.raises(ValueError, match="width"):
        embedrt.hamming_topk(a, np.zeros((3, 4), np.uint8), 2)
    with pytest.raises(TypeError):
        embedrt.hamming_topk(a.astype(np.uint16), a, 2)


# ------------------------------------------------------------------ binary_matmul

def ref_binary_matmul(a, b, nbits):
    sa = np.unpackbits(a, axis=1)[:, :nbits].astype(np.int64) * 2 - 1
    sb = np.unpackbits(b, axis=1)[:, :nbits].astype(np.int64) * 2 - 1
    return (sa @ sb.T).astype(np.int32)


@pytest.mark.isa
@SETTINGS
@given(width=st.integers(1, 100), m=st.integers(0, 7), n=st.integers(0, 30), data=st.data())
def test_binary_matmul_matches_numpy(isa, width, m, n, data):
    nbits = data.draw(st.integers(1, 8 * width))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    a, b = rand_codes(rng, m, width), rand_codes(rng, n, width)
    got = embedrt.binary_matmul(a, b, nbits)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, ref_binary_matmul(a, b, nbits))


def test_binary_matmul_default_and_bad_nbits():
    rng = np.random.default_rng(3)
    a, b = rand_codes(rng, 4, 12), rand_codes(rng, 5, 12)
    np.testing.assert_array_equal(embedrt.binary_matmul(a, b), 96 - 2 * ref_hamming(a, b).astype(np.int32))
    with pytest.raises(ValueError, match="nbits"):
        embedrt.binary_matmul(a, b, 97)
    with pytest.raises(ValueError, match="nbits"):
        embedrt.binary_matmul(a, b, 0)


def test_hamming_out_argument():
    rng = np.random.default_rng(8)
    a, b = rand_codes(rng, 5, 24), rand_codes(rng, 300, 24)
    out = np.full((5, 300), 7, np.uint32)
    got = embedrt.hamming(a, b, out=out)
    assert got is out or np.shares_memory(got, out)
    np.testing.assert_array_equal(out, ref_hamming(a, b))
    with pytest.raises(ValueError, match="shape"):
        embedrt.hamming(a, b, out=np.zeros((5, 299), np.uint32))
    with pytest.raises(TypeError):
        embedrt.hamming(a, b, out=np.zeros((5, 300), np.int32))
    with pytest.raises(ValueError, match="contiguous"):
        embedrt.hamming(a, b, out=np.zeros((300, 5), np.uint32).T)


@pytest.mark.isa
@pytest.mark.parametrize("width", [1, 7, 8, 9, 25, 63, 64, 65, 125])
def test_hamming_every_level_matches_scalar(isa, width):
    # edge shapes (one row, tails not a multiple of the 8-code groups, all-ones and all-zero
    # codes) at the level under test, against numpy and the scalar level
    from conftest import forced_isa

    rng = np.random.default_rng(width)
    for n in (1, 7, 9, 33, 300):
        b = rand_codes(rng, n, width)
        b[::5] = 0xFF
        b[2::7] = 0
        a = np.concatenate([rand_codes(rng, 3, width), np.full((1, width), 0xFF, np.uint8),
                            np.zeros((1, width), np.uint8)])
        got = embedrt.hamming(a, b)
        dist, ids = embedrt.hamming_topk(a, b, 10)
        with forced_isa("scalar"):
            np.testing.assert_array_equal(got, embedrt.hamming(a, b))
            sd, si = embedrt.hamming_topk(a, b, 10)
        np.testing.assert_array_equal(dist, sd)
        np.testing.assert_array_equal(ids, si)
        np.testing.assert_array_equal(got, ref_hamming(a, b))
        rd, ri = ref_topk(a, b, 10)
        np.testing.assert_array_equal(dist, rd)
        np.testing.assert_array_equal(ids, ri)
