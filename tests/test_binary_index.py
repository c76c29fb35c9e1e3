"""BinaryIndex: search against numpy, growth, tail bits, save/load (mmap), corrupted files."""
from __future__ import annotations

import numpy as np
import pytest

import embedrt


def ref_search(queries, codes, nbits, k):
    nbytes = (nbits + 7) // 8
    qa = np.unpackbits(queries[:, :nbytes], axis=1)[:, :nbits]
    ca = np.unpackbits(codes[:, :nbytes], axis=1)[:, :nbits]
    d = (qa[:, None, :] != ca[None, :, :]).sum(-1)
    kk = min(k, codes.shape[0])
    order = np.lexsort((np.broadcast_to(np.arange(codes.shape[0]), d.shape), d), axis=1)[:, :kk]
    return np.take_along_axis(d, order, 1).astype(np.int32), order


def build(rng, nbits, n):
    index = embedrt.BinaryIndex(nbits)
    codes = rng.integers(0, 256, (n, (nbits + 7) // 8), dtype=np.uint8)
    for start in range(0, n, 37):  # many small adds
        index.add(codes[start:start + 37])
    return index, codes


@pytest.mark.isa
@pytest.mark.parametrize("nbits", [1, 8, 13, 64, 100, 384, 512, 1000])
def test_search_matches_reference(isa, nbits):
    rng = np.random.default_rng(nbits)
    index, codes = build(rng, nbits, 500)
    assert len(index) == index.ntotal == 500 and index.nbits == nbits
    queries = np.concatenate([codes[:3], rng.integers(0, 256, (4, codes.shape[1]), dtype=np.uint8)])
    for k in (1, 10, 499, 600):
        D, I = index.search(queries, k)
        rD, rI = ref_search(queries, codes, nbits, k)
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)


def test_tail_bits_are_ignored():
    nbits = 12
    index = embedrt.BinaryIndex(nbits)
    a = np.array([[0b10101010, 0b11110000]], np.uint8)
    b = np.array([[0b10101010, 0b11111111]], np.uint8)  # differs only past bit 12
    index.add(np.concatenate([a, b]))
    D, I = index.search(a, 2)
    np.testing.assert_array_equal(D, [[0, 0]])
    np.testing.assert_array_equal(I, [[0, 1]])
    np.testing.assert_array_equal(index.reconstruct([1]), b)  # stored as given
    np.testing.assert_array_equal(index.reconstruct(0), a[0])


def test_growth_is_amortised():
    index = embedrt.BinaryIndex(64)
    rng = np.random.default_rng(0)
    buffers = set()
    for _ in range(2000):
        index.add(rng.integers(0, 256, (1, 8), dtype=np.uint8))
        buffers.add(index.codes.__array_interface__["data"][0])
    assert len(index) == 2000
    assert len(buffers) <= 4  # capacity doubles: few reallocations


def test_empty_index_and_bad_input():
    index = embedrt.BinaryIndex(16)
    D, I = index.search(np.zeros((3, 2), np.uint8), 5)
    assert D.shape == I.shape == (3, 0) and D.dtype == np.int32 and I.dtype == np.int64
    index.add(np.zeros((0, 2), np.uint8))
    assert len(index) == 0
    with pytest.raises(ValueError, match="2 bytes"):
        index.add(np.zeros((3, 3), np.uint8))
    with pytest.raises(TypeError):
        index.add(np.zeros((3, 2), np.int8))
    with pytest.raises(ValueError, match="2 bytes"):
        index.search(np.zeros((3, 4), np.uint8), 1)
    with pytest.raises(ValueError):
        index.search(np.zeros((3, 2), np.uint8), 0)
    with pytest.raises(ValueError):
        embedrt.BinaryIndex(0)
    with pytest.raises(TypeError):
        embedrt.BinaryIndex(8.0)
    index.add(np.ones(2, np.uint8))  # 1-D: one code
    with pytest.raises(IndexError):
        index.reconstruct([1])
    D, I = index.search(np.ones(2, np.uint8), 3)
    assert D.shape == (1, 1)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("nbits", [13, 512])
def test_save_load_round_trip(tmp_path, mmap, nbits):
    rng = np.random.default_rng(1)
    index, codes = build(rng, nbits, 300)
    path = tmp_path / "codes.erti"
    index.save(path)
    loaded = embedrt.BinaryIndex.load(path, mmap=mmap)
    assert loaded.nbits == nbits and len(loaded) == 300
    np.testing.assert_array_equal(loaded.codes, codes)
    q = codes[:5]
    for a, b in zip(loaded.search(q, 7), index.search(q, 7)):
        np.testing.assert_array_equal(a, b)
    loaded.verify()
    # adding to a loaded (possibly memory-mapped) index copies it into memory first
    extra = rng.integers(0, 256, (10, codes.shape[1]), dtype=np.uint8)
    loaded.add(extra)
    assert len(loaded) == 310
    np.testing.assert_array_equal(loaded.reconstruct(np.arange(300, 310)), extra)
    D, I = loaded.search(extra[:2], 1)
    assert (D[:, 0] == 0).all()
    # the file is unchanged
    again = embedrt.BinaryIndex.load(path, mmap=True, verify=True)
    assert len(again) == 300


def test_save_load_empty(tmp_path):
    path = tmp_path / "empty.erti"
    embedrt.BinaryIndex(40).save(path)
    loaded = embedrt.BinaryIndex.load(path)
    assert len(loaded) == 0 and loaded.nbits == 40
    loaded.add(np.zeros((2, 5), np.uint8))
    assert len(loaded) == 2


def test_truncated_and_altered_files(tmp_path):
    rng = np.random.default_rng(2)
    index, _ = build(rng, 256, 200)
    path = tmp_path / "idx.erti"
    index.save(path)
    data = path.read_bytes()

    trunc = tmp_path / "trunc.erti"
    trunc.write_bytes(data[:-100])
    for mmap in (True, False):
        with pytest.raises(ValueError, match="truncated"):
            embedrt.BinaryIndex.load(trunc, mmap=mmap)
    (tmp_path / "short.erti").write_bytes(data[:10])
    with pytest.raises(ValueError):
        embedrt.BinaryIndex.load(tmp_path / "short.erti")

    altered = bytearray(data)
    altered[-5] ^= 0x40  # inside the codes section
    bad = tmp_path / "bad.erti"
    bad.write_bytes(bytes(altered))
    with pytest.raises(ValueError, match="checksum"):
        embedrt.BinaryIndex.load(bad, mmap=False)
    with pytest.raises(ValueError, match="checksum"):
        embedrt.BinaryIndex.load(bad, mmap=True, verify=True)
    lazy = embedrt.BinaryIndex.load(bad, mmap=True)  # opens without reading the codes
    with pytest.raises(ValueError, match="checksum"):
        lazy.verify()
    grown = embedrt.BinaryIndex.load(bad, mmap=True)
    assert "memory-mapped" in repr(grown)
    grown.add(np.zeros((1, 32), np.uint8))  # copied into memory, not verified
    assert "memory-mapped" not in repr(grown)
    with pytest.raises(ValueError, match="checksum"):
        grown.verify()  # still checks the file it came from

    header = bytearray(data)
    header[40] ^= 0x01  # inside the JSON header
    hb = tmp_path / "header.erti"
    hb.write_bytes(bytes(header))
    with pytest.raises(ValueError):
        embedrt.BinaryIndex.load(hb)


def test_wrong_kind_and_inconsistent_header(tmp_path):
    from embedrt import _fileformat

    path = tmp_path / "other.erti"
    _fileformat.write_file(path, "Int8Index", 1, {}, {"codes": np.zeros((2, 2), np.int8)})
    with pytest.raises(ValueError, match="BinaryIndex"):
        embedrt.BinaryIndex.load(path)
    _fileformat.write_file(path, "BinaryIndex", 1, {"nbits": 64}, {"codes": np.zeros((2, 3), np.uint8)})
    with pytest.raises(ValueError, match="malformed"):
        embedrt.BinaryIndex.load(path)
    _fileformat.write_file(path, "BinaryIndex", 1, {"nbits": "x"}, {"codes": np.zeros((2, 3), np.uint8)})
    with pytest.raises(ValueError, match="malformed"):
        embedrt.BinaryIndex.load(path)
    with pytest.raises(FileNotFoundError):
        embedrt.BinaryIndex.load(tmp_path / "missing.erti")


def test_search_threads_identical():
    rng = np.random.default_rng(4)
    index, codes = build(rng, 128, 50_000)
    q = rng.integers(0, 256, (3, 16), dtype=np.uint8)
    before = embedrt.get_num_threads()
    try:
        embedrt.set_num_threads(1)
        one = index.search(q, 20)
        embedrt.set_num_threads(2)
        two = index.search(q, 20)
    finally:
        embedrt.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_concurrent_searches_from_python_threads():
    # kernels release the GIL; concurrent calls share the pool (or run inline) and must agree
    import threading

    rng = np.random.default_rng(6)
    index, _ = build(rng, 256, 30_000)
    queries = [rng.integers(0, 256, (5, 32), dtype=np.uint8) for _ in range(4)]
    expected = [index.search(q, 15) for q in queries]
    errors = []

    def worker(t):
        try:
            for _ in range(5):
                D, I = index.search(queries[t], 15)
                np.testing.assert_array_equal(D, expected[t][0])
                np.testing.assert_array_equal(I, expected[t][1])
                np.testing.assert_array_equal(embedrt.hamming(queries[t], index.codes[:100]),
                                              np.bitwise_count(queries[t][:, None] ^ index.codes[None, :100]).sum(-1))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
