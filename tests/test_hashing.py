"""Hash embeddings: bit-exactness against thinc, spaCy, fastText and numpy references, every
ISA level, edge cases and bad input."""
from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import embedrt
from embedrt import _core
from embedrt.hashing import word_shape

U64 = np.uint64
EDGE_KEYS = np.array([0, 1, 2, 7, 8, 255, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 2,
                      2**64 - 1], dtype=np.uint64)


# ------------------------------------------------------------------------------------------
# references
# ------------------------------------------------------------------------------------------

def ref_murmur(keys: np.ndarray, seed: int) -> np.ndarray:
    """MurmurHash3_x64_128 of 8-byte keys in numpy uint64 arithmetic (wrapping)."""
    def fmix(k):
        k = k ^ (k >> U64(33))
        k = k * U64(0xFF51AFD7ED558CCD)
        k = k ^ (k >> U64(33))
        k = k * U64(0xC4CEB9FE1A85EC53)
        return k ^ (k >> U64(33))

    with np.errstate(over="ignore"):
        k = keys.astype(U64) * U64(0x87C37B91114253D5)
        k = (k << U64(31)) | (k >> U64(33))
        k = k * U64(0x4CF5AD432745937F)
        s8 = U64(seed) ^ U64(8)
        h1 = s8 ^ k
        h2 = np.full_like(h1, s8)
        h1 = h1 + h2
        h2 = h2 + h1
        h1, h2 = fmix(h1), fmix(h2)
        h1 = h1 + h2
        h2 = h2 + h1
    out = np.empty((keys.shape[0], 4), np.uint32)
    out[:, 0] = h1 & U64(0xFFFFFFFF)
    out[:, 1] = h1 >> U64(32)
    out[:, 2] = h2 & U64(0xFFFFFFFF)
    out[:, 3] = h2 >> U64(32)
    return out


def ref_hash_embed(ids, seed, table):
    rows = (ref_murmur(ids, seed) % np.uint32(table.shape[0])).astype(np.int64)
    out = np.zeros((ids.shape[0], table.shape[1]), np.float32)
    for w in range(4):
        out = out + table[rows[:, w]]
    return out


def ref_murmur64a(data: bytes, seed: int) -> int:
    m, r, mask = 0xC6A4A7935BD1E995, 47, (1 << 64) - 1
    h = (seed ^ (len(data) * m)) & mask
    n8 = len(data) // 8
    for i in range(n8):
        (k,) = struct.unpack_from("<Q", data, i * 8)
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h ^= k
        h = (h * m) & mask
    tail = data[n8 * 8:]
    if tail:
        for i in range(len(tail) - 1, -1, -1):
            h ^= tail[i] << (8 * i)
        h = (h * m) & mask
    h ^= h >> r
    h = (h * m) & mask
    h ^= h >> r
    return h


def ref_fnv(b: bytes) -> int:
    h = 2166136261
    for c in b:
        h ^= (c - 256 if c >= 128 else c) & 0xFFFFFFFF
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def ref_subwords(word: str, minn, maxn, bucket, nwords):
    """A line-by-line port of fastText's Dictionary::computeSubwords."""
    if word == "</s>":  # Dictionary::getSubwords skips the EOS token
        return []
    w = ("<" + word + ">").encode("utf-8")
    out = []
    for i in range(len(w)):
        if (w[i] & 0xC0) == 0x80:
            continue
        ngram = bytearray()
        j, n = i, 1
        while j < len(w) and n <= maxn:
            ngram.append(w[j])
            j += 1
            while j < len(w) and (w[j] & 0xC0) == 0x80:
                ngram.append(w[j])
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == len(w))):
                out.append(nwords + ref_fnv(bytes(ngram)) % bucket)
            n += 1
    return out


def ref_bag(table, ids, offsets, mode="sum", weights=None):
    n = len(ids)
    ends = list(offsets[1:]) + [n]
    out = np.zeros((len(offsets), table.shape[1]), np.float32)
    for b, (s, e) in enumerate(zip(offsets, ends)):
        acc = np.zeros(table.shape[1], np.float32)
        for p in range(s, e):
            row = table[ids[p]]
            acc = acc + (row * np.float32(weights[p]) if weights is not None else row)
        if mode == "mean" and e > s:
            acc = acc / np.float32(e - s)
        out[b] = acc
    return out


def rand_keys(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)


# ------------------------------------------------------------------------------------------
# MurmurHash3 / HashEmbed
# ------------------------------------------------------------------------------------------

@pytest.mark.isa
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 9, 17, 1000])
def test_murmurhash3_matches_reference(isa, n):
    for keys in (rand_keys(n, n), EDGE_KEYS[:n], np.concatenate([EDGE_KEYS, rand_keys(n)])):
        for seed in (0, 1, 8, 2**32 - 1):
            got = embedrt.murmurhash3_128(keys, seed)
            assert got.dtype == np.uint32 and got.shape == (len(keys), 4)
            np.testing.assert_array_equal(got, ref_murmur(keys, seed))


