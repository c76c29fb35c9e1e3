"""Threads and memory: shared Encoders under concurrent encode (with the pool size changing
underneath), and repeated work that must not grow the process.

Every result is compared with a single-threaded reference made before the threads start:
floats to 1e-6, integer kernels bit for bit.
"""
import gc
import json
import threading
import time

import numpy as np
import pytest

import embedrt

SECONDS = 6.0  # per stress test


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return float(line.split()[1]) / 1024.0
    pytest.skip("no /proc/self/status")


@pytest.fixture(scope="module")
def texts(reference_dir):
    return json.loads((reference_dir / "texts.json").read_text())[:48]


def _stress(workers, seconds=SECONDS):
    """Runs each worker(stop, rng) on its own thread until `seconds` pass; re-raises the first
    failure; returns how many calls each made."""
    stop = threading.Event()
    errors, counts = [], [0] * len(workers)

    def run(i, w):
        rng = np.random.default_rng(i)
        try:
            while not stop.is_set():
                w(rng)
                counts[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported in the main thread
            errors.append(e)
            stop.set()

    threads = [threading.Thread(target=run, args=(i, w), daemon=True) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return counts


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_shared_encoder_under_eight_threads(minilm_dir, texts, backend):
    enc = embedrt.Encoder(minilm_dir, backend=backend)
    before = embedrt.get_num_threads()
    embedrt.set_num_threads(1)
    try:
        want = enc.encode(texts, batch_size=8)
        want_bits = enc.encode(texts, precision="ubinary")
    finally:
        embedrt.set_num_threads(before)

    def encoder_worker(rng):
        pick = rng.choice(len(texts), size=int(rng.integers(1, 9)), replace=False)
        got = enc.encode([texts[i] for i in pick], batch_size=int(rng.integers(1, 5)))
        np.testing.assert_allclose(got, want[pick], rtol=0, atol=1e-6)

    def bits_worker(rng):
        pick = rng.choice(len(texts), size=4, replace=False)
        got = enc.encode([texts[i] for i in pick], precision="ubinary")
        # the packed signs of a vector within 1e-6 of the reference may differ only where a
        # component is within 1e-6 of zero
        diff = np.unpackbits(got ^ want_bits[pick], axis=1).astype(bool)
        near0 = np.abs(want[pick]) <= 1e-6
        assert not (diff[:, : near0.shape[1]] & ~near0).any()

    def pool_worker(rng):
        # the pool size changes while the others encode
        embedrt.set_num_threads(int(rng.integers(1, 4)))
        time.sleep(0.005)

    workers = [encoder_worker] * 6 + [bits_worker, pool_worker]
    try:
        counts = _stress(workers)
    finally:
        embedrt.set_num_threads(before)
    assert min(counts[:7]) > 0


def test_shared_index_search_while_encoding(minilm_dir, texts):
    """Encode, binary search and int8 search from 8 threads on shared objects."""
    enc = embedrt.Encoder(minilm_dir, backend="native")
    vecs = enc.encode(texts)
    bindex = embedrt.BinaryIndex(vecs.shape[1])
    bindex.add(embedrt.quantize(vecs, "ubinary"))
    iindex = embedrt.Int8Index(vecs.shape[1])
    iindex.add(vecs)
    q_bits = embedrt.quantize(vecs[:8], "ubinary")
    want_b = bindex.search(q_bits, 5)
    want_i = iindex.search(vecs[:8], 5)

    def binary_worker(rng):
        got = bindex.search(q_bits, 5)
        for g, w in zip(got, want_b):
            np.testing.assert_array_equal(g, w)

    def int8_worker(rng):
        got = iindex.search(vecs[:8], 5)
        for g, w in zip(got, want_i):
            np.testing.assert_array_equal(g, w)

    def encode_worker(rng):
        i = int(rng.integers(0, len(texts)))
        np.testing.assert_allclose(enc.encode([texts[i]]), vecs[i:i + 1], rtol=0, atol=1e-6)

    _stress([binary_worker] * 3 + [int8_worker] * 3 + [encode_worker] * 2, seconds=4.0)


@pytest.mark.parametrize("backend", ["native", "onnxruntime"])
def test_repeated_encoding_does_not_grow(minilm_dir, texts, backend):
    enc = embedrt.Encoder(minilm_dir, backend=backend)
    corpus = texts[:16] if backend == "onnxruntime" else texts * 2  # onnxruntime pads each batch
    for _ in range(3):  # warm-up: pools, arenas and caches reach their size
        enc.encode(corpus)
    gc.collect()
    start = _rss_mb()
    for _ in range(10):
        enc.encode(corpus)
    gc.collect()
    grown = _rss_mb() - start
    assert grown < 25, f"RSS grew by {grown:.1f} MB over 10 passes of {len(corpus)} texts ({backend})"


def test_loading_and_dropping_encoders_does_not_grow(minilm_dir):
    # the converted engine is kept after the first load, so each load maps it again
    for _ in range(3):
        embedrt.Encoder(minilm_dir, backend="native").encode(["warm"])
    gc.collect()
    start = _rss_mb()
    for _ in range(50):
        e = embedrt.Encoder(minilm_dir, backend="native")
        e.encode(["a short text"])
        del e
    gc.collect()
    grown = _rss_mb() - start
    assert grown < 40, f"RSS grew by {grown:.1f} MB over 50 loads"
