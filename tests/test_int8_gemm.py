"""int8_matmul / Int8Matrix against an int64 numpy reference, on every ISA level."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedrt
import embedrt._core as core
from conftest import forced_isa
from embedrt.kernels import INT8_MAX_K, Int8Matrix, int8_matmul, pack_int8


def ref(a, b):
    return a.astype(np.int64) @ b.astype(np.int64).T


def rand(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


SHAPES = [(0, 5, 3), (3, 0, 4), (2, 7, 0), (1, 1, 1), (1, 3, 1), (5, 5, 5), (7, 13, 17),
          (8, 64, 48), (9, 65, 49), (17, 63, 15), (16, 384, 384), (3, 1000, 33), (33, 129, 100),
          (64, 16, 1), (1, 4096, 64), (100, 3, 200), (37, 1100, 70), (9, 513, 48), (8, 2048, 100)]


@pytest.mark.isa
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_matches_reference(isa, m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = rand(rng, (m, k)), rand(rng, (n, k))
    c = int8_matmul(a, b)
    assert c.dtype == np.int32 and c.shape == (m, n)
    np.testing.assert_array_equal(c, ref(a, b))


@pytest.mark.isa
def test_extremes_exact(isa):
    # All -128 x -128 gives the largest positive dot product; near the k limit it must be exact.
    k = INT8_MAX_K
    a = np.full((2, k), -128, np.int8)
    b = np.full((3, k), -128, np.int8)
    c = int8_matmul(a, b)
    assert (c == 128 * 128 * k).all()
    b[1] = 127
    b[2, ::2] = 127
    np.testing.assert_array_equal(int8_matmul(a, b), ref(a, b))
    a[1] = 127
    np.testing.assert_array_equal(int8_matmul(a, b), ref(a, b))


@pytest.mark.isa
def test_same_on_every_path(isa):
    rng = np.random.default_rng(7)
    a, b = rand(rng, (37, 301)), rand(rng, (71, 301))
    np.testing.assert_array_equal(int8_matmul(a, b), ref(a, b))
    sa = rng.random(37, dtype=np.float32) + 0.1
    sb = rng.random(71, dtype=np.float32) + 0.1
    got = int8_matmul(a, b, a_scale=sa, b_scale=sb)
    want = (sa[:, None] * sb[None, :]).astype(np.float32) * ref(a, b).astype(np.float32)
    np.testing.assert_array_equal(got, want)


@pytest.mark.isa
@pytest.mark.parametrize("m,k", [(19, 77), (1, 4), (12, 384), (70, 76), (9, 1540), (10, 8),
                                 (11, 1104), (13, 384), (14, 2052), (15, 4), (16, 384)])
def test_uint8_activations_and_bias(isa, m, k):
    # The _core entry points also take A as uint8 codes a + 128 and a fused bias (codes with
    # k a multiple of 4 are read in place on the avx512 path, others packed; k > 512 runs in
    # k blocks for int32 output).
    rng = np.random.default_rng(3)
    a, b = rand(rng, (m, k)), rand(rng, (35, k))
    packed = Int8Matrix(b)
    au8 = (a.view(np.uint8) ^ 0x80)
    out = np.empty((m, 35), np.int32)
    core.int8_gemm(au8, packed.packed, out)
    np.testing.assert_array_equal(out, ref(a, b))
    sa = rng.random(m, dtype=np.float32)
    sb = rng.random(35, dtype=np.float32)
    bias = rng.standard_normal(35).astype(np.float32)
    outf = np.empty((m, 35), np.float32)
    core.int8_gemm_f32(au8, packed.packed, sa, sb, bias, outf)
    s = (sa[:, None] * sb[None, :]).astype(np.float32)
    np.testing.assert_allclose(outf, s.astype(np.float64) * ref(a, b) + bias, rtol=1e-6, atol=1e-6)
    # identical to the scalar path (a correctly rounded fma everywhere)
    with forced_isa("scalar"):
        want = np.empty_like(outf)
        core.int8_gemm_f32(au8, packed.packed, sa, sb, bias, want)
    np.testing.assert_array_equal(outf, want)


@pytest.mark.isa
@pytest.mark.parametrize("j0,j1", [(0, 1), (3, 20), (16, 32), (5, 70), (47, 49), (69, 70), (10, 10)])
@pytest.mark.parametrize("k", [150, 1100])
@pytest.mark.parametrize("m", [13, 10])
def test_column_ranges(isa, j0, j1, k, m):
    # int8_gemm_packed(a, ..., j0, j1, ...) writes only columns [j0, j1) (k = 1100 also runs
    # later k blocks over partial column blocks; 9 to 16 rows of uint8 codes with k a
    # multiple of 4 take the one-pass path of 12 x 32 or 16 x 16 blocks on avx512).
    rng = np.random.default_rng(j0 * 100 + j1)
    a, b = rand(rng, (m, k)), rand(rng, (70, k))
    packed = Int8Matrix(b)
    for codes in (a, a.view(np.uint8) ^ 0x80):
        out = np.full((m, 70), -7, np.int32)
        core.int8_gemm(codes, packed.packed, out, False, j0, j1)
        want = np.full((m, 70), -7, np.int64)
        want[:, j0:j1] = ref(a, b)[:, j0:j1]
        np.testing.assert_array_equal(out, want)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 20), k=st.integers(0, 140), n=st.integers(0, 70), seed=st.integers(0, 2**31))
def test_hypothesis_shapes(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, (m, k)), rand(rng, (n, k))
    np.testing.assert_array_equal(int8_matmul(a, b), ref(a, b))


def test_packed_reuse_and_shape():
    rng = np.random.default_rng(1)
    b = rand(rng, (50, 40))
    p = pack_int8(b)
    assert isinstance(p, embedrt.Int8Matrix) and p.shape == (50, 40)
    for m in (1, 16, 33):
        a = rand(rng, (m, 40))
        np.testing.assert_array_equal(p.matmul(a), ref(a, b))
        np.testing.assert_array_equal(int8_matmul(a, p), ref(a, b))


def test_scales():
    rng = np.random.default_rng(2)
    a, b = rand(rng, (6, 20)), rand(rng, (9, 20))
    d = ref(a, b).astype(np.float32)
    got = int8_matmul(a, b, a_scale=0.5, b_scale=0.25)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.float32(0.125) * d)
    sb = rng.random(9).astype(np.float32)
    np.testing.assert_array_equal(int8_matmul(a, b, b_scale=sb), sb[None, :] * d)
    sa = rng.random(6).astype(np.float32)
    np.testing.assert_array_equal(int8_matmul(a, b, a_scale=sa), sa[:, None] * d)
    with pytest.raises(ValueError, match="a_scale"):
        int8_matmul(a, b, a_scale=np.ones(5, np.float32))
    with pytest.raises(ValueError, match="b_scale"):
        int8_matmul(a, b, b_scale=np.array([np.nan] * 9, np.float32))
    with pytest.raises(TypeError, match="a_scale"):
        int8_matmul(a, b, a_scale=np.ones(6, np.int32))


def test_out_argument():
    rng = np.random.default_rng(4)
    a, b = rand(rng, (4, 10)), rand(rng, (5, 10))
    out = np.empty((4, 5), np.int32)
    assert int8_matmul(a, b, out=out) is out
    np.testing.assert_array_equal(out, ref(a, b))
    with pytest.raises(TypeError, match="out"):
        int8_matmul(a, b, out=np.empty((4, 5), np.int64))
    with pytest.raises(ValueError, match="out"):
        int8_matmul(a, b, out=np.empty((5, 4), np.int32))
    with pytest.raises(ValueError, match="out"):
        int8_matmul(a, b, out=np.empty((4, 10), np.int32)[:, ::2])
    with pytest.raises(TypeError, match="out"):
        int8_matmul(a, b, a_scale=1.0, out=np.empty((4, 5), np.int32))
    outf = np.empty((4, 5), np.float32)
    assert int8_matmul(a, b, a_scale=2.0, out=outf) is outf


def test_bad_input():
    a = np.zeros((3, 4), np.int8)
    with pytest.raises(TypeError, match="a"):
        int8_matmul(a.astype(np.int16), a)
    with pytest.raises(TypeError, match="b"):
        int8_matmul(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="columns"):
        int8_matmul(a, np.zeros((3, 5), np.int8))
    with pytest.raises(ValueError, match="2-D"):
        int8_matmul(a[0], a)
    with pytest.raises(ValueError, match=str(INT8_MAX_K)):
        Int8Matrix(np.zeros((1, INT8_MAX_K + 1), np.int8))
    with pytest.raises(ValueError, match="INT8_MAX_K"):
        int8_matmul(np.zeros((1, INT8_MAX_K + 1), np.int8), np.zeros((1, INT8_MAX_K + 1), np.int8))


def test_non_contiguous_inputs():
    rng = np.random.default_rng(5)
    a = rand(rng, (10, 40))[:, ::2]
    b = rand(rng, (30, 20))[::3]
    np.testing.assert_array_equal(int8_matmul(a, b), ref(a, b))
    np.testing.assert_array_equal(int8_matmul(np.asfortranarray(a), b), ref(a, b))


def test_threads_agree():
    rng = np.random.default_rng(6)
    a, b = rand(rng, (70, 200)), rand(rng, (300, 200))
    want = ref(a, b)
    before = embedrt.get_num_threads()
    try:
        for t in (1, 2, 3):
            embedrt.set_num_threads(t)
            np.testing.assert_array_equal(int8_matmul(a, b), want)
    finally:
        embedrt.set_num_threads(before)