def test_murmurhash3_matches_thinc():
    thinc = pytest.importorskip("thinc.api")
    ops = thinc.NumpyOps()
    keys = np.concatenate([EDGE_KEYS, rand_keys(5000, 1)])
    for seed in (0, 7, 123456789, 2**32 - 1):
        np.testing.assert_array_equal(embedrt.murmurhash3_128(keys, seed), ops.hash(keys, seed))


def test_murmurhash3_threaded_large():
    keys = rand_keys(300_000, 2)
    np.testing.assert_array_equal(embedrt.murmurhash3_128(keys, 5), ref_murmur(keys, 5))


@pytest.mark.isa
@pytest.mark.parametrize("dim", [1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 96, 100])
def test_hash_embed_matches_reference_bitwise(isa, dim):
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((997, dim)).astype(np.float32)
    ids = np.concatenate([EDGE_KEYS, rand_keys(301, dim)])
    emb = embedrt.HashEmbed(dim, 997, seed=11, table=table)
    got = emb(ids)
    ref = ref_hash_embed(ids, 11, table)
    assert got.tobytes() == ref.tobytes()


@pytest.mark.isa
def test_hash_embed_same_on_every_isa_and_thread_count(isa):
    rng = np.random.default_rng(3)
    table = rng.standard_normal((50_000, 64)).astype(np.float32)  # 12.8 MB: prefetching path
    ids = rand_keys(20_000, 3)
    ref = ref_hash_embed(ids, 99, table)
    got = embedrt.HashEmbed(64, 50_000, 99, table)(ids)  # 5 MB output: streaming stores
    assert got.tobytes() == ref.tobytes()


@pytest.mark.isa
@pytest.mark.parametrize("rows,dim", [(5000, 96), (2500, 96), (5000, 64), (5000, 80), (5000, 90),
                                      (2000, 144)])
def test_hash_embed_column_slices(isa, rows, dim):
    # tables beyond the L2 cache with many more ids than rows are gathered one column slice
    # at a time (several passes over the ids) when rows are whole cache lines (widths of
    # 16k floats), else whole rows go through the staged stores; the result must not change
    rng = np.random.default_rng(rows + dim)
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    ids = np.concatenate([EDGE_KEYS, rand_keys(4 * rows + 37, dim)])
    emb = embedrt.HashEmbed(dim, rows, 21, table)
    ref = ref_hash_embed(ids, 21, table)
    before = embedrt.get_num_threads()
    try:
        for threads in (1, 2):
            embedrt.set_num_threads(threads)
            assert emb(ids).tobytes() == ref.tobytes()
    finally:
        embedrt.set_num_threads(before)


@pytest.mark.isa
@pytest.mark.parametrize("n", [16383, 16384, 16385, 16391])
def test_hash_embed_output_sizes_around_streaming_threshold(isa, n):
    # 16384 x 64 float32 = 4 MiB: below it a numpy buffer and ordinary stores, from it a
    # cached 2 MiB-aligned buffer, above it non-temporal stores (tails of fewer than 8 ids)
    rng = np.random.default_rng(n)
    table = rng.standard_normal((300, 64)).astype(np.float32)
    ids = rand_keys(n, n)
    got = embedrt.HashEmbed(64, 300, 4, table)(ids)
    assert got.shape == (n, 64) and got.flags.c_contiguous
    assert got.tobytes() == ref_hash_embed(ids, 4, table).tobytes()


@pytest.mark.isa
@pytest.mark.parametrize("dim", [17, 90, 100, 300, 513])
def test_hash_embed_staged_streaming_rows(isa, dim):
    # rows that do not start cache lines: above 4 MiB of output, blocks of 8 rows are summed
    # into a buffer and copied out (ordinary stores on the partial lines where blocks and
    # thread chunks meet, non-temporal stores between); 513 floats is past the buffer
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((211, dim)).astype(np.float32)
    threshold = (4 << 20) // (dim * 4)
    before = embedrt.get_num_threads()
    try:
        for n in (threshold, threshold + 1, threshold + 13):
            ids = rand_keys(n, n)
            ref = ref_hash_embed(ids, 2, table)
            for threads in (1, 2):
                embedrt.set_num_threads(threads)
                assert _core.hash_embed(ids, 2, table).tobytes() == ref.tobytes()
    finally:
        embedrt.set_num_threads(before)


