"""Int8Index and the two-stage Index against numpy brute force; files; bad input; recall."""
from __future__ import annotations

import numpy as np
import pytest

import embedrt
import embedrt._core as core
from embedrt import Index, Int8Index, quantize


def brute(index_codes, scales, q16, qs, k):
    """Reference scores and ids: exact integer dots, the same float steps, sorted by
    (-score, id)."""
    dots = q16.astype(np.int64) @ index_codes.astype(np.int64).T
    scores = (qs[:, None] * scales[None, :]).astype(np.float32) * dots.astype(np.float32)
    ids = np.array([np.lexsort((np.arange(len(r)), -r))[:k] for r in scores]).reshape(len(q16), k)
    return np.take_along_axis(scores, ids, axis=1), ids


def q16_of(q, dim):
    from embedrt.index.int8 import query_q16
    q16, qs = query_q16(q, dim)
    return q16[:, :dim], qs


def data(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32)


@pytest.mark.isa
@pytest.mark.parametrize("n,dim,m,k", [(1, 1, 1, 1), (10, 7, 3, 4), (100, 33, 5, 10), (257, 64, 2, 300),
                                       (1000, 384, 7, 10), (50, 100, 9, 50)])
def test_int8_index_matches_brute_force(isa, n, dim, m, k):
    x, q = data(n, dim), data(m, dim, seed=1)
    ix = Int8Index(dim)
    ids = ix.add(x)
    np.testing.assert_array_equal(ids, np.arange(n))
    scores, got = ix.search(q, k)
    kk = min(k, n)
    assert scores.shape == (m, kk) and got.shape == (m, kk)
    assert scores.dtype == np.float32 and got.dtype == np.int64
    q16, qs = q16_of(q, dim)
    ws, wi = brute(ix.codes, ix.scales, q16, qs, kk)
    np.testing.assert_array_equal(got, wi)
    np.testing.assert_array_equal(scores, ws)
    # close to the float scores of the dequantized vectors
    approx = q @ ix.reconstruct(np.arange(n)).T
    np.testing.assert_allclose(scores, np.take_along_axis(approx, got, axis=1), rtol=1e-3, atol=1e-3)


@pytest.mark.isa
def test_ties_and_determinism(isa):
    x = np.tile(data(3, 40), (20, 1))  # many identical vectors: ties broken by smaller id
    ix = Int8Index(40)
    ix.add(x)
    s, i = ix.search(x[:3], 20)
    for row, base in zip(i, range(3)):
        assert list(row) == list(range(base, 60, 3))
    s2, i2 = ix.search(x[:3], 20)
    np.testing.assert_array_equal(i, i2)


@pytest.mark.isa
def test_int8_queries(isa):
    x = data(200, 48)
    ix = Int8Index(48)
    ix.add(x)
    qc, _ = quantize(x[:4], "int8_sym")
    s, i = ix.search(qc, 5)
    dots = qc.astype(np.int64) @ ix.codes.astype(np.int64).T
    sc = ix.scales[None, :] * dots.astype(np.float32)
    want = np.array([np.lexsort((np.arange(200), -r))[:5] for r in sc])
    np.testing.assert_array_equal(i, want)
    assert (i[:, 0] == np.arange(4)).all()


def test_threads_agree():
    x, q = data(5000, 96), data(4, 96, seed=2)
    ix = Int8Index(96)
    ix.add(x)
    before = embedrt.get_num_threads()
    try:
        embedrt.set_num_threads(1)
        a = ix.search(q, 17)
        embedrt.set_num_threads(3)
        b = ix.search(q, 17)
    finally:
        embedrt.set_num_threads(before)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])


def test_int8_index_edges_and_bad_input():
    ix = Int8Index(8)
    s, i = ix.search(data(2, 8), 5)  # empty index
    assert s.shape == (2, 0) and i.shape == (2, 0)
    ix.add(data(3, 8))
    ix.add(data(1, 8)[0])  # one vector
    assert len(ix) == 4
    s, i = ix.search(data(1, 8)[0], 10)  # k > len -> len; 1-D query
    assert i.shape == (1, 4) and sorted(i[0]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="k"):
        ix.search(data(1, 8), 0)
    with pytest.raises(TypeError, match="k"):
        ix.search(data(1, 8), 1.5)
    with pytest.raises(ValueError, match="dimensions"):
        ix.search(data(1, 9), 1)
    with pytest.raises(ValueError, match="dimensions"):
        ix.add(data(1, 9))
    with pytest.raises(TypeError, match="float"):
        ix.add(np.zeros((1, 8), np.int8))
    bad = data(2, 8)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ix.add(bad)
    with pytest.raises(ValueError, match="NaN"):
        ix.search(bad, 1)
    with pytest.raises(IndexError):
        ix.reconstruct([4])
    with pytest.raises(ValueError):
        Int8Index(0)
    r = ix.reconstruct([0, 3])
    assert r.shape == (2, 8) and r.dtype == np.float32
    # non-contiguous input is accepted
    x = data(10, 16)[:, ::2]
    ix2 = Int8Index(8)
    ix2.add(x)
    assert ix2.search(x, 1)[1][:, 0].tolist() == list(range(10))


