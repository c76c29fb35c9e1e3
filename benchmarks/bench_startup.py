"""Start-up cost of the native engine: the load gate on a first load, and a cached start.

    EMBEDRT_SHARED=../shared python benchmarks/bench_startup.py [--pairs 10]

Each figure comes from new processes, each with an empty user cache (EMBEDRT_CACHE_DIR), so
every first load converts the model:

- the gate's cost: the wall time of ``Encoder(model, backend="native")`` minus that of the
  same load with ``verify=False``, measured in pairs (one of each, alternating), as the median
  (and the range) of the paired differences, for the fp32 graph and for the dynamic-int8 file;
- a cached start: ``embedrt encode "hello world"`` in a new process once the first one has
  kept the converted engine (wall time and peak RSS), and the first one itself.

The imports of numpy, onnx, onnxruntime and tokenizers are made before the clock starts in
the paired loads (they are the same with and without the gate).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"

_LOAD = r"""
import sys, time
sys.path.insert(0, {python!r})
import numpy, onnx, onnxruntime, tokenizers, embedrt
onnx_file = sys.argv[2] or None
t = time.perf_counter()
e = embedrt.Encoder({model!r}, backend="native", onnx_file=onnx_file, verify=sys.argv[1] == "1")
print(time.perf_counter() - t)
"""


def _run(args, env, timeout=600):
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return out.stdout


def paired_gate_cost(onnx_file: str, pairs: int) -> dict:
    script = _LOAD.format(python=str(REPO / "python"), model=str(MODEL))
    with_gate, without, diffs = [], [], []
    for _ in range(pairs):
        pair = []
        for verify in ("1", "0"):
            with tempfile.TemporaryDirectory() as cache:
                env = dict(os.environ, EMBEDRT_CACHE_DIR=cache)
                pair.append(float(_run([sys.executable, "-c", script, verify, onnx_file], env)))
        with_gate.append(pair[0])
        without.append(pair[1])
        diffs.append(pair[0] - pair[1])
    return {"verify": statistics.median(with_gate), "no_verify": statistics.median(without),
            "gate_median": statistics.median(diffs), "gate_min": min(diffs), "gate_max": max(diffs)}


_ENCODE = r"""
import sys, time, runpy
sys.path.insert(0, {python!r})
sys.argv = ["embedrt", "encode", "--model", {model!r}, "hello world"]
t = time.perf_counter()
try:
    from embedrt.cli import main
    main()
except SystemExit:
    pass
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
print(time.perf_counter() - t, float(hwm[0].split()[1]) / 1024.0, file=sys.stderr)
"""


def encode_starts(runs: int) -> dict:
    script = _ENCODE.format(python=str(REPO / "python"), model=str(MODEL))
    firsts, seconds = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, EMBEDRT_CACHE_DIR=cache)
            for target in (firsts, seconds, seconds):
                t = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                                     text=True, timeout=600)
                wall = time.perf_counter() - t
                if out.returncode != 0:
                    raise RuntimeError(out.stderr)
                rss = float(out.stderr.strip().splitlines()[-1].split()[1])
                target.append((wall, rss))
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return {"first_wall": med(firsts, 0), "first_rss_mb": med(firsts, 1),
            "cached_wall": med(seconds, 0), "cached_rss_mb": med(seconds, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3, help="first + cached encode runs")
    args = ap.parse_args()
    if not (MODEL / "onnx" / "model.onnx").is_file():
        print(f"skipped: {MODEL} is not present")
        return
    sys.path.insert(0, str(REPO / "python"))
    import embedrt

    info = embedrt.cpu_info()
    print(f"# start-up ({info.get('isa')}; {pairs_note(args.pairs)})")
    rows = {}
    for name, f in (("fp32 graph (onnx/model.onnx)", ""),
                    ("dynamic int8 graph (onnx/model_qint8_avx512_vnni.onnx)",
                     "onnx/model_qint8_avx512_vnni.onnx")):
        if f and not (MODEL / f).is_file():
            continue
        r = paired_gate_cost(f, args.pairs)
        rows[name] = r
        print(f"{name}: first load {r['verify']:.3f} s with the gate, {r['no_verify']:.3f} s "
              f"without; gate cost median {r['gate_median'] * 1000:.0f} ms "
              f"(pairs from {r['gate_min'] * 1000:.0f} to {r['gate_max'] * 1000:.0f} ms)")
    s = encode_starts(args.runs)
    print(f'embedrt encode "hello world": first process {s["first_wall"]:.2f} s, '
          f'{s["first_rss_mb"]:.0f} MB; with the engine kept {s["cached_wall"]:.2f} s, '
          f'{s["cached_rss_mb"]:.0f} MB peak RSS')
    print(json.dumps({"gate": rows, "encode": s}, indent=1))


def pairs_note(n: int) -> str:
    return f"{n} paired first loads per graph, each in a new process with an empty cache"


if __name__ == "__main__":
    main()