@pytest.mark.isa
def test_hash_embed_unaligned_and_strided_tables(isa):
    # the native call takes tables as they come: C-contiguous but only 4-byte aligned (a view
    # into a byte buffer), or non-contiguous (copied); the output is always a fresh array
    rng = np.random.default_rng(8)
    rows, dim = 700, 48
    base = rng.standard_normal((rows, dim)).astype(np.float32)
    raw = np.zeros(rows * dim * 4 + 64, np.uint8)
    ids = np.concatenate([EDGE_KEYS, rand_keys(30_000, 8)])
    ref = ref_hash_embed(ids, 6, base)
    for shift in (4, 8, 36):
        view = raw[shift:shift + rows * dim * 4].view(np.float32).reshape(rows, dim)
        view[...] = base
        assert view.ctypes.data % 64 != 0
        assert _core.hash_embed(ids, 6, view).tobytes() == ref.tobytes()
    wide = np.zeros((rows, 2 * dim), np.float32)
    wide[:, ::2] = base
    assert _core.hash_embed(ids, 6, wide[:, ::2]).tobytes() == ref.tobytes()
    assert _core.hash_embed(ids, 6, np.asfortranarray(base)).tobytes() == ref.tobytes()
    out = _core.hash_embed(ids[1:], 6, base)  # ids at an odd 8-byte offset
    assert out.tobytes() == ref[1:].tobytes()


def test_hash_embed_matches_thinc_layer():
    thinc = pytest.importorskip("thinc.api")
    for n_out, n_rows, seed in [(96, 5000, 8), (17, 3, 0), (1, 1, 2**32 - 1), (33, 1000, None)]:
        layer = thinc.HashEmbed(n_out, n_rows, seed=seed)
        layer.initialize()
        ids = np.concatenate([EDGE_KEYS, rand_keys(1000, n_out)])
        ref = layer.predict(ids)
        emb = embedrt.HashEmbed.from_thinc(layer)
        assert (emb.n_out, emb.n_rows, emb.seed) == (n_out, n_rows, layer.attrs["seed"])
        got = emb(ids)
        assert got.tobytes() == np.asarray(ref).tobytes()
        # the same through the explicit constructor
        same = embedrt.HashEmbed(n_out, n_rows, layer.attrs["seed"], layer.get_param("E"))
        assert same(ids).tobytes() == got.tobytes()


def test_hash_embed_column_matches_thinc():
    thinc = pytest.importorskip("thinc.api")
    layer = thinc.HashEmbed(24, 777, seed=9, column=2)
    layer.initialize()
    ids = rand_keys(4 * 300, 5).reshape(300, 4)
    emb = embedrt.HashEmbed.from_thinc(layer)
    assert emb.column == 2
    assert emb(ids).tobytes() == np.asarray(layer.predict(ids)).tobytes()
    # non-contiguous input is accepted
    assert emb(ids[::2]).tobytes() == np.asarray(layer.predict(ids[::2])).tobytes()


def test_hash_embed_edge_cases():
    emb = embedrt.HashEmbed(5, 7, seed=1)
    assert emb(np.zeros(0, np.uint64)).shape == (0, 5)
    assert emb([]).shape == (0, 5)
    one = emb(np.array([2**64 - 1], np.uint64))
    assert one.shape == (1, 5)
    np.testing.assert_array_equal(one, ref_hash_embed(np.array([2**64 - 1], np.uint64), 1, emb.table))
    np.testing.assert_array_equal(emb([2**64 - 1]), one)
    rows = emb.ids_to_rows(np.array([2**64 - 1], np.uint64))
    assert rows.shape == (1, 4) and (rows < 7).all()
    # a random table is seeded (the same each time) and in thinc's uniform(-0.1, 0.1) range
    again = embedrt.HashEmbed(5, 7, seed=1)
    np.testing.assert_array_equal(emb.table, again.table)
    assert np.abs(emb.table).max() <= 0.1
    # NaN in the table propagates into the ids that use the row, nowhere else
    table = np.ones((7, 5), np.float32)
    table[3] = np.nan
    nan_emb = embedrt.HashEmbed(5, 7, 1, table)
    ids = rand_keys(200, 9)
    out = nan_emb(ids)
    uses = (nan_emb.ids_to_rows(ids) == 3).any(axis=1)
    assert np.isnan(out[uses]).all() and not np.isnan(out[~uses]).any()


