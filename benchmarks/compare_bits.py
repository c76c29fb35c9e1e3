"""Bit codes: embedrt vs FAISS (IndexBinaryFlat) and vs memory bandwidth, one process.

    python benchmarks/compare.py --only bits [--quick]

Rows (one thread unless stated; wall-clock best of N, embedrt and the peer interleaved):

- batched search: BinaryIndex.search, 64 queries x 1,000,000 random 512-bit codes, k=10,
  against faiss.IndexBinaryFlat on the same codes; distances are checked to be equal.
- streaming search: one query against 8,000,000 x 512-bit codes (512 MB), as a share of the
  single-thread read bandwidth of a numpy reduction over the same buffer (the fastest of
  ``sum``, ``max`` and ``bitwise_or.reduce`` on its uint64 view).
- hamming: all pairs of 128 x 2048 codes of 512 bits (in cache, output preallocated), in Gbit-pairs/s, against an
  assumed VPOPCNTQ peak (2 x 512 bits per cycle at the nominal clock the OS reports).
- thread scaling: the batched search on 2 threads vs 1.
- at avx2: the batched search with embedrt forced to its avx2 kernels and FAISS to its AVX2
  code (a dynamic-dispatch FAISS build: SIMDConfig), when the CPU has more than AVX2.

The section names the FAISS SIMD code that ran. For an AVX2-only comparison of every row:

    EMBEDRT_ISA=avx2 FAISS_OPT_LEVEL=avx2 python benchmarks/compare.py --only sdc,bits

(FAISS_OPT_LEVEL picks the AVX2 module of a FAISS wheel built per level; for a
dynamic-dispatch build, FAISS_SIMD_LEVEL=AVX2 or, as done here when FAISS_OPT_LEVEL=avx2 is
set, SIMDConfig.set_level.)
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

import embedrt
from _timing import best_of, interleaved


def _nominal_ghz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000.0
    except OSError:
        pass
    return None


def faiss_level(faiss) -> str:
    """The FAISS SIMD code that runs: the level of a dynamic-dispatch build, else the
    swigfaiss module that was loaded."""
    cfg = getattr(faiss, "SIMDConfig", None)
    if cfg is not None and hasattr(cfg, "get_level_name"):
        kind = "dynamic dispatch" if cfg.has_dynamic_dispatch() else "static build"
        return f"{cfg.get_level_name()} ({kind})"
    mods = sorted(m for m in sys.modules if m.startswith(("faiss._swigfaiss", "faiss.swigfaiss")))
    return ", ".join(mods) or "unknown"


def match_faiss_level(faiss) -> None:
    """FAISS_OPT_LEVEL=avx2 with a dynamic-dispatch FAISS build (one module for every level, so
    the variable picks nothing): set its SIMD level to AVX2, as the variable means."""
    cfg = getattr(faiss, "SIMDConfig", None)
    if os.environ.get("FAISS_OPT_LEVEL", "").lower() == "avx2" and cfg is not None \
            and hasattr(cfg, "has_dynamic_dispatch") and cfg.has_dynamic_dispatch():
        cfg.set_level(faiss.SIMDLevel_AVX2)


@contextlib.contextmanager
def both_at_avx2(faiss):
    """Runs the block with embedrt forced to avx2 and a dynamic-dispatch FAISS at AVX2 (both
    restored afterwards); yields False (and forces nothing) where that is not possible: embedrt
    already at avx2 or below, or a FAISS whose level cannot be set at run time."""
    import embedrt._core as core

    cfg = getattr(faiss, "SIMDConfig", None) if faiss is not None else None
    ok = (cfg is not None and hasattr(cfg, "has_dynamic_dispatch") and cfg.has_dynamic_dispatch()
          and core.isa() in ("avx512", "avx512-vnni", "avx512-skx"))
    if not ok:
        yield False
        return
    isa_before, level_before = core.isa(), cfg.get_level()
    core.set_isa("avx2")
    cfg.set_level(faiss.SIMDLevel_AVX2)
    try:
        yield True
    finally:
        core.set_isa(isa_before)
        cfg.set_level(level_before)


def run(quick: bool = False) -> str:
    rng = np.random.default_rng(0)
    threads_before = embedrt.get_num_threads()
    rows = []
    notes = []
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a [bench] extra
        faiss = None
        notes.append("faiss is not installed: FAISS rows are skipped.")

    try:
        embedrt.set_num_threads(1)
        if faiss is not None:
            faiss.omp_set_num_threads(1)
            match_faiss_level(faiss)

        # -- batched search ------------------------------------------------------------
        n = 100_000 if quick else 1_000_000
        codes = rng.integers(0, 256, (n, 64), dtype=np.uint8)
        queries = rng.integers(0, 256, (64, 64), dtype=np.uint8)
        index = embedrt.BinaryIndex(512)
        index.add(codes)
        fns = [lambda: index.search(queries, 10)]
        if faiss is not None:
            fidx = faiss.IndexBinaryFlat(512)
            fidx.add(codes)
            fns.append(lambda: fidx.search(queries, 10))
        timings = interleaved(fns, 3 if quick else 7)
        (t_e, *t_f), (res_e, *res_f) = [t.wall for t in timings], [t.out for t in timings]
        if faiss is not None:
            c_e, c_f = timings[0].cpu, timings[1].cpu
            equal = np.array_equal(res_e[0], res_f[0][0])
            same_ids = float(np.mean(res_e[1] == res_f[0][1]))
            rows.append((f"batched search, 64 q x {n:,} x 512 bit, k=10",
                         f"{t_e * 1e3:.1f} ms ({t_e / 64 * 1e6:.0f} us/q); CPU {c_e * 1e3:.1f} ms",
                         f"FAISS IndexBinaryFlat: {t_f[0] * 1e3:.1f} ms ({t_f[0] / 64 * 1e6:.0f} us/q); "
                         f"CPU {c_f * 1e3:.1f} ms",
                         f"**{t_f[0] / t_e:.2f}x** faster (CPU time: {c_f / c_e:.2f}x); distances equal: "
                         f"{equal}, ids equal: {same_ids:.1%}"))
        else:
            rows.append((f"batched search, 64 q x {n:,} x 512 bit, k=10", f"{t_e * 1e3:.1f} ms", "-", ""))
        with both_at_avx2(faiss) as forced:
            if forced:
                timings = interleaved(fns, 3 if quick else 7, keep=False)
                a2, f2 = timings[0].wall, timings[1].wall
                rows.append((f"same, embedrt at avx2 vs FAISS at {faiss_level(faiss)}",
                             f"{a2 * 1e3:.1f} ms ({a2 / 64 * 1e6:.0f} us/q); CPU {timings[0].cpu * 1e3:.1f} ms",
                             f"FAISS IndexBinaryFlat: {f2 * 1e3:.1f} ms; CPU {timings[1].cpu * 1e3:.1f} ms",
                             f"**{f2 / a2:.2f}x** faster (CPU time: {timings[1].cpu / timings[0].cpu:.2f}x)"))

        # -- thread scaling (same data): alternate 1 and 2 threads, time only the search ----
        reps = 3 if quick else 7
        t1 = t2 = float("inf")
        r1 = r2 = None
        busy = []  # process CPU time / wall time of the 2-thread runs: cores actually obtained
        for _ in range(reps):
            # a resize starts new worker threads: one untimed call first, so that thread
            # start-up and their first allocations are not what is measured
            embedrt.set_num_threads(1)
            index.search(queries, 10)
            one = interleaved([lambda: index.search(queries, 10)], 2)[0]
            t1, r1 = min(t1, one.wall), one.out
            embedrt.set_num_threads(2)
            index.search(queries, 10)
            c0, w0 = time.process_time(), time.perf_counter()
            two = interleaved([lambda: index.search(queries, 10)], 2)[0]
            busy.append((time.process_time() - c0) / (time.perf_counter() - w0))
            t2, r2 = min(t2, two.wall), two.out
        embedrt.set_num_threads(1)
        same = np.array_equal(r1[0], r2[0]) and np.array_equal(r1[1], r2[1])
        rows.append(("batched search, 2 threads vs 1", f"{t2 * 1e3:.1f} ms (2 thr)", f"{t1 * 1e3:.1f} ms (1 thr)",
                     f"**{t1 / t2:.2f}x** speed-up; results identical: {same}; cores obtained while "
                     f"running on 2 threads: {max(busy):.2f} (shared machine)"))
        del index, codes
        if faiss is not None:
            del fidx

        # -- streaming search vs memory bandwidth ---------------------------------------
        n = 1_000_000 if quick else 8_000_000
        big = rng.integers(0, 256, (n, 64), dtype=np.uint8)
        words = big.view(np.uint64)
        q1 = rng.integers(0, 256, (1, 64), dtype=np.uint8)
        bindex = embedrt.BinaryIndex(512)
        bindex.add(big)
        stored = bindex.codes  # the index's own buffer: measure bandwidth over the same bytes
        stored_words = stored.view(np.uint64)
        nbytes = stored.nbytes
        # The bandwidth reference is the fastest of three single-pass numpy reductions over
        # the same bytes (numpy's integer reductions are vectorized but not all equally so).
        readers = {"sum": lambda: stored_words.sum(), "max": lambda: stored_words.max(),
                   "bitwise_or": lambda: np.bitwise_or.reduce(stored_words)}
        fns = list(readers.values()) + [lambda: bindex.search(q1, 10)]
        timings = interleaved(fns, 3 if quick else 7)
        times, cpus = [t.wall for t in timings], [t.cpu for t in timings]
        t_s = times[-1]
        best_reader = min(range(len(readers)), key=lambda i: times[i])
        t_sum = times[best_reader]
        bw_sum, bw_s = nbytes / t_sum / 1e9, nbytes / t_s / 1e9
        c_s, c_sum = cpus[-1], min(cpus[:-1])
        rows.append((f"1 query x {n:,} x 512 bit ({nbytes / 1e6:.0f} MB), k=10",
                     f"{t_s * 1e3:.1f} ms = {bw_s:.1f} GB/s (CPU time: {nbytes / c_s / 1e9:.1f} GB/s vs "
                     f"{nbytes / c_sum / 1e9:.1f} GB/s)",
                     f"numpy uint64 {list(readers)[best_reader]} (fastest of sum/max/or): "
                     f"{t_sum * 1e3:.1f} ms = {bw_sum:.1f} GB/s",
                     f"**{bw_s / bw_sum:.0%}** of the read bandwidth"))
        embedrt.set_num_threads(2)
        bindex.search(q1, 10)  # untimed: worker start-up
        t_s2 = best_of(lambda: bindex.search(q1, 10), 3 if quick else 5)
        embedrt.set_num_threads(1)
        rows.append(("same, 2 threads", f"{t_s2 * 1e3:.1f} ms = {nbytes / t_s2 / 1e9:.1f} GB/s", "-",
                     f"{t_s / t_s2:.2f}x vs 1 thread"))
        del bindex, big, words, stored, stored_words

        # -- hamming all pairs, in cache ------------------------------------------------------
        a = rng.integers(0, 256, (128, 64), dtype=np.uint8)
        b = rng.integers(0, 256, (2048, 64), dtype=np.uint8)
        out = np.empty((128, 2048), dtype=np.uint32)  # 1 MB: stays in L2
        t_h = best_of(lambda: embedrt.hamming(a, b, out=out), 30 if quick else 100)
        rate = 128 * 2048 * 512 / t_h / 1e9
        ghz = _nominal_ghz()
        peak = f"{rate / (2 * 512 * ghz):.0%} of 2 x VPOPCNTQ zmm/cycle at {ghz:.2f} GHz nominal" if ghz else "-"
        rows.append(("hamming 128 x 2048 x 512 bit (all pairs, out= preallocated)",
                     f"{t_h * 1e6:.0f} us = {rate:.0f} Gbit-pairs/s", "-", peak))
        # the same product by FAISS's pairwise Hamming routine, where available
        if faiss is not None and hasattr(faiss, "hammings"):
            dis = np.empty((128, 2048), dtype=np.int32)
            fa, fb = faiss.swig_ptr(a), faiss.swig_ptr(b)
            fd = faiss.swig_ptr(dis)
            t_fh = best_of(lambda: faiss.hammings(fa, fb, 128, 2048, 64, fd), 30 if quick else 100)
            same = np.array_equal(dis, embedrt.hamming(a, b).astype(np.int32))
            rows.append(("same, FAISS hammings()", f"{t_h * 1e6:.0f} us",
                         f"{t_fh * 1e6:.0f} us = {128 * 2048 * 512 / t_fh / 1e9:.0f} Gbit-pairs/s",
                         f"**{t_fh / t_h:.2f}x** faster; equal: {same}"))
    finally:
        embedrt.set_num_threads(threads_before)

    peer = f"FAISS {faiss.__version__} SIMD {faiss_level(faiss)}; " if faiss is not None else ""
    out = ["## bits: binary codes (Hamming)", "",
           f"ISA level {embedrt.cpu_info()['isa']} ({embedrt.cpu_info()['kernels']['hamming']}), {peer}"
           f"{os.cpu_count()} cores, load average "
           f"{os.getloadavg()[0]:.1f} at the end; wall-clock best of N, interleaved (CPU: best process CPU time).", "",
           "| case | embedrt | peer / reference | ratio |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    print(run("--quick" in sys.argv))
