"""Every ISA level this CPU runs, side by side: each kernel family's main job forced to each
level (EMBEDRT_ISA's names), in one process, one thread, the levels interleaved (best of N).

    python benchmarks/compare_levels.py [--quick]       (or: compare.py --only levels)

Rows: BinaryIndex.search (64 queries over 1M x 512-bit codes, k=10), sdc_topk (64 queries,
1M x 2-bit 512-dim codes), Int8Index.search (16 queries over 200k x 384), int8_matmul
(1024 x 384 x 1536, exact), HashEmbed forward, and the native int8 encoder on corpus texts
(when the shared model is present). Each cell: throughput, and in brackets the ratio to the
level below it in the table.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"


def levels() -> list:
    """The levels this CPU runs, highest first."""
    import embedrt._core as core

    order = ["avx512", "avx512-vnni", "avx512-skx", "avx2", "neon", "scalar"]
    before = core.isa()
    out = []
    try:
        for level in order:
            if level in core.compiled_isas() and core.set_isa(level) == level:
                out.append(level)
    finally:
        core.set_isa(before)
    return out


def _race(fns: dict, reps: int) -> dict:
    """Best time of each fn(level), the levels interleaved in each round."""
    import embedrt._core as core

    before = core.isa()
    best = {k: float("inf") for k in fns}
    try:
        for k, f in fns.items():  # warm-up
            core.set_isa(k)
            f()
        for _ in range(reps):
            for k, f in fns.items():
                core.set_isa(k)
                t = time.perf_counter()
                f()
                best[k] = min(best[k], time.perf_counter() - t)
    finally:
        core.set_isa(before)
    return best


def run(quick: bool = False) -> str:
    import embedrt

    lv = levels()
    rng = np.random.default_rng(0)
    reps = 2 if quick else 4
    rows = []
    before = embedrt.get_num_threads()
    embedrt.set_num_threads(1)
    try:
        n = 200_000 if quick else 1_000_000
        codes = rng.integers(0, 256, size=(n, 64), dtype=np.uint8)
        queries = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
        index = embedrt.BinaryIndex(512)
        index.add(codes)
        t = _race({k: (lambda: index.search(queries, 10)) for k in lv}, reps)
        rows.append(("BinaryIndex.search, Mcodes x queries / s", {k: n * 64 / t[k] / 1e6 for k in lv}))
        index = codes = None  # free the memory before the next row

        db = rng.integers(0, 256, size=(n, 2, 64), dtype=np.uint8)
        q = rng.integers(0, 256, size=(64, 2, 64), dtype=np.uint8)
        t = _race({k: (lambda: embedrt.sdc_topk(q, db, 10)) for k in lv}, reps)
        rows.append(("sdc_topk 2-bit, Mcodes x queries / s", {k: n * 64 / t[k] / 1e6 for k in lv}))
        db = None

        n8 = 50_000 if quick else 200_000
        ix = embedrt.Int8Index(384)
        ix.add(rng.standard_normal((n8, 384)).astype(np.float32))
        qf = rng.standard_normal((16, 384)).astype(np.float32)
        t = _race({k: (lambda: ix.search(qf, 10)) for k in lv}, reps)
        rows.append(("Int8Index.search, Mrows x queries / s", {k: n8 * 16 / t[k] / 1e6 for k in lv}))
        ix = None

        a = rng.integers(-127, 128, size=(1024, 384), dtype=np.int8)
        b = rng.integers(-127, 128, size=(1536, 384), dtype=np.int8)
        t = _race({k: (lambda: embedrt.int8_matmul(a, b)) for k in lv}, reps)
        rows.append(("int8_matmul 1024x384x1536, GMAC/s", {k: 1024 * 384 * 1536 / t[k] / 1e9 for k in lv}))

        he = embedrt.HashEmbed(64, 100_000, seed=1)
        ids = rng.integers(0, 2**63, size=200_000, dtype=np.uint64)
        t = _race({k: (lambda: he(ids)) for k in lv}, reps)
        rows.append(("HashEmbed forward (64 wide), M ids / s", {k: ids.size / t[k] / 1e6 for k in lv}))

        if (MODEL / "onnx" / "model.onnx").is_file() and CORPUS.is_file():
            texts = json.loads(CORPUS.read_text())[: 150 if quick else 600]
            enc = embedrt.Encoder(MODEL, backend="native")
            t = _race({k: (lambda: enc.encode(texts, batch_size=32)) for k in lv}, 1 if quick else 2)
            rows.append((f"native int8 encoder ({len(texts)} corpus texts), texts / s",
                         {k: len(texts) / t[k] for k in lv}))
    finally:
        embedrt.set_num_threads(before)

    head = "| job | " + " | ".join(lv) + " |"
    out = ["## ISA levels (one thread; in brackets: the ratio to the next lower level)", "",
           head, "|---|" + "---|" * len(lv)]
    for name, vals in rows:
        cells = []
        for i, k in enumerate(lv):
            below = lv[i + 1] if i + 1 < len(lv) else None
            r = f" ({vals[k] / vals[below]:.2f}x)" if below else ""
            cells.append(f"{vals[k]:.1f}{r}" if vals[k] >= 10 else f"{vals[k]:.3g}{r}")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "python"))
    print(run("--quick" in sys.argv))