def test_hash_embed_bad_input():
    emb = embedrt.HashEmbed(4, 10, seed=1)
    with pytest.raises(TypeError, match="astype\\(np.uint64\\)"):
        emb(np.arange(5, dtype=np.int64))
    with pytest.raises(TypeError, match="uint64"):
        emb(np.arange(5, dtype=np.float64))
    with pytest.raises(TypeError):
        emb("abc")
    with pytest.raises(ValueError, match="2\\*\\*64"):
        emb([1, -2, 3])
    with pytest.raises(ValueError, match="1-D"):
        emb(np.zeros((3, 2), np.uint64))
    with pytest.raises(ValueError, match="seed"):
        embedrt.HashEmbed(4, 10, seed=2**32)
    with pytest.raises(ValueError, match="seed"):
        embedrt.HashEmbed(4, 10, seed=-1)
    with pytest.raises(ValueError, match="table"):
        embedrt.HashEmbed(4, 10, seed=1, table=np.zeros((10, 5), np.float32))
    with pytest.raises(TypeError):
        embedrt.HashEmbed(4, 10, seed=1, table=np.zeros((10, 4), np.int32))
    with pytest.raises(ValueError, match="n_rows"):
        embedrt.HashEmbed(4, 0)
    with pytest.raises(ValueError, match="column"):
        embedrt.HashEmbed(4, 10, column=3)(np.zeros((2, 2), np.uint64))
    with pytest.raises(TypeError):
        embedrt.murmurhash3_128(np.arange(3, dtype=np.uint32), 0)
    with pytest.raises(ValueError, match="seed"):
        embedrt.murmurhash3_128(np.arange(3, dtype=np.uint64), 2**32)
    with pytest.raises(TypeError):
        _core.hash_embed(np.arange(3, dtype=np.int64), 0, emb.table)


# ------------------------------------------------------------------------------------------
# spaCy string hashes, MultiHashEmbed
# ------------------------------------------------------------------------------------------

STRINGS = ["", "a", "ab", "hello", "Hello", "ORTH", "X", "nsubj", "1234567", "12345678",
           "123456789", "naïve café", "日本語", "😀", "x" * 100, "\x00", "tab\tnew\nline"]


def test_hash_string_matches_reference():
    got = embedrt.hash_string(STRINGS)
    assert got.dtype == np.uint64 and got.shape == (len(STRINGS),)
    for s, h in zip(STRINGS, got):
        assert int(h) == ref_murmur64a(s.encode("utf-8"), 1)
        assert embedrt.hash_string(s) == int(h)
    assert embedrt.hash_string([]).shape == (0,)


def test_hash_string_matches_spacy():
    strings = pytest.importorskip("spacy.strings")
    symbols = pytest.importorskip("spacy.symbols")
    for s in STRINGS[1:]:
        assert embedrt.hash_string(s) == strings.hash_string(s)
    store = strings.StringStore()
    for s in STRINGS + ["IS_ALPHA", "PERSON", "_", "LONG"]:
        assert embedrt.hash_string(s, spacy_compatible=True) == store.add(s)
    assert embedrt.hash_string("ORTH", spacy_compatible=True) == symbols.ORTH
    got = embedrt.hash_string(["ORTH", "orth", ""], spacy_compatible=True)
    assert list(got) == [symbols.ORTH, strings.hash_string("orth"), 0]


def test_hash_string_bad_input():
    with pytest.raises(TypeError):
        embedrt.hash_string(["a", 3])
    with pytest.raises(TypeError):
        embedrt.hash_string(b"bytes")
    with pytest.raises(TypeError):
        embedrt.hash_string(np.arange(3))
    with pytest.raises(TypeError):
        embedrt.hash_string(None)
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate has no UTF-8 form
        embedrt.hash_string(["ok", "\ud800"])
    assert list(embedrt.hash_string(("a", "b"))) == list(embedrt.hash_string(iter(["a", "b"])))


TOKENS = ["Hello", "world", "I", "_", "nsubj", "don't", "’s", "“", "Straße", "ÉCOLE", "12345678",
          "a-b_c", "", "X", "x" * 120, "😀ab", "C3PO", "e.g.", "...", "USA", "ΑΒΓ"]


def test_word_shape_matches_spacy():
    lex_attrs = pytest.importorskip("spacy.lang.lex_attrs")
    for t in TOKENS + ["aaaaaaa", "AAAAAb", "1111.22222", "x" * 99]:
        assert word_shape(t) == lex_attrs.word_shape(t)


def test_multi_hash_embed_features_match_spacy_lexemes():
    spacy = pytest.importorskip("spacy")
    vocab = spacy.blank("en").vocab
    emb = embedrt.MultiHashEmbed(8)
    feats = emb.features(TOKENS)
    assert feats.dtype == np.uint64 and feats.shape == (len(TOKENS), 4)
    for t, row in zip(TOKENS, feats):
        lex = vocab[t]
        assert [int(v) for v in row] == [lex.norm, lex.prefix, lex.suffix, lex.shape], t


def test_multi_hash_embed_output():
    emb = embedrt.MultiHashEmbed(12, rows=[50, 20, 30, 40])
    assert [e.seed for e in emb.embeds] == [8, 9, 10, 11]
    out = emb(TOKENS)
    assert out.shape == (len(TOKENS), 48) and out.dtype == np.float32
    feats = emb.features(TOKENS)
    for i, e in enumerate(emb.embeds):
        np.testing.assert_array_equal(out[:, 12 * i:12 * (i + 1)],
                                      ref_hash_embed(feats[:, i].copy(), e.seed, e.table))
    docs = emb([TOKENS[:3], [], TOKENS[3:]])
    assert [d.shape for d in docs] == [(3, 48), (0, 48), (len(TOKENS) - 3, 48)]
    np.testing.assert_array_equal(np.concatenate([docs[0], docs[2]]), out)
    assert emb([]).shape == (0, 48)
    with pytest.raises(ValueError, match="rows"):
        embedrt.MultiHashEmbed(8, rows=[1, 2])
    with pytest.raises(ValueError, match="feature"):
        embedrt.MultiHashEmbed(8, attrs=["NORM", "LEMMA"], rows=[5, 5])
    with pytest.raises(TypeError):
        emb("a string")
    with pytest.raises(TypeError):
        emb(["ok", 5])