@pytest.mark.parametrize("mmap", [True, False])
def test_int8_index_save_load(tmp_path, mmap):
    x, q = data(300, 24), data(3, 24, seed=5)
    ix = Int8Index(24)
    ix.add(x)
    path = tmp_path / "a.int8"
    ix.save(path)
    back = Int8Index.load(path, mmap=mmap)
    back.verify()
    assert len(back) == 300 and back.dim == 24
    for a, b in zip(ix.search(q, 7), back.search(q, 7)):
        np.testing.assert_array_equal(a, b)
    back.add(x[:5])  # a loaded (read-only) index can grow
    assert len(back) == 305
    np.testing.assert_array_equal(back.reconstruct([300]), ix.reconstruct([0]))


def test_int8_index_corrupted_files(tmp_path):
    ix = Int8Index(16)
    ix.add(data(100, 16))
    path = tmp_path / "a.int8"
    ix.save(path)
    raw = bytearray(path.read_bytes())
    (tmp_path / "trunc").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        Int8Index.load(tmp_path / "trunc")
    flipped = bytearray(raw)
    flipped[-20] ^= 0xFF
    (tmp_path / "flip").write_bytes(flipped)
    with pytest.raises(ValueError, match="checksum"):
        Int8Index.load(tmp_path / "flip", mmap=False)
    lazy = Int8Index.load(tmp_path / "flip", mmap=True)  # lazy: opens, verify() raises
    with pytest.raises(ValueError, match="checksum"):
        lazy.verify()
    with pytest.raises(ValueError, match="checksum"):
        Int8Index.load(tmp_path / "flip", mmap=True, verify=True)
    (tmp_path / "junk").write_bytes(b"not an index at all" * 10)
    with pytest.raises(ValueError):
        Int8Index.load(tmp_path / "junk")
    idx = Index(16)
    idx.add(data(10, 16))
    idx.save(tmp_path / "two")
    with pytest.raises(ValueError, match="Index"):
        Int8Index.load(tmp_path / "two")


# ---- two-stage Index ----------------------------------------------------------------------

def hamming_ref(qbits, bits):
    x = np.bitwise_xor(qbits[:, None, :], bits[None, :, :])
    return np.unpackbits(x, axis=2).sum(axis=2)


@pytest.mark.isa
@pytest.mark.parametrize("n,dim,k,mult", [(50, 16, 3, 4), (300, 100, 10, 4), (300, 100, 10, 1),
                                          (64, 384, 5, 100), (7, 9, 10, 4)])
def test_two_stage_matches_reference(isa, n, dim, k, mult):
    x, q = data(n, dim), data(4, dim, seed=3)
    idx = Index(dim)
    idx.add(x)
    scores, ids = idx.search(q, k, rescore_multiplier=mult)
    kk = min(k, n)
    c = min(n, kk * mult)
    bits = quantize(x, "ubinary")
    ham = hamming_ref(quantize(q, "ubinary"), bits)
    codes, sc = quantize(x, "int8_sym")
    q16, qs = q16_of(q, dim)
    for j in range(len(q)):
        cand = np.lexsort((np.arange(n), ham[j]))[:c]
        dots = q16[j].astype(np.int64) @ codes[cand].astype(np.int64).T
        s = (qs[j] * sc[cand]).astype(np.float32) * dots.astype(np.float32)
        order = np.lexsort((cand, -s))[:kk]
        np.testing.assert_array_equal(ids[j], cand[order])
        np.testing.assert_array_equal(scores[j], s[order])


def test_two_stage_modes():
    x, q = data(200, 64), data(3, 64, seed=4)
    exact = Int8Index(64)
    exact.add(x)
    only8 = Index(64, coarse=None)
    only8.add(x)
    for a, b in zip(exact.search(q, 9), only8.search(q, 9)):
        np.testing.assert_array_equal(a, b)
    only_bin = Index(64, rescore=None)
    only_bin.add(x)
    s, i = only_bin.search(q, 9)
    ham = hamming_ref(quantize(q, "ubinary"), quantize(x, "ubinary"))
    for j in range(3):
        order = np.lexsort((np.arange(200), ham[j]))[:9]
        np.testing.assert_array_equal(i[j], order)
        np.testing.assert_array_equal(s[j], (64 - 2 * ham[j][order]).astype(np.float32))
    assert only_bin.bytes_per_vector == 8 and only8.bytes_per_vector == 68
    assert Index(64).bytes_per_vector == 76
    with pytest.raises(ValueError, match="reconstruct"):
        only_bin.reconstruct([0])
    with pytest.raises(ValueError, match="coarse"):
        Index(64, coarse="pq")
    with pytest.raises(ValueError):
        Index(64, coarse=None, rescore=None)


