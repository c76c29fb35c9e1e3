"""Runs the atheris harnesses (tests/fuzz/fuzz_*.py) for a bounded time each and exits non-zero
on a finding: an exception a loader does not document, a crash, a hang past the per-input
timeout or memory past the RSS limit.

    python tests/fuzz/run.py --seconds 60                 # every harness, 60 s each
    python tests/fuzz/run.py --harness sdc_index --runs 100000
    python tests/fuzz/fuzz_sdc_index.py CRASH_FILE        # re-run one input (libFuzzer's way)

Each harness starts from its seed corpus (tests/fuzz/corpus/<harness>/, written by
make_seeds.py); the inputs it finds go to a scratch folder, not into the repository. The input
behind a finding is kept under --artifacts (printed).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def harnesses() -> list:
    return sorted(p.stem[len("fuzz_"):] for p in HERE.glob("fuzz_*.py"))


def run_one(name: str, args, artifacts: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"embedrt-fuzz-{name}-") as scratch:
        work = Path(scratch) / "corpus"
        work.mkdir()
        cmd = [sys.executable, str(HERE / f"fuzz_{name}.py"), str(work), str(HERE / "corpus" / name),
               f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_limit_mb}",
               f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1"]
        if args.seconds:
            cmd.append(f"-max_total_time={args.seconds}")
        if args.runs:
            cmd.append(f"-runs={args.runs}")
        if args.seed:
            cmd.append(f"-seed={args.seed}")
        env = dict(os.environ, EMBEDRT_FUZZ_TMP=scratch, RUST_BACKTRACE="0",
                   EMBEDRT_NUM_THREADS=os.environ.get("EMBEDRT_NUM_THREADS", "1"))
        # outer bound: the harness's time, its start (imports, the seed corpus) and a hang's report
        limit = (args.seconds or 3600 * 6) + 120 + 2 * args.timeout
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", timeout=limit)
            out, rc = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode("utf-8", "replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            out += f"\n(the harness ran past {limit} s and was stopped)"
            rc = -1
        elapsed = time.monotonic() - t0
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", out) or re.search(r"Done (\d+) runs", out)
    execs = int(m.group(1)) if m else 0
    m = re.search(r"stat::average_exec_per_sec:\s*(\d+)", out)
    rate = int(m.group(1)) if m else 0
    return {"name": name, "rc": rc, "execs": execs, "rate": rate, "elapsed": elapsed, "log": out}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--harness", action="append", choices=harnesses(), help="run only this one (repeatable)")
    p.add_argument("--seconds", type=int, default=60, help="time per harness (0: no limit; use --runs)")
    p.add_argument("--runs", type=int, default=0, help="stop a harness after this many executions")
    p.add_argument("--seed", type=int, default=0, help="libFuzzer's random seed (0: a new one each run)")
    p.add_argument("--timeout", type=int, default=10, help="seconds one input may take (a hang past it is a finding)")
    p.add_argument("--rss-limit-mb", type=int, default=2048)
    p.add_argument("--artifacts", type=Path, default=None, help="where the inputs behind findings are kept")
    args = p.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris): no fuzzing", file=sys.stderr)
        return 3
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="embedrt-fuzz-findings-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    found = []
    for name in args.harness or harnesses():
        r = run_one(name, args, artifacts)
        ok = r["rc"] == 0
        print(f"{name:18s} {'ok     ' if ok else 'FINDING'} {r['execs']:>9d} executions "
              f"{r['rate']:>6d}/s {r['elapsed']:6.0f} s", flush=True)
        if not ok:
            found.append(name)
            tail = "\n".join(r["log"].splitlines()[-60:])
            print(f"---- {name}: exit {r['rc']}; the input is under {artifacts}\n{tail}\n----", flush=True)
    if found:
        print(f"fuzzing: findings in {', '.join(found)}")
        return 1
    print("fuzzing: no findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