def test_multi_hash_embed_matches_spacy_model():
    spacy = pytest.importorskip("spacy")
    from spacy.ml.models.tok2vec import MultiHashEmbed as SpacyMHE

    nlp = spacy.blank("en")
    model = SpacyMHE(width=16, attrs=["NORM", "PREFIX", "SUFFIX", "SHAPE"],
                     rows=[100, 50, 60, 70], include_static_vectors=False)
    doc = nlp.make_doc("Hello world, I'm testing the MultiHashEmbed layer of spaCy 3!")
    model.initialize([doc])
    ours = embedrt.MultiHashEmbed.from_spacy(model)
    hashembeds = [n for n in model.walk() if n.name == "hashembed"]
    tokens = [t.text for t in doc]
    feats = doc.to_array(["NORM", "PREFIX", "SUFFIX", "SHAPE"]).astype(np.uint64)
    norm_differs = np.array([t.norm != t.lex.norm for t in doc])  # tokenizer-exception norms
    ours_feats = ours.features(tokens)
    np.testing.assert_array_equal(ours_feats[~norm_differs], feats[~norm_differs])
    out = ours(tokens)
    for i, node in enumerate(hashembeds):
        ref = node.predict(np.ascontiguousarray(feats[:, i]))
        got = out[:, 16 * i:16 * (i + 1)]
        keep = ~norm_differs if i == 0 else slice(None)
        assert got[keep].tobytes() == np.asarray(ref)[keep].tobytes()


# ------------------------------------------------------------------------------------------
# fastText subwords
# ------------------------------------------------------------------------------------------

WORDS = ["</s>", "the", "quick", "naïve", "café", "straße", "日本語", "😀smile", "über", "zoë", "a", "I",
         "", "<", ">", "ab>c", "x" * 30, "\x7f\x80"]


def test_fasttext_subwords_match_port():
    for minn, maxn, bucket, nwords in [(3, 6, 2_000_000, 0), (1, 3, 1000, 17), (2, 5, 1, 5),
                                      (4, 2, 100, 0), (0, 0, 10, 0), (1, 1, 97, 3)]:
        ids, offs = embedrt.fasttext_subword_ids(WORDS, minn, maxn, bucket, nwords)
        assert ids.dtype == np.int64 and offs.dtype == np.int64 and len(offs) == len(WORDS) + 1
        for i, w in enumerate(WORDS):
            assert list(ids[offs[i]:offs[i + 1]]) == ref_subwords(w, minn, maxn, bucket, nwords), w
        as_list = embedrt.fasttext_subword_ids(WORDS, minn, maxn, bucket, nwords, as_list=True)
        assert [list(a) for a in as_list] == [ref_subwords(w, minn, maxn, bucket, nwords) for w in WORDS]
    single = embedrt.fasttext_subword_ids("naïve")
    assert list(single) == ref_subwords("naïve", 3, 6, 2_000_000, 0)
    assert _core.fnv1a_fasttext("é".encode()) == ref_fnv("é".encode())
    ids, offs = embedrt.fasttext_subword_ids([])
    assert ids.shape == (0,) and list(offs) == [0]


def test_fasttext_subwords_match_fasttext(tmp_path):
    fasttext = pytest.importorskip("fasttext")
    words = [w for w in WORDS if w and not w.isspace() and "\x7f" not in w and w != "</s>"]
    path = tmp_path / "corpus.txt"
    path.write_text((" ".join(words) + "\n") * 5, encoding="utf-8")
    for minn, maxn in [(2, 5), (3, 6), (1, 2)]:
        model = fasttext.train_unsupervised(str(path), minCount=1, minn=minn, maxn=maxn,
                                            bucket=1000, epoch=1, dim=4, thread=1, verbose=0)
        nwords = len(model.words)
        for w in words + ["oov", "日本", "é", "zzzzzzzzzz", "</s>"]:
            _, ref = model.get_subwords(w)
            ref = list(ref[1:] if model.get_word_id(w) >= 0 else ref)
            got = embedrt.fasttext_subword_ids(w, minn, maxn, 1000, nwords)
            assert list(got) == ref, (w, minn, maxn)