def test_two_stage_bad_input_and_files(tmp_path):
    idx = Index(32)
    s, i = idx.search(data(2, 32), 3)
    assert s.shape == (2, 0)
    idx.add(data(20, 32))
    idx.add(data(5, 32, seed=9))
    with pytest.raises(TypeError, match="float"):
        idx.search(np.zeros((1, 32), np.int8), 3)
    with pytest.raises(TypeError, match="float"):
        idx.add(np.zeros((1, 32), np.int8))
    with pytest.raises(ValueError, match="dimensions"):
        idx.search(data(1, 31), 3)
    with pytest.raises(ValueError, match="rescore_multiplier"):
        idx.search(data(1, 32), 3, rescore_multiplier=0)
    with pytest.raises(ValueError, match="k"):
        idx.search(data(1, 32), 0)
    s, i = idx.search(data(1, 32), 100)
    assert i.shape == (1, 25) and sorted(i[0]) == list(range(25))
    q = data(3, 32, seed=7)
    for mmap in (True, False):
        path = tmp_path / f"i{mmap}.idx"
        idx.save(path)
        back = Index.load(path, mmap=mmap)
        back.verify()
        assert (back.coarse, back.rescore, len(back)) == ("binary", "int8", 25)
        for a, b in zip(idx.search(q, 4), back.search(q, 4)):
            np.testing.assert_array_equal(a, b)
        back.add(data(2, 32))
        assert len(back) == 27 and back.search(q, 27)[1].shape == (3, 27)
    raw = bytearray((tmp_path / "iTrue.idx").read_bytes())
    raw[-3] ^= 1
    (tmp_path / "bad.idx").write_bytes(raw)
    with pytest.raises(ValueError, match="checksum"):
        Index.load(tmp_path / "bad.idx", mmap=False)
    with pytest.raises(ValueError, match="checksum"):
        Index.load(tmp_path / "bad.idx").verify()


def test_recall_on_corpus(corpus_dir):
    x = np.load(corpus_dir / "stdlib_docstrings.minilm.npy").astype(np.float32)
    q = x[:200]
    exact = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    idx = Index(x.shape[1])
    idx.add(x)
    _, ids = idx.search(q, 10, rescore_multiplier=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall >= 0.97, recall
    ix = Int8Index(x.shape[1])
    ix.add(x)
    _, ids = ix.search(q, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]) >= 0.99


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 80), dim=st.integers(1, 70), m=st.integers(1, 5), k=st.integers(1, 90),
       seed=st.integers(0, 2**31))
def test_int8_index_hypothesis(n, dim, m, k, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal((m, dim)).astype(np.float32)
    ix = Int8Index(dim)
    ix.add(x)
    scores, ids = ix.search(q, k)
    q16, qs = q16_of(q, dim)
    ws, wi = brute(ix.codes, ix.scales, q16, qs, min(k, n))
    np.testing.assert_array_equal(ids, wi)
    np.testing.assert_array_equal(scores, ws)


def test_concurrent_searches():
    import threading

    x, q = data(20000, 64), data(8, 64, seed=11)
    ix = Int8Index(64)
    ix.add(x)
    idx = Index(64)
    idx.add(x)
    want = ix.search(q, 10), idx.search(q, 10, rescore_multiplier=5)
    errors = []

    def work():
        try:
            for _ in range(5):
                a, b = ix.search(q, 10), idx.search(q, 10, rescore_multiplier=5)
                for got, exp in zip((a, b), want):
                    np.testing.assert_array_equal(got[1], exp[1])
                    np.testing.assert_array_equal(got[0], exp[0])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@pytest.mark.isa
def test_zero_rows(isa):
    # A zero vector, stored or queried, gets scale 0 and codes 0 (the one symmetric rule of
    # quantize "int8_sym" and the fixed-point queries), and every score it takes part in is 0.
    dim = 16
    x = data(5, dim)
    x[2] = 0
    codes, scales = quantize(x, "int8_sym")
    assert scales[2] == 0 and not codes[2].any()
    q = data(3, dim, seed=1)
    q[1] = 0
    q16, qs = q16_of(q, dim)
    assert qs[1] == 0 and not q16[1].any()
    assert qs[0] > 0 and np.abs(q16[0]).max() == core.int8_q16_max(dim)
    for ix in (Int8Index(dim), Index(dim), Index(dim, coarse=None)):
        ix.add(x)
        s, i = ix.search(q, 5)
        assert (s[1] == 0).all() and list(i[1]) == [0, 1, 2, 3, 4]  # ties: smaller id first
        assert (s[i == 2] == 0).all()
