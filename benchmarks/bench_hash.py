"""pytest-benchmark suite for the hash embedding kernels, with their peers where installed.

    PYTHONPATH=python python -m pytest benchmarks/bench_hash.py --benchmark-group-by=group

Groups: murmur (thinc NumpyOps.hash), hashembed (thinc HashEmbed, numpy backend),
strings (spaCy hash_string), fasttext (fasttext get_subwords), bag (torch embedding_bag on a
table that does not fit in cache), qr.
"""
from __future__ import annotations

import numpy as np
import pytest

import embedrt
from _timing import threads

N_IDS = 200_000


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, 2**64 - 1, size=N_IDS, dtype=np.uint64, endpoint=True)


@pytest.fixture(scope="module")
def thinc_layer():
    thinc = pytest.importorskip("thinc.api")
    with thinc.use_ops("numpy"):
        layer = thinc.HashEmbed(96, 5000, seed=8)
    layer.initialize()
    return layer


@pytest.mark.benchmark(group="murmur")
def test_murmur_embedrt(benchmark, ids):
    benchmark(embedrt.murmurhash3_128, ids, 8)


@pytest.mark.benchmark(group="murmur")
def test_murmur_thinc(benchmark, ids):
    thinc = pytest.importorskip("thinc.api")
    ops = thinc.NumpyOps()
    benchmark(ops.hash, ids, 8)


@pytest.mark.benchmark(group="hashembed")
def test_hashembed_embedrt(benchmark, ids, thinc_layer):
    emb = embedrt.HashEmbed.from_thinc(thinc_layer)
    benchmark(emb, ids)


@pytest.mark.benchmark(group="hashembed")
def test_hashembed_embedrt_one_thread(benchmark, ids, thinc_layer):
    emb = embedrt.HashEmbed.from_thinc(thinc_layer)
    with threads(1):
        benchmark(emb, ids)


@pytest.mark.benchmark(group="hashembed")
def test_hashembed_thinc(benchmark, ids, thinc_layer):
    benchmark(thinc_layer.predict, ids)


@pytest.mark.benchmark(group="hashembed")
def test_hashembed_thinc_raw_ops(benchmark, ids, thinc_layer):
    # thinc's forward pass on its ops directly (no Model call around it)
    ops, table = thinc_layer.ops, thinc_layer.get_param("E")
    seed, rows = thinc_layer.attrs["seed"], table.shape[0]
    benchmark(lambda: ops.gather_add(table, ops.hash(ids, seed) % rows))


WORDS = [f"w{i}x{(i * 7919) % 100_003}" + "é" * (i % 3) for i in range(100_000)]


@pytest.mark.benchmark(group="strings")
def test_hash_string_embedrt(benchmark):
    benchmark(embedrt.hash_string, WORDS)


@pytest.mark.benchmark(group="strings")
def test_hash_string_spacy(benchmark):
    strings = pytest.importorskip("spacy.strings")
    h = strings.hash_string
    benchmark(lambda: [h(w) for w in WORDS])


@pytest.mark.benchmark(group="strings")
def test_multi_hash_embed_embedrt(benchmark):
    mhe = embedrt.MultiHashEmbed(96)
    tokens = WORDS[:20_000]
    benchmark(mhe, tokens)


@pytest.fixture(scope="module")
def ft_model(tmp_path_factory):
    fasttext = pytest.importorskip("fasttext")
    path = tmp_path_factory.mktemp("ft") / "corpus.txt"
    path.write_text(" ".join(WORDS[:2000]) + "\n", encoding="utf-8")
    return fasttext.train_unsupervised(str(path), minCount=1, minn=3, maxn=6, bucket=100_000,
                                       epoch=1, dim=4, thread=1, verbose=0)


@pytest.mark.benchmark(group="fasttext")
def test_fasttext_embedrt(benchmark, ft_model):
    words = WORDS[2000:22_000]
    benchmark(embedrt.fasttext_subword_ids, words, 3, 6, 100_000, len(ft_model.words))


@pytest.mark.benchmark(group="fasttext")
def test_fasttext_peer(benchmark, ft_model):
    words = WORDS[2000:22_000]
    benchmark(lambda: [ft_model.get_subwords(w)[1] for w in words])


@pytest.fixture(scope="module")
def bag_data():
    rng = np.random.default_rng(1)
    table = rng.standard_normal((2_000_000, 64), dtype=np.float32)  # 512 MB
    ids = rng.integers(0, table.shape[0], size=1_000_000)
    offsets = np.arange(0, ids.shape[0], 20)
    return table, ids, offsets


@pytest.mark.benchmark(group="bag")
def test_bag_embedrt(benchmark, bag_data):
    table, ids, offsets = bag_data
    benchmark(embedrt.embedding_bag, table, ids, offsets)


@pytest.mark.benchmark(group="bag")
def test_bag_torch(benchmark, bag_data):
    torch = pytest.importorskip("torch")
    table, ids, offsets = bag_data
    t, i, o = torch.from_numpy(table), torch.from_numpy(ids), torch.from_numpy(offsets)
    benchmark(lambda: torch.nn.functional.embedding_bag(i, t, o, mode="sum"))


@pytest.mark.benchmark(group="bag")
def test_bag_numpy_read(benchmark, bag_data):
    """Memory-read reference: one sequential pass over the whole table."""
    flat = bag_data[0].reshape(-1)
    benchmark(lambda: flat.sum(dtype=np.float32))


@pytest.mark.benchmark(group="qr")
def test_qr_embedrt(benchmark):
    qr = embedrt.QREmbed(10_000_000, 64)
    ids = np.random.default_rng(2).integers(0, 10_000_000, size=200_000)
    offsets = np.arange(0, 200_000, 20)
    benchmark(qr, ids, offsets)