def test_fasttext_subwords_bad_input():
    with pytest.raises(TypeError):
        embedrt.fasttext_subword_ids([b"bytes"])
    with pytest.raises(TypeError):
        embedrt.fasttext_subword_ids(b"bytes")
    with pytest.raises(ValueError, match="bucket"):
        embedrt.fasttext_subword_ids(["a"], bucket=0)
    with pytest.raises(ValueError, match="bucket"):
        embedrt.fasttext_subword_ids(["a"], bucket=2**31)
    with pytest.raises(ValueError, match="minn"):
        embedrt.fasttext_subword_ids(["a"], minn=-1)
    with pytest.raises(ValueError, match="nwords"):
        embedrt.fasttext_subword_ids(["a"], nwords=-1)


# ------------------------------------------------------------------------------------------
# embedding_bag, QREmbed
# ------------------------------------------------------------------------------------------

@pytest.mark.isa
@pytest.mark.parametrize("dim", [1, 5, 8, 16, 17, 31, 32, 33, 64, 65, 100, 130])
def test_embedding_bag_matches_reference(isa, dim):
    rng = np.random.default_rng(dim)
    table = rng.standard_normal((60, dim)).astype(np.float32)
    ids = rng.integers(0, 60, size=40)
    offsets = np.array([0, 0, 3, 3, 10, 11, 25, 40])  # empty bags, including the last
    weights = rng.standard_normal(40).astype(np.float32)
    for mode in ("sum", "mean"):
        got = embedrt.embedding_bag(table, ids, offsets, mode=mode)
        assert got.tobytes() == ref_bag(table, ids, offsets, mode).tobytes()
    got = embedrt.embedding_bag(table, ids, offsets, weights=weights)
    assert got.tobytes() == ref_bag(table, ids, offsets, "sum", weights).tobytes()


@pytest.mark.isa
def test_embedding_bag_large_table_threaded(isa):
    rng = np.random.default_rng(1)
    table = rng.standard_normal((40_000, 64)).astype(np.float32)  # 10 MB: prefetching path
    ids = rng.integers(0, 40_000, size=30_000)
    offsets = np.sort(rng.integers(0, 30_000, size=3000))
    offsets[0] = 0
    got = embedrt.embedding_bag(table, ids, offsets)
    weights = rng.standard_normal(30_000).astype(np.float32)
    gotw = embedrt.embedding_bag(table, ids, offsets, weights=weights)
    with forced_isa("scalar"):
        ref = embedrt.embedding_bag(table, ids, offsets)
        refw = embedrt.embedding_bag(table, ids, offsets, weights=weights)
    assert got.tobytes() == ref.tobytes()
    assert gotw.tobytes() == refw.tobytes()
    ends = np.append(offsets[1:], len(ids))
    sums = np.stack([table[ids[s:e]].sum(0, dtype=np.float64) for s, e in zip(offsets[:50], ends[:50])])
    np.testing.assert_allclose(got[:50], sums, rtol=1e-4, atol=1e-4)


