"""Timing for the benchmarks: interleaved best-of-N, thread pinning, cache eviction.

Every ``compare_*.py`` measures embedrt and its peer with :func:`interleaved` (the contenders
take turns, so a slow phase of a shared machine hits both) and keeps the best time;
:func:`best_of` is the same for one callable. :func:`threads` pins embedrt's pool (and FAISS's
OpenMP threads) for a block; :func:`evict_caches` gives every contender the same cold start.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Timing:
    """The best of several timings of one callable, per call: wall seconds, process CPU
    seconds and calling-thread CPU seconds (each its own minimum; on a shared machine the CPU
    time of a one-thread run is the steadier figure), and the last value it returned."""

    wall: float = float("inf")
    cpu: float = float("inf")
    thread_cpu: float = float("inf")
    out: Any = None


_SWEEP = None


def evict_caches() -> None:
    """Reads a 64 MiB buffer (more than the last-level cache): afterwards the caches hold only
    clean lines of it, whatever the previous call wrote or read."""
    global _SWEEP
    if _SWEEP is None:
        _SWEEP = np.ones(64 << 18, np.float32)
    _SWEEP.sum()


def interleaved(fns, rounds: int, *, runs: int = 1, calls: int = 1, cold: bool = False,
                keep: bool = True):
    """Best timings of each callable, the callables taking turns.

    fns: a dict ``{name: callable}`` (the result is a dict with the same keys) or a sequence
    of callables (the result is a list in the same order).
    rounds: turns; in each turn every callable is timed `runs` times back to back, each timing
    covering `calls` calls (the time per call is their mean).
    cold: :func:`evict_caches` before every timing (untimed), so that each contender starts
    from the same state instead of paying for the dirty lines the previous one left behind.
    keep: keep each callable's last return value (``Timing.out``); False drops every value at
    once, as a bare call would.
    Returns a :class:`Timing` per callable.
    """
    items = list(fns.items()) if isinstance(fns, dict) else list(enumerate(fns))
    best = {k: Timing() for k, _ in items}
    for _ in range(rounds):
        for k, fn in items:
            t = best[k]
            for _ in range(runs):
                if cold:
                    evict_caches()
                c0, h0 = time.process_time(), time.thread_time()
                t0 = time.perf_counter()
                if keep:
                    for _ in range(calls):
                        t.out = fn()
                else:
                    for _ in range(calls):
                        fn()
                wall = time.perf_counter() - t0
                h1, c1 = time.thread_time(), time.process_time()
                t.wall = min(t.wall, wall / calls)
                t.cpu = min(t.cpu, (c1 - c0) / calls)
                t.thread_cpu = min(t.thread_cpu, (h1 - h0) / calls)
    if isinstance(fns, dict):
        return best
    return [best[i] for i in range(len(items))]


def best_of(fn, rounds: int, *, calls: int = 1, cold: bool = False) -> float:
    """The best wall time per call of `fn` over `rounds` timings of `calls` calls each (the
    values it returns are dropped at once)."""
    return interleaved([fn], rounds, calls=calls, cold=cold, keep=False)[0].wall


@contextlib.contextmanager
def threads(n: int, faiss=None):
    """Runs the block with embedrt's pool at `n` threads (restored afterwards); with the faiss
    module given, also sets FAISS's OpenMP threads to `n` (left so)."""
    import embedrt

    before = embedrt.get_num_threads()
    embedrt.set_num_threads(n)
    if faiss is not None:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        embedrt.set_num_threads(before)
