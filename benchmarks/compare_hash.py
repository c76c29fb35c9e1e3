"""Hash embeddings beside their peers: thinc (HashEmbed, NumpyOps.hash), spaCy (string
hashes), fastText (subword ids) and PyTorch (embedding_bag), in one process.

    python benchmarks/compare.py --only hash [--quick]
    python benchmarks/compare_hash.py [--quick]

Timings are best-of-N with the contenders interleaved (the machine may be shared). Peers run
on one thread (thinc's NumpyOps and spaCy are single-threaded; torch is set to 1 thread for
its column and to all threads for the "all threads" column).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from _timing import best_of, interleaved


def _fmt_rate(x: float, unit: str) -> str:
    return f"{x:,.2f} {unit}" if x < 100 else f"{x:,.0f} {unit}"


def run(quick: bool = False) -> str:
    import embedrt

    threads = embedrt.get_num_threads()
    all_threads = os.cpu_count() or threads
    repeat = 3 if quick else 7
    rows = []  # (workload, peer name, peer rate, embedrt 1 thread, embedrt all threads, unit)

    def measure(name, peer_name, peer_fn, ours_fn, count, unit, peer_all_fn=None, cold=False):
        fns = {"peer": peer_fn}
        embedrt.set_num_threads(1)
        fns["one"] = ours_fn
        t1 = interleaved(fns, repeat, cold=cold, keep=False)
        res1 = {k: t.wall for k, t in t1.items()}
        cpu_ratio = t1["peer"].thread_cpu / max(t1["one"].thread_cpu, 1e-9)
        embedrt.set_num_threads(all_threads)
        fns_all = {"all": ours_fn}
        if peer_all_fn is not None:
            fns_all["peer_all"] = peer_all_fn
        res2 = {k: t.wall for k, t in interleaved(fns_all, repeat, cold=cold, keep=False).items()}
        rows.append((name, peer_name, count / res1["peer"], count / res1["one"],
                     count / res2["all"], unit,
                     count / res2["peer_all"] if "peer_all" in res2 else None, cpu_ratio))

    rng = np.random.default_rng(0)
    lines = ["## Hash embeddings", ""]
    notes = []

    # --- thinc ---------------------------------------------------------------------------
    try:
        from thinc.api import HashEmbed as ThincHashEmbed
        from thinc.api import NumpyOps
    except ImportError:
        ThincHashEmbed = None
    n = 50_000 if quick else 200_000
    ids = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    if ThincHashEmbed is not None:
        ops = NumpyOps()
        measure(f"murmurhash3_128, {n:,} uint64 keys", "thinc NumpyOps.hash",
                lambda: ops.hash(ids, 8), lambda: embedrt.murmurhash3_128(ids, 8), n / 1e6, "M keys/s")
        from thinc.api import use_ops

        with use_ops("numpy"):
            layer = ThincHashEmbed(96, 5000, seed=8)
        layer.initialize()
        emb = embedrt.HashEmbed.from_thinc(layer)
        assert emb(ids[:1000]).tobytes() == np.asarray(layer.predict(ids[:1000])).tobytes()
        measure(f"HashEmbed forward nO=96 nV=5000, {n:,} ids", "thinc HashEmbed.predict (NumpyOps)",
                lambda: layer.predict(ids), lambda: emb(ids), n / 1e6, "M ids/s", cold=True)
        he_row = rows[-1]
        # the same forward pass as thinc's ops without the Model call around it
        E, nV, seed = layer.get_param("E"), layer.get_param("E").shape[0], layer.attrs["seed"]
        raw_ops = lambda: layer.ops.gather_add(E, layer.ops.hash(ids, seed) % nV)  # noqa: E731
        assert raw_ops().tobytes() == emb(ids).tobytes()
        measure(f"HashEmbed forward nO=96 nV=5000, {n:,} ids", "thinc NumpyOps hash + gather_add",
                raw_ops, lambda: emb(ids), n / 1e6, "M ids/s", cold=True)
        out_mb = n * 96 * 4 / 1e6
        notes.append(f"HashEmbed writes {out_mb:,.0f} MB of float32 output per call: embedrt's "
                     f"{he_row[3]:.1f} M ids/s (1 thread) is {he_row[3] * 384 / 1e3:.1f} GB/s "
                     f"of output (compare with the numpy read rate above).")

    # --- spaCy ---------------------------------------------------------------------------
    words = [f"w{i}x{(i * 7919) % 100_003}" + "é" * (i % 3) for i in range(20_000 if quick else 100_000)]
    try:
        from spacy.strings import hash_string as spacy_hash
    except ImportError:
        spacy_hash = None
    if spacy_hash is not None:
        assert int(embedrt.hash_string(words[:100])[7]) == spacy_hash(words[7])
        measure(f"hash_string, {len(words):,} strings", "spaCy hash_string (loop)",
                lambda: [spacy_hash(w) for w in words], lambda: embedrt.hash_string(words),
                len(words) / 1e6, "M strings/s")
        try:
            import spacy

            vocab = spacy.blank("en").vocab
            mhe = embedrt.MultiHashEmbed(96, rows=[5000, 1000, 2500, 2500])
            tokens = [words[int(i)] for i in rng.integers(0, 2000, size=len(words))]

            def spacy_features():
                # the lexeme attributes spaCy's FeatureExtractor reads (lexemes created once)
                return [(lx.norm, lx.prefix, lx.suffix, lx.shape) for lx in (vocab[t] for t in tokens)]

            spacy_features()
            measure(f"MultiHashEmbed features, {len(tokens):,} tokens (2,000 distinct)",
                    "spaCy vocab lexeme attrs (cached)", spacy_features,
                    lambda: mhe.features(tokens), len(tokens) / 1e6, "M tokens/s")
        except Exception:  # spaCy present but not usable: the string row is enough
            pass

    # --- fastText ------------------------------------------------------------------------
    try:
        import fasttext
    except ImportError:
        fasttext = None
    if fasttext is not None:
        ft_words = words[: 5_000 if quick else 20_000]
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "corpus.txt"
            path.write_text(" ".join(ft_words[:2000]) + "\n", encoding="utf-8")
            model = fasttext.train_unsupervised(str(path), minCount=1, minn=3, maxn=6, bucket=100_000,
                                                epoch=1, dim=4, thread=1, verbose=0)
        nwords = len(model.words)
        oov = ft_words[2000:]

        def ft_peer():
            return [model.get_subwords(w)[1] for w in oov]

        ours = embedrt.fasttext_subword_ids(oov, 3, 6, 100_000, nwords, as_list=True)
        assert all(list(a) == list(b) for a, b in zip(ours[:200], ft_peer()[:200]))
        measure(f"fastText subword ids, {len(oov):,} OOV words", "fasttext get_subwords (loop)",
                ft_peer, lambda: embedrt.fasttext_subword_ids(oov, 3, 6, 100_000, nwords),
                len(oov) / 1e6, "M words/s")

    # --- embedding_bag -------------------------------------------------------------------
    n_rows = 500_000 if quick else 2_000_000
    dim = 64
    table = rng.standard_normal((n_rows, dim), dtype=np.float32)
    n_ids = 200_000 if quick else 1_000_000
    bag_ids = rng.integers(0, n_rows, size=n_ids)
    offsets = np.arange(0, n_ids, 20)
    gb = n_ids * dim * 4 / 1e9
    flat = table.reshape(-1)
    read = best_of(lambda: flat.sum(dtype=np.float32), repeat)
    read_gbs = table.nbytes / 1e9 / read
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        tt, ti, to = torch.from_numpy(table), torch.from_numpy(bag_ids), torch.from_numpy(offsets)
        ref = torch.nn.functional.embedding_bag(ti[:1000], tt, to[:50], mode="sum").numpy()
        np.testing.assert_allclose(embedrt.embedding_bag(table, bag_ids[:1000], offsets[:50]), ref,
                                   rtol=1e-5, atol=1e-5)
        torch_threads = torch.get_num_threads()

        def torch_one():
            torch.set_num_threads(1)
            torch.nn.functional.embedding_bag(ti, tt, to, mode="sum")

        def torch_all():
            torch.set_num_threads(all_threads)
            torch.nn.functional.embedding_bag(ti, tt, to, mode="sum")

        measure(f"embedding_bag sum, {n_rows:,} x {dim} table ({table.nbytes / 2**20:,.0f} MiB), "
                f"{n_ids:,} random ids, bags of 20", "torch embedding_bag", torch_one,
                lambda: embedrt.embedding_bag(table, bag_ids, offsets), gb, "GB/s", torch_all,
                cold=True)
        torch.set_num_threads(torch_threads)
    else:
        embedrt.set_num_threads(1)
        one = best_of(lambda: embedrt.embedding_bag(table, bag_ids, offsets), repeat)
        rows.append((f"embedding_bag sum, {n_rows:,} x {dim} table", "(torch not installed)",
                     float("nan"), gb / one, float("nan"), "GB/s", None, float("nan")))
    embedrt.set_num_threads(threads)
    bag_note = (f"numpy sequential read of the same table (`table.sum()`, one thread), same run: "
                f"{read_gbs:.2f} GB/s; embedding_bag GB/s count the rows gathered "
                f"(ids x {dim} x 4 bytes).")

    lines.append(f"| workload | peer | peer | embedrt 1 thread | ratio | CPU-time ratio | "
                 f"embedrt {all_threads} threads | ratio |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, peer, p, one, allt, unit, peer_all, cpu_ratio in rows:
        ratio_all = allt / (peer_all if peer_all else p)
        vs = f" (torch {all_threads}t: {_fmt_rate(peer_all, unit)})" if peer_all else ""
        lines.append(f"| {name} | {peer} | {_fmt_rate(p, unit)} | {_fmt_rate(one, unit)} | "
                     f"{one / p:.1f}x | {cpu_ratio:.1f}x | {_fmt_rate(allt, unit)}{vs} | {ratio_all:.1f}x |")
    lines.append("")
    lines.append(f"- {bag_note}")
    for note in notes:
        lines.append(f"- {note}")
    lines.append("- HashEmbed and embedding_bag rows evict the caches before every timed call (a "
                 "64 MiB read, untimed), for every contender: each starts with the same clean "
                 "caches instead of writing back the output the previous contender left dirty.")
    lines.append("- HashEmbed and hash outputs are checked bit-identical to thinc in the same run; "
                 "embedding_bag is checked against torch (allclose).")
    lines.append("- Ratios divide rates (wall time, best of the interleaved runs); the 'all threads' "
                 "ratio compares with the peer's one-thread rate except for torch, which is also "
                 "run on all threads. The CPU-time ratio divides the calling thread's CPU time of "
                 "the one-thread runs: it holds when the machine is shared and wall times are not.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
    print(run("--quick" in sys.argv))