@pytest.mark.isa
@pytest.mark.parametrize("dim", [7, 20, 64, 100, 128, 130])
def test_embedding_bag_prefetched_rows_every_width(isa, dim):
    # tables over 4 MB take the prefetching paths (fixed-count row prefetches; whole-row
    # accumulators up to 128 floats, tiles beyond)
    rng = np.random.default_rng(dim)
    rows = (4_600_000 // (dim * 4)) + 1
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    ids = rng.integers(0, rows, size=6000)
    ids[-1] = rows - 1  # the last row, whose last line ends the table
    offsets = np.sort(rng.integers(0, 6000, size=400))
    offsets[0] = 0
    weights = rng.standard_normal(6000).astype(np.float32)
    for mode in ("sum", "mean"):
        got = embedrt.embedding_bag(table, ids, offsets, mode=mode)
        assert got.tobytes() == ref_bag(table, ids, offsets, mode).tobytes()
    got = embedrt.embedding_bag(table, ids, offsets, weights=weights)
    assert got.tobytes() == ref_bag(table, ids, offsets, "sum", weights).tobytes()


@contextlib.contextmanager
def forced_isa(level):
    before = _core.isa()
    _core.set_isa(level)
    try:
        yield
    finally:
        _core.set_isa(before)


@settings(max_examples=30, deadline=None)
@given(n_rows=st.integers(1, 20), dim=st.integers(1, 40),
       sizes=st.lists(st.integers(0, 6), min_size=0, max_size=8), mode=st.sampled_from(["sum", "mean"]),
       seed=st.integers(0, 2**16))
def test_embedding_bag_hypothesis(n_rows, dim, sizes, mode, seed):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n_rows, dim)).astype(np.float32)
    n = sum(sizes)
    ids = rng.integers(0, n_rows, size=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if sizes else np.zeros(0, np.int64)
    if not sizes:
        got = embedrt.embedding_bag(table, ids, offsets, mode=mode)
        assert got.shape == (0, dim)
        return
    got = embedrt.embedding_bag(table, ids, offsets, mode=mode)
    assert got.tobytes() == ref_bag(table, ids, offsets, mode).tobytes()


def test_embedding_bag_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    table = rng.standard_normal((500, 48)).astype(np.float32)
    ids = rng.integers(0, 500, size=1000)
    offsets = np.array([0, 0, 10, 500, 501, 1000])
    weights = rng.standard_normal(1000).astype(np.float32)
    for mode in ("sum", "mean"):
        ref = torch.nn.functional.embedding_bag(torch.from_numpy(ids), torch.from_numpy(table),
                                                torch.from_numpy(offsets), mode=mode).numpy()
        np.testing.assert_allclose(embedrt.embedding_bag(table, ids, offsets, mode), ref,
                                   rtol=1e-5, atol=1e-5)
    ref = torch.nn.functional.embedding_bag(torch.from_numpy(ids), torch.from_numpy(table),
                                            torch.from_numpy(offsets), mode="sum",
                                            per_sample_weights=torch.from_numpy(weights)).numpy()
    np.testing.assert_allclose(embedrt.embedding_bag(table, ids, offsets, weights=weights), ref,
                               rtol=1e-5, atol=1e-5)


def test_embedding_bag_forms():
    rng = np.random.default_rng(2)
    table = rng.standard_normal((10, 3)).astype(np.float32)
    ids2d = rng.integers(0, 10, size=(4, 3))
    got = embedrt.embedding_bag(table, ids2d)
    np.testing.assert_array_equal(got, ref_bag(table, ids2d.reshape(-1), [0, 3, 6, 9]))
    ids = ids2d.reshape(-1)
    for dtype in (np.int32, np.uint8, np.uint64, np.int16):
        assert embedrt.embedding_bag(table, ids.astype(dtype), [0, 3, 6, 9]).tobytes() == got.tobytes()
    assert embedrt.embedding_bag(table, list(ids), [0, 3, 6, 9, 12],
                                 include_last_offset=True).tobytes() == got.tobytes()
    # empty inputs
    assert embedrt.embedding_bag(table, np.zeros(0, np.int64), [0, 0]).tolist() == [[0.0] * 3] * 2
    assert embedrt.embedding_bag(table, np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0, 3)
    # float64 tables are converted; NaN propagates only into bags using the row
    t = table.astype(np.float64)
    t[1] = np.nan
    out = embedrt.embedding_bag(t, np.array([1, 2, 3]), [0, 1])
    assert np.isnan(out[0]).all() and not np.isnan(out[1]).any()


def test_embedding_bag_bad_input():
    table = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="outside"):
        embedrt.embedding_bag(table, np.array([1, 10]), [0])
    with pytest.raises(ValueError, match="outside"):
        embedrt.embedding_bag(table, np.array([1, -1]), [0])
    with pytest.raises(ValueError, match="out of range"):
        embedrt.embedding_bag(table, np.array([1, 2**64 - 1], np.uint64), [0])
    # large id arrays are checked in threaded chunks; the first bad id is named
    many = np.tile(np.arange(10), 30_000)
    for pos, bad in ((0, 10), (150_001, -3), (299_999, 11)):
        ids = many.copy()
        ids[pos] = bad
        ids[-1] = 10 if pos != len(ids) - 1 else ids[-1]
        with pytest.raises(ValueError, match=rf"ids\[{pos}\] = {bad} is outside"):
            embedrt.embedding_bag(table, ids, np.arange(0, len(ids), 7))
    with pytest.raises(TypeError):
        embedrt.embedding_bag(table, np.array([1.0, 2.0]), [0])
    with pytest.raises(TypeError):
        embedrt.embedding_bag(np.zeros((10, 4), np.int32), np.array([1]), [0])
    with pytest.raises(ValueError, match="offsets\\[0\\]"):
        embedrt.embedding_bag(table, np.array([1, 2]), [1])
    with pytest.raises(ValueError, match="non-decreasing"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0, 2, 1])
    with pytest.raises(ValueError, match="past the end"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0, 5])
    with pytest.raises(ValueError, match="include_last_offset"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0, 2], include_last_offset=True)
    with pytest.raises(ValueError, match="2-D"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="mode"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0], mode="max")
    with pytest.raises(ValueError, match="weights"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0], mode="mean",
                              weights=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="weights"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), [0], weights=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="no bags"):
        embedrt.embedding_bag(table, np.array([1, 2, 3]), np.zeros(0, np.int64))
    with pytest.raises(ValueError):
        embedrt.embedding_bag(np.zeros(4, np.float32), np.array([1]), [0])


