"""Side-by-side comparison of embedrt with its peers, in one process, as a Markdown table.

    python benchmarks/compare.py                  # every section
    python benchmarks/compare.py --only bits      # one section (bits, int8, sdc, hash, encoder, native, levels)
    python benchmarks/compare.py --quick          # smaller sizes, for a smoke run

Each section lives in benchmarks/compare_<section>.py and exposes run(quick) -> Markdown.
Ratios are measured in the same run, one thread unless a row says otherwise.
"""
from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

SECTIONS = ["bits", "int8", "sdc", "hash", "encoder", "native", "levels"]


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))

    import embedrt

    info = embedrt.cpu_info()
    print(f"# embedrt {embedrt.__version__} comparison\n")
    print(f"- CPU: {_cpu_model()}, ISA level {info['isa']} (best {info['best_isa']}), "
          f"{os.cpu_count()} cores; Python {platform.python_version()}")
    print("- kernels: " + "; ".join(f"{fam} {v}" for fam, v in info["kernels"].items()) + "\n")
    for name in args.only.split(","):
        name = name.strip()
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
        try:
            module = importlib.import_module(f"compare_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"compare_{name}":
                continue
            raise
        t0 = time.perf_counter()
        print(module.run(args.quick))
        print(f"\n_(section {name}: {time.perf_counter() - t0:.0f} s)_\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
