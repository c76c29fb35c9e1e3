"""Multi-bit binary codes (BEBR): exact SDC scores, top-k, the binarizer, SDCIndex."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import embedrt
import embedrt._core as core
from embedrt.sdc import ResidualBinarizer, SDCIndex, sdc, sdc_topk


# ---------------------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------------------
def ref_levels(codes: np.ndarray, dim: int) -> np.ndarray:
    """Odd integer levels int64 [n, dim] of codes [n, bits, nb]."""
    u = codes.shape[1]
    bits = np.unpackbits(codes, axis=2)[:, :, :dim].astype(np.int64) * 2 - 1
    weights = 2 ** np.arange(u - 1, -1, -1)
    return np.einsum("npd,p->nd", bits, weights)


def ref_sdc(q, d, dim):
    return ref_levels(q, dim) @ ref_levels(d, dim).T


def ref_topk(scores: np.ndarray, k: int):
    """Descending score, ties by the smaller id."""
    m, n = scores.shape
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :min(k, n)]
    return np.take_along_axis(scores, ids, axis=1), ids


def random_codes(rng, n, bits, dim):
    """Valid codes (padding bits zero)."""
    return np.packbits(rng.integers(0, 2, size=(n, bits, dim), dtype=np.uint8), axis=2)


# ---------------------------------------------------------------------------------------
# exactness
# ---------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dim=st.integers(1, 300), bits=st.integers(1, 4), m=st.sampled_from([0, 1, 2, 5]),
       n=st.sampled_from([0, 1, 3, 17, 40]), seed=st.integers(0, 2**32 - 1))
def test_sdc_matches_levels(dim, bits, m, n, seed):
    rng = np.random.default_rng(seed)
    q, d = random_codes(rng, m, bits, dim), random_codes(rng, n, bits, dim)
    got = sdc(q, d, dim=dim)
    assert got.dtype == np.int32 and got.shape == (m, n)
    np.testing.assert_array_equal(got, ref_sdc(q, d, dim))
    for k in (1, 4, 50):
        s, ids = sdc_topk(q, d, k, dim=dim)
        rs, rids = ref_topk(ref_sdc(q, d, dim), k)
        assert s.dtype == np.int32 and ids.dtype == np.int64
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(ids, rids)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dim=st.integers(1, 300), bits=st.integers(1, 4), m=st.sampled_from([0, 1, 3]),
       n=st.sampled_from([0, 1, 9]), seed=st.integers(0, 2**32 - 1))
def test_sdc_proportional_to_decode(dim, bits, m, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((max(m + n, 8), dim)).astype(np.float32)
    b = ResidualBinarizer(bits, rotate=False).fit(X)
    q, d = b.encode(X[:m]), b.encode(X[m:m + n])
    assert q.shape == (m, bits, (dim + 7) // 8)
    s = b.sdc(q, d)
    # Without rotation the reconstructions are exactly levels * unit.
    lq = np.rint(b.decode(q).astype(np.float64) / b.unit).astype(np.int64)
    ld = np.rint(b.decode(d).astype(np.float64) / b.unit).astype(np.int64)
    np.testing.assert_array_equal(s, lq @ ld.T)
    np.testing.assert_array_equal(s, b.levels(q).astype(np.int64) @ b.levels(d).astype(np.int64).T)
    ip = b.decode(q).astype(np.float64) @ b.decode(d).astype(np.float64).T
    np.testing.assert_allclose(s * b.scale, ip, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(ip).max(initial=0)))


def test_sdc_proportional_to_decode_with_rotation():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 37)).astype(np.float32)
    for bits in (1, 2, 3, 4):
        b = ResidualBinarizer(bits, n_iter=5).fit(X)
        assert b.rotation is not None and b.rotation.shape == (37, 37)
        c = b.encode(X)
        s = b.sdc(c[:20], c)
        np.testing.assert_array_equal(s, b.levels(c[:20]).astype(np.int64) @ b.levels(c).astype(np.int64).T)
        ip = b.decode(c[:20]).astype(np.float64) @ b.decode(c).astype(np.float64).T
        np.testing.assert_allclose(s * b.scale, ip, rtol=1e-4, atol=1e-4 * np.abs(ip).max())
        # decode undoes the rotation: reconstructions approximate the input
        err = np.linalg.norm(b.decode(c) - X) / np.linalg.norm(X)
        assert err < [0.9, 0.55, 0.3, 0.16][bits - 1]


def test_encode_levels_are_nearest_odd_levels():
    b = ResidualBinarizer(2, rotate=False).fit(np.ones((1, 4), np.float32))
    unit = b.unit
    x = np.array([[-10, -2.5, -1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 2.0, 10, 3.9, -3.9]], np.float32) * unit
    b2 = ResidualBinarizer(2, rotate=False)
    b2.dim, b2.step = x.shape[1], b.step
    np.testing.assert_array_equal(b2.levels(b2.encode(x))[0], [-3, -3, -1, -1, -1, 1, 1, 3, 1, 3, 3, -3])


def test_one_bit_is_sign_binarization():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 77)).astype(np.float32)
    b = ResidualBinarizer(1, rotate=False).fit(X)
    np.testing.assert_array_equal(b.encode(X)[:, 0], np.packbits(X > 0, axis=1))


# ---------------------------------------------------------------------------------------
# ISA levels, blocks, threads, ties
# ---------------------------------------------------------------------------------------
@pytest.mark.isa
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_every_isa_identical(isa, bits):
    rng = np.random.default_rng(bits)
    for dim, m, n in [(1, 3, 5), (63, 7, 9), (64, 5, 8), (130, 70, 300), (512, 9, 521), (1000, 2, 17)]:
        q, d = random_codes(rng, m, bits, dim), random_codes(rng, n, bits, dim)
        ref = ref_sdc(q, d, dim)
        np.testing.assert_array_equal(sdc(q, d, dim=dim), ref)
        s, ids = sdc_topk(q, d, 7, dim=dim)
        rs, rids = ref_topk(ref, 7)
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(ids, rids)


@pytest.mark.isa
def test_extreme_codes(isa):
    # all +max and all -max levels: the largest magnitudes
    for bits in (1, 2, 3, 4):
        dim = 700
        nb = (dim + 7) // 8
        ones = np.packbits(np.ones((1, bits, dim), np.uint8), axis=2)
        zeros = np.zeros((1, bits, nb), np.uint8)
        top = (2 ** bits - 1) ** 2 * dim
        got = sdc(np.concatenate([ones, zeros]), np.concatenate([ones, zeros]), dim=dim)
        np.testing.assert_array_equal(got, [[top, -top], [-top, top]])


def _at_scalar(fn):
    from conftest import forced_isa

    with forced_isa("scalar"):
        return fn()


@pytest.mark.isa
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_table_lookup_edges_match_scalar(isa, bits):
    # The avx2 table-lookup scan works on blocks of 32 codes and 16-bit sums folded into 32 bits
    # every 65535 / (8 (2^u - 1)^2) plane bytes: tails of a block, one code, odd widths, widths
    # past a fold, all-ones and all-zero codes, against numpy and the scalar level.
    rng = np.random.default_rng(100 + bits)
    fold = 65535 // (8 * (2**bits - 1) ** 2)  # plane bytes per 16-bit run
    dims = [1, 3, 8, 9, 31, 33, 127, 129, 8 * fold - 3, 8 * fold + 5]
    ns = [1, 2, 31, 32, 33, 63, 65, 257]
    for dim in dims:
        if dim > 3000 and bits < 3:
            continue  # the fold is beyond these widths' interest for small bits; covered below
        for n in ns:
            d = random_codes(rng, n, bits, dim)
            d[::7] = np.packbits(np.ones((1, bits, dim), np.uint8), axis=2)  # all levels +max
            d[3::11] = 0  # all levels -max
            q = np.concatenate([random_codes(rng, 3, bits, dim), d[:1], np.zeros_like(d[:1])])
            ref = ref_sdc(q, d, dim)
            got = sdc(q, d, dim=dim)
            np.testing.assert_array_equal(got, ref)
            # through the table scan's layout (read as it is at avx2, packed on the way elsewhere)
            blocks = core.sdc_pack(d, "blocks32")
            for k in (1, 10, n + 3):
                rs, rids = ref_topk(ref, k)
                for s, ids in (sdc_topk(q, d, k, dim=dim), core.sdc_topk(q, d, k, dim, blocks, "blocks32")):
                    np.testing.assert_array_equal(s, rs)
                    np.testing.assert_array_equal(ids, rids)
            # many queries: plain arrays go through the table scan at avx2 too
            if n in (33, 257) and dim < 3000:
                qq = np.concatenate([q] * 52)[:260]
                np.testing.assert_array_equal(sdc(qq, d, dim=dim), np.concatenate([ref] * 52)[:260])
                s, ids = sdc_topk(qq, d, 7, dim=dim)
                rs, rids = ref_topk(np.concatenate([ref] * 52)[:260], 7)
                np.testing.assert_array_equal(s, rs)
                np.testing.assert_array_equal(ids, rids)
        s_level = sdc_topk(q, d, 5, dim=dim)
        s_scalar = _at_scalar(lambda: sdc_topk(q, d, 5, dim=dim))
        np.testing.assert_array_equal(s_level[0], s_scalar[0])
        np.testing.assert_array_equal(s_level[1], s_scalar[1])
        np.testing.assert_array_equal(sdc(q, d, dim=dim), _at_scalar(lambda: sdc(q, d, dim=dim)))


@pytest.mark.isa
def test_wide_codes_fold_sums(isa):
    # widths past the 16-bit runs of every bits (2-bit: 910 plane bytes), with extreme codes
    rng = np.random.default_rng(9)
    for bits, dim in ((1, 9000), (2, 7400), (3, 1400), (4, 1000)):
        d = random_codes(rng, 40, bits, dim)
        d[0] = np.packbits(np.ones((bits, dim), np.uint8), axis=1)
        d[1] = 0
        q = np.concatenate([d[:2], random_codes(rng, 2, bits, dim)])
        ref = ref_sdc(q, d, dim)
        np.testing.assert_array_equal(sdc(q, d, dim=dim), ref)
        top = (2**bits - 1) ** 2 * dim
        assert ref[0, 0] == top and ref[0, 1] == -top and ref[1, 1] == top
        s, ids = sdc_topk(q, d, 6, dim=dim)
        rs, rids = ref_topk(ref, 6)
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(ids, rids)


@pytest.mark.isa
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_layouts_and_packed_search(isa, bits):
    # Each layout packs to its documented size; sdc_topk reads a packed database of the running
    # variant's layout, and packs on the way when handed the other layout: same results.
    rng = np.random.default_rng(bits)
    dim, n = 77, 101
    nb = (dim + 7) // 8
    d, q = random_codes(rng, n, bits, dim), random_codes(rng, 6, bits, dim)
    rs, rids = ref_topk(ref_sdc(q, d, dim), 9)
    running = core.sdc_layout(bits)
    assert running == ("blocks32" if isa in ("avx2", "avx512-skx", "avx512-vnni") else "groups8")
    assert core.sdc_layout_codes("groups8") == 8 and core.sdc_layout_codes("blocks32") == 32
    sizes = {"groups8": (n + 7) // 8 * bits * ((nb + 7) // 8) * 8, "blocks32": (n + 31) // 32 * bits * nb * 4}
    for layout, words in sizes.items():
        packed = core.sdc_pack(d, layout)
        assert packed.dtype == np.uint64 and packed.shape == (words,)
        # the vector transpose of avx2 (16 plane bytes at a time, the rest bytewise) = scalar's
        np.testing.assert_array_equal(packed, _at_scalar(lambda: core.sdc_pack(d, layout)))
        s, ids = core.sdc_topk(q, d, 9, dim, packed, layout)
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(ids, rids)
    np.testing.assert_array_equal(core.sdc_pack(d), core.sdc_pack(d, running))
    with pytest.raises(ValueError, match="layout"):
        core.sdc_pack(d, "rows")
    with pytest.raises(ValueError, match="packed"):
        core.sdc_topk(q, d, 3, dim, core.sdc_pack(d, "blocks32")[:-4], "blocks32")
    assert embedrt.cpu_info()["kernels"]["sdc"] == f"{isa}: {core.sdc_variant(bits)}"


def test_blocks32_layout_bytes():
    # byte i of a 16-byte half holds code sdc_lut_code(i) in its low nibble and code 16 + that
    # in its high nibble; the first half the high nibbles of a plane byte, the second the low
    d = np.zeros((32, 1, 1), np.uint8)
    d[:, 0, 0] = np.arange(32, dtype=np.uint8) * 8 + 3  # distinct nibbles
    got = core.sdc_pack(d, "blocks32").view(np.uint8)
    assert got.shape == (32,)
    code = [(i & 1) * 8 + (i >> 1) for i in range(16)]
    for i in range(16):
        a, b = int(d[code[i], 0, 0]), int(d[16 + code[i], 0, 0])
        assert got[i] == (a >> 4) | (b & 0xF0)
        assert got[16 + i] == (a & 0x0F) | ((b & 0x0F) << 4)


def test_index_layout_follows_the_running_variant():
    # SDCIndex keeps its packed copy in the layout of the variant that runs; forcing another
    # level with another layout rebuilds it (including after adds), and results never change.
    from conftest import forced_isa, isa_levels

    rng = np.random.default_rng(12)
    X = rng.standard_normal((333, 50)).astype(np.float32)
    idx = embedrt.SDCIndex(50, bits=2)
    idx.add(X[:200])
    want = idx.search(X[:7], 10)
    seen = set()
    for level in isa_levels() + isa_levels()[::-1]:
        with forced_isa(level):
            got = idx.search(X[:7], 10)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            packed, layout = idx._search_layout()
            assert layout == core.sdc_layout(2)
            seen.add(layout)
            np.testing.assert_array_equal(packed[:core.sdc_pack(idx.codes).size], core.sdc_pack(idx.codes))
    with forced_isa(isa_levels()[-1]):
        idx.add(X[200:])
        want = idx.search(X[:7], 10)
    for level in isa_levels():
        with forced_isa(level):
            got = idx.search(X[:7], 10)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[1], sdc_topk(idx.binarizer.encode(X[:7]), idx.codes, 10, dim=50)[1])
    assert "groups8" in seen


def test_topk_ties_and_threads():
    rng = np.random.default_rng(5)
    base = random_codes(rng, 6, 2, 40)
    d = base[rng.integers(0, 6, size=3000)]  # many exact duplicates
    q = base[:4]
    ref = ref_sdc(q, d, 40)
    before = embedrt.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            embedrt.set_num_threads(threads)
            results.append(sdc_topk(q, d, 25, dim=40))
    finally:
        embedrt.set_num_threads(before)
    rs, rids = ref_topk(ref, 25)
    for s, ids in results:
        np.testing.assert_array_equal(s, rs)
        np.testing.assert_array_equal(ids, rids)


def test_topk_k_larger_than_n_and_empty():
    rng = np.random.default_rng(1)
    q, d = random_codes(rng, 3, 3, 20), random_codes(rng, 4, 3, 20)
    s, ids = sdc_topk(q, d, 10, dim=20)
    assert s.shape == ids.shape == (3, 4)
    s, ids = sdc_topk(q, d[:0], 5, dim=20)
    assert s.shape == ids.shape == (3, 0)
    s, ids = sdc_topk(q[:0], d, 5, dim=20)
    assert s.shape == ids.shape == (0, 4)
    assert sdc(q[:0], d[:0], dim=20).shape == (0, 0)


def test_non_contiguous_codes_accepted():
    rng = np.random.default_rng(2)
    q, d = random_codes(rng, 4, 2, 64), random_codes(rng, 10, 2, 64)
    qn = np.asfortranarray(q)
    np.testing.assert_array_equal(sdc(qn, d[::2]), ref_sdc(q, d[::2], 64))


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------
def test_bad_inputs():
    rng = np.random.default_rng(0)
    q, d = random_codes(rng, 2, 2, 16), random_codes(rng, 3, 2, 16)
    with pytest.raises(ValueError, match="bits"):
        ResidualBinarizer(0)
    with pytest.raises(ValueError, match="bits"):
        ResidualBinarizer(5)
    with pytest.raises(TypeError, match="q_codes"):
        sdc(q.astype(np.int8), d)
    with pytest.raises(TypeError, match="db_codes"):
        sdc(q, d.astype(np.float32))
    with pytest.raises(ValueError, match="3-D"):
        sdc(q[:, 0], d)
    with pytest.raises(ValueError, match="bits"):
        sdc(q, random_codes(rng, 3, 3, 16))
    with pytest.raises(ValueError, match="widths"):
        sdc(q, random_codes(rng, 3, 2, 24))
    with pytest.raises(ValueError, match="1..4"):
        sdc(np.zeros((1, 5, 2), np.uint8), np.zeros((1, 5, 2), np.uint8))
    with pytest.raises(ValueError, match="dim"):
        sdc(q, d, dim=8)
    with pytest.raises(ValueError, match="k"):
        sdc_topk(q, d, 0)
    with pytest.raises(TypeError):
        sdc_topk(q, d, 1.5)
    # the native layer checks too
    with pytest.raises(ValueError):
        core.sdc_scores(q, random_codes(rng, 3, 2, 24), 16)
    with pytest.raises(TypeError):
        core.sdc_topk(q.astype(np.int8), d, 3, 16)

    X = rng.standard_normal((10, 16)).astype(np.float32)
    b = ResidualBinarizer(2)
    with pytest.raises(RuntimeError, match="not fitted"):
        b.encode(X)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        b.fit(bad)
    b.fit(X)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN"):
        b.encode(bad)
    with pytest.raises(TypeError):
        b.encode(X.astype(np.int32))
    with pytest.raises(ValueError, match="columns"):
        b.encode(X[:, :8])
    with pytest.raises(ValueError, match="codes"):
        b.decode(random_codes(rng, 2, 3, 16))

    index = SDCIndex(16, 2)
    assert index.search(X, 3)[1].shape == (10, 0)  # empty: no results
    with pytest.raises(RuntimeError, match="fitted"):
        index.save("unused.sdc")
    with pytest.raises(ValueError, match="NaN"):
        index.add(bad)
    index.add(X)
    with pytest.raises(ValueError, match="NaN"):
        index.search(bad, 3)
    with pytest.raises(ValueError, match="columns"):
        index.search(X[:, :8], 3)
    with pytest.raises(ValueError, match="k"):
        index.search(X, 0)
    with pytest.raises(ValueError, match="bits"):
        SDCIndex(16, 2, binarizer=ResidualBinarizer(3))


# ---------------------------------------------------------------------------------------
# SDCIndex and files
# ---------------------------------------------------------------------------------------
def test_index_search_save_load(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((500, 48)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    index = SDCIndex(48, bits=3)
    index.add(X[:300])
    index.add(X[300:])
    assert len(index) == 500
    b = index.binarizer
    scores, ids = index.search(X[:10], 5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (10, 5)
    codes = b.encode(X)
    np.testing.assert_array_equal(index.codes, codes)
    rs, rids = ref_topk(ref_sdc(codes[:10], codes, 48), 5)
    np.testing.assert_array_equal(ids, rids)
    np.testing.assert_allclose(scores, rs * b.scale, rtol=1e-6)
    assert (ids[:, 0] == np.arange(10)).all()  # a vector finds itself
    np.testing.assert_array_equal(index.candidates(X[:10], 5), ids)
    assert index.candidates(X[:10], 1000).shape == (10, 500)

    path = tmp_path / "index.sdc"
    index.save(path)
    for mmap in (True, False):
        loaded = SDCIndex.load(path, mmap=mmap)
        s2, i2 = loaded.search(X[:10], 5)
        np.testing.assert_array_equal(i2, ids)
        np.testing.assert_array_equal(s2, scores)
    loaded.add(X[:3])
    assert len(loaded) == 503

    bpath = tmp_path / "binarizer.bin"
    b.save(bpath)
    b2 = ResidualBinarizer.load(bpath)
    np.testing.assert_array_equal(b2.encode(X), codes)
    assert b2.step == b.step and b2.bits == 3 and b2.dim == 48

    # corrupted and truncated files raise
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    bad = tmp_path / "bad.sdc"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum"):
        SDCIndex.load(bad, mmap=False)
    with pytest.raises(ValueError, match="checksum"):
        SDCIndex.load(bad, mmap=True, verify=True)
    bad.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        SDCIndex.load(bad)
    with pytest.raises(ValueError, match="SDCIndex"):
        ResidualBinarizer.load(path)


def test_index_with_given_binarizer_and_empty():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((50, 20)).astype(np.float32)
    b = ResidualBinarizer(2, rotate=False).fit(X)
    index = SDCIndex(20, 2, binarizer=b)
    s, ids = index.search(X[:2], 3)
    assert s.shape == ids.shape == (2, 0)
    index.add(X[:0])
    index.add_codes(b.encode(X))
    s, ids = index.search(X[:0], 3)
    assert ids.shape == (0, 3)
    assert index.search(X[0], 3)[1].shape == (1, 3)


# ---------------------------------------------------------------------------------------
# quality on real embeddings
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(corpus_dir):
    X = np.load(corpus_dir / "stdlib_docstrings.minilm.npy").astype(np.float32)
    Q = X[:300]
    truth = np.argsort(-(Q @ X.T), axis=1, kind="stable")[:, :10]
    return X, Q, truth


def recall_at_10(ids, truth):
    return float(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth)]))


@pytest.mark.parametrize("bits,target", [(2, 0.82), (3, 0.89)])
def test_recall_on_corpus(corpus, bits, target):
    X, Q, truth = corpus
    index = SDCIndex(X.shape[1], bits)
    index.add(X)
    _, ids = index.search(Q, 10)
    assert recall_at_10(ids, truth) >= target


def test_public_names():
    rng = np.random.default_rng(4)
    q = random_codes(rng, 2, 2, 16)
    import embedrt.sdc  # noqa: F401  (the submodule shares the function's name)

    np.testing.assert_array_equal(embedrt.sdc(q, q), ref_sdc(q, q, 16))
    assert embedrt.sdc_topk(q, q, 1)[1].shape == (2, 1)
    assert embedrt.ResidualBinarizer is ResidualBinarizer and embedrt.SDCIndex is SDCIndex


def test_index_many_small_adds_and_mapped_growth(tmp_path):
    # adds interleaved with searches; a memory-mapped index grows by copying, never writing the file
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 40)).astype(np.float32)
    idx = embedrt.SDCIndex(40, bits=2)
    for i in range(0, 300, 7):
        idx.add(X[i:i + 7])
        s, ids = idx.search(X[:3], k=5)
        assert len(idx) == min(i + 7, 300) and ids.shape == (3, min(5, len(idx)))
    assert not idx.codes.flags.writeable
    np.testing.assert_array_equal(idx.codes, idx.binarizer.encode(X))
    path = tmp_path / "i.sdc"
    idx.save(path)
    before = path.read_bytes()
    m = embedrt.SDCIndex.load(path, mmap=True)
    m.add(X[:10])
    assert len(m) == 310 and path.read_bytes() == before
    np.testing.assert_array_equal(m.codes[300:], idx.codes[:10])
    np.testing.assert_array_equal(m.search(X[:4], k=3)[1], m.search(X[:4], k=3)[1])


@pytest.mark.isa
def test_index_search_layout_matches_plain_search(isa):
    # SDCIndex searches a packed copy of its codes, extended after adds (including adds that
    # end inside a group of 8): the same results as sdc_topk on the codes, at every level.
    rng = np.random.default_rng(11)
    X = rng.standard_normal((613, 72)).astype(np.float32)
    idx = embedrt.SDCIndex(72, bits=3)
    for a, b in ((0, 5), (5, 13), (13, 300), (300, 301), (301, 613)):
        idx.add(X[a:b])
        q = idx.binarizer.encode(X[:9])
        for k in (1, 10, 700):
            want = sdc_topk(q, idx.codes, k, dim=72)
            packed, layout = idx._search_layout()
            assert layout == core.sdc_layout(3)
            got = core.sdc_topk(q, idx.codes, k, 72, packed, layout)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
        s, ids = idx.search(X[:9], k=10)
        np.testing.assert_array_equal(ids, sdc_topk(q, idx.codes, 10, dim=72)[1])
    packed = core.sdc_pack(idx.codes)
    np.testing.assert_array_equal(packed, idx._search_layout()[0][:packed.size])
    with pytest.raises(ValueError, match="packed"):
        core.sdc_topk(q, idx.codes, 3, 72, packed[:-8])
    with pytest.raises(TypeError):
        core.sdc_topk(q, idx.codes, 3, 72, packed.astype(np.int64))


@pytest.mark.isa
def test_many_wide_queries_in_turns(isa):
    # the avx2 tables take nb * 32 bytes per query: large batches run in turns of a bounded
    # number of queries (here 256 of 2100-byte planes); results as one batch
    rng = np.random.default_rng(13)
    dim = 16800
    q, d = random_codes(rng, 600, 1, dim), random_codes(rng, 40, 1, dim)
    ref = ref_sdc(q, d, dim)
    np.testing.assert_array_equal(sdc(q, d, dim=dim), ref)
    s, ids = sdc_topk(q, d, 5, dim=dim)
    rs, rids = ref_topk(ref, 5)
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_array_equal(ids, rids)
