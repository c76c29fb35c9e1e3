"""Multi-bit binary codes (SDC) against FAISS 4-bit fast scan, and recall on real embeddings.

    python benchmarks/compare_sdc.py [--quick]

Speed: one thread, random 2-bit codes of 512 dimensions (128 bytes a code), 64 queries, k=10,
against FAISS IndexPQFastScan(512, 256, 4, METRIC_INNER_PRODUCT) (also 128 bytes a code),
timed interleaved in one process, best of N: sdc_topk on plain code arrays, SDCIndex.search
(its codes kept in the scan's layout), one query at a time, and, when the CPU has more than
AVX2 and FAISS dispatches at run time, embedrt forced to avx2 against FAISS at AVX2. The
section names the FAISS SIMD code that ran; for an AVX2-only run of every row:

    EMBEDRT_ISA=avx2 FAISS_OPT_LEVEL=avx2 python benchmarks/compare.py --only sdc,bits
Recall: recall@10 against exact float inner products on the stdlib docstring corpus
(MiniLM embeddings), for sign binarization, uniform levels and the learned rotation.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from _timing import best_of, interleaved
from compare_bits import both_at_avx2, faiss_level, match_faiss_level


def speed(quick: bool) -> str:
    import embedrt

    n = 100_000 if quick else 1_000_000
    d, bits, m, k = 512, 2, 64, 10
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, size=(n, bits, d // 8), dtype=np.uint8)
    q = rng.integers(0, 256, size=(m, bits, d // 8), dtype=np.uint8)

    rows = []
    before = embedrt.get_num_threads()
    embedrt.set_num_threads(1)
    try:
        ours = lambda: embedrt.sdc_topk(q, db, k)  # noqa: E731
        ours()
        try:
            import faiss
        except ImportError:
            faiss = None
        if faiss is not None:
            faiss.omp_set_num_threads(1)
            match_faiss_level(faiss)
            index = faiss.IndexPQFastScan(d, 256, 4, faiss.METRIC_INNER_PRODUCT)
            index.train(rng.standard_normal((20_000, d)).astype(np.float32))
            # random PQ codes, decoded and added (the index stores their codes again)
            for s in range(0, n, 100_000):
                c = rng.integers(0, 256, size=(min(100_000, n - s), index.sa_code_size()), dtype=np.uint8)
                index.add(index.sa_decode(c))
            fq = rng.standard_normal((m, d)).astype(np.float32)
            theirs = lambda: index.search(fq, k)  # noqa: E731
            theirs()
            idx = embedrt.SDCIndex(d, bits)
            idx.binarizer.fit(rng.standard_normal((4096, d)).astype(np.float32))
            idx.add_codes(db)
            batch = lambda: idx.search(fq, k)  # noqa: E731
            batch()  # builds the search layout
            t_ours, t_idx, t_theirs = (t.wall for t in interleaved([ours, batch, theirs], 3 if quick else 5,
                                                                  keep=False))
            rows.append(f"| embedrt.sdc_topk (2-bit, 128 B) | {t_ours / m * 1e3:.3f} | {t_theirs / t_ours:.2f}x |")
            rows.append(f"| embedrt SDCIndex.search, 64 queries | {t_idx / m * 1e3:.3f} | {t_theirs / t_idx:.2f}x |")
            rows.append(f"| faiss IndexPQFastScan(512, 256, 4) (128 B) | {t_theirs / m * 1e3:.3f} | 1.00x |")
            with both_at_avx2(faiss) as forced:
                if forced:
                    ours(), batch(), theirs()  # the avx2 layout of the index is built here
                    a_ours, a_idx, a_theirs = (t.wall for t in interleaved([ours, batch, theirs],
                                                                           3 if quick else 5, keep=False))
                    lv = faiss_level(faiss)
                    rows.append(f"| embedrt.sdc_topk at avx2 | {a_ours / m * 1e3:.3f} | {a_theirs / a_ours:.2f}x |")
                    rows.append(f"| embedrt SDCIndex.search at avx2, 64 queries | {a_idx / m * 1e3:.3f} | "
                                f"{a_theirs / a_idx:.2f}x |")
                    rows.append(f"| faiss IndexPQFastScan at {lv} | {a_theirs / m * 1e3:.3f} | 1.00x |")
            # one query at a time: SDCIndex (float query encoded, packed codes kept) vs FAISS
            one_ours = lambda: idx.search(fq[:1], k)  # noqa: E731
            one_theirs = lambda: index.search(fq[:1], k)  # noqa: E731
            one_ours()
            o_ours, o_theirs = (t.wall for t in interleaved([one_ours, one_theirs], 5 if quick else 10, runs=2,
                                                            keep=False))
            rows.append(f"| embedrt SDCIndex.search, one query at a time | {o_ours * 1e3:.3f} | "
                        f"{o_theirs / o_ours:.2f}x |")
            rows.append(f"| faiss IndexPQFastScan, one query at a time | {o_theirs * 1e3:.3f} | 1.00x |")
        else:
            t_ours = best_of(ours, 3)
            rows.append(f"| embedrt.sdc_topk (2-bit, 128 B) | {t_ours / m * 1e3:.3f} | (faiss not installed) |")
    finally:
        embedrt.set_num_threads(before)
    peer = f", FAISS SIMD {faiss_level(faiss)}" if faiss is not None else ""
    head = (f"### SDC top-k speed: {n:,} codes of {d} dims, {bits} bits, {m} queries (and one), k={k}, one thread, "
            f"ISA {embedrt.cpu_info()['isa']} ({embedrt.cpu_info()['kernels']['sdc']}){peer}\n\n"
            f"| method | ms / query | speed-up vs faiss |\n|---|---|---|")
    return head + "\n" + "\n".join(rows)


def _corpus_path():
    env = os.environ.get("EMBEDRT_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"
    return shared / "fixtures" / "corpus" / "stdlib_docstrings.minilm.npy"


def recall(quick: bool) -> str:
    from embedrt.sdc import ResidualBinarizer, sdc_topk

    path = _corpus_path()
    if not path.is_file():
        return "### SDC recall\n\n(corpus fixture not present)"
    X = np.load(path).astype(np.float32)
    Q = X[:300]
    truth = np.argsort(-(Q @ X.T), axis=1, kind="stable")[:, :10]
    lines = ["### SDC recall@10 (stdlib docstrings, MiniLM, 3,558 x 384; 300 queries; exact float "
             "inner-product top-10 as truth)", "",
             "| bits | bytes / vector | uniform levels | + learned rotation |", "|---|---|---|---|"]
    for bits in (1, 2, 3, 4):
        cells = []
        for rotate in (False, True):
            b = ResidualBinarizer(bits, rotate=rotate).fit(X)
            c = b.encode(X)
            _, ids = sdc_topk(c[:300], c, 10, dim=b.dim)
            cells.append(np.mean([len(set(a) & set(t)) / 10 for a, t in zip(ids, truth)]))
        lines.append(f"| {bits}{' (sign)' if bits == 1 else ''} | {bits * 48} | {cells[0]:.3f} | {cells[1]:.3f} |")
    return "\n".join(lines)


def run(quick: bool) -> str:
    return speed(quick) + "\n\n" + recall(quick)


if __name__ == "__main__":
    print(run("--quick" in sys.argv[1:]))