@pytest.mark.parametrize("operation", ["mult", "add", "concat"])
def test_qr_embed(operation):
    qr = embedrt.QREmbed(1000, 8, operation=operation)
    assert qr.num_collisions == 32 and qr.q_table.shape[0] == 32
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=50)
    q, r = qr.q_table[ids // 32], qr.r_table[ids % 32]
    ref = {"mult": q * r, "add": q + r, "concat": np.concatenate([q, r], 1)}[operation]
    got = qr(ids)
    assert got.shape == (50, 8)
    np.testing.assert_array_equal(got, ref)
    offsets = np.array([0, 10, 10, 30])
    np.testing.assert_array_equal(qr(ids, offsets), ref_bag(ref, np.arange(50), offsets))
    np.testing.assert_array_equal(qr(ids, offsets, mode="mean"),
                                  ref_bag(ref, np.arange(50), offsets, "mean"))
    w = rng.standard_normal(50).astype(np.float32)
    np.testing.assert_array_equal(qr(ids, offsets, weights=w), ref_bag(ref, np.arange(50), offsets, "sum", w))
    assert qr(np.array([0, 999])).shape == (2, 8)
    assert qr(np.zeros(0, np.int64)).shape == (0, 8)
    assert qr(np.zeros(0, np.int64), [0, 0]).tolist() == [[0.0] * 8] * 2
    with pytest.raises(ValueError, match="outside"):
        qr(np.array([1000]))
    with pytest.raises(ValueError, match="outside"):
        qr(np.array([-1]))


def test_qr_embed_tables_and_errors():
    q = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = np.ones((4, 4), np.float32)
    qr = embedrt.QREmbed(10, 4, num_collisions=4, operation="add", tables=(q, r))
    np.testing.assert_array_equal(qr([9]), q[2:3] + 1)
    with pytest.raises(ValueError, match="tables"):
        embedrt.QREmbed(10, 4, num_collisions=5, tables=(q, r))
    with pytest.raises(ValueError, match="even"):
        embedrt.QREmbed(10, 5, operation="concat")
    with pytest.raises(ValueError, match="operation"):
        embedrt.QREmbed(10, 4, operation="xor")
    with pytest.raises(ValueError, match="offsets"):
        qr([1, 2], weights=np.ones(2, np.float32))
    with pytest.raises(TypeError):
        qr(np.array([1.5]))


# ------------------------------------------------------------------------------------------
# threads, raw byte hashing, degenerate shapes
# ------------------------------------------------------------------------------------------

def test_results_do_not_depend_on_threads_and_concurrent_calls():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    table = rng.standard_normal((3000, 48)).astype(np.float32)
    emb = embedrt.HashEmbed(48, 3000, 5, table)
    ids = rand_keys(50_000, 11)
    bag_ids = rng.integers(0, 3000, size=50_000)
    offsets = np.arange(0, 50_000, 7)
    before = embedrt.get_num_threads()
    try:
        embedrt.set_num_threads(1)
        ref_e, ref_b = emb(ids), embedrt.embedding_bag(table, bag_ids, offsets)
        embedrt.set_num_threads(2)
        assert emb(ids).tobytes() == ref_e.tobytes()
        assert embedrt.embedding_bag(table, bag_ids, offsets).tobytes() == ref_b.tobytes()
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda i: emb(ids) if i % 2 else
                                 embedrt.embedding_bag(table, bag_ids, offsets), range(8)))
        for i, out in enumerate(outs):
            assert out.tobytes() == (ref_e if i % 2 else ref_b).tobytes()
    finally:
        embedrt.set_num_threads(before)


def test_large_outputs_are_fresh_each_call():
    # outputs of 4 MiB and more come from a buffer cache; each call must fully overwrite them
    emb = embedrt.HashEmbed(64, 100, 3)
    ids = rand_keys(20_000, 4)
    first = emb(ids)
    ref = first.copy()
    del first
    other = emb(rand_keys(20_000, 5))
    again = emb(ids)
    assert again.tobytes() == ref.tobytes()
    assert not np.shares_memory(other, again)


def test_raw_byte_hash_and_offsets_checks():
    data = "héllo".encode() + b"ab"
    got = _core.murmurhash64a(data, np.array([0, 6, 8], np.int64), 1)
    assert list(got) == [ref_murmur64a("héllo".encode(), 1), ref_murmur64a(b"ab", 1)]
    for bad in ([1, 8], [0, 9], [0, 5, 4, 8], []):
        with pytest.raises(ValueError):
            _core.murmurhash64a(data, np.array(bad, np.int64), 1)


def test_degenerate_shapes():
    table = np.zeros((10, 0), np.float32)
    assert embedrt.embedding_bag(table, np.array([1, 2]), [0, 1]).shape == (2, 0)
    empty = np.zeros((0, 4), np.float32)
    assert embedrt.embedding_bag(empty, np.zeros(0, np.int64), [0]).shape == (1, 4)
    with pytest.raises(ValueError, match="outside"):
        embedrt.embedding_bag(empty, np.array([0]), [0])
    assert embedrt.murmurhash3_128([], 0).shape == (0, 4)
