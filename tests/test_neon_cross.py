"""The aarch64 (NEON) kernels, checked on any machine that has an aarch64 cross compiler and
user-mode emulator.

tests/cross/neon_check.cpp is built statically for aarch64 together with the sources of the
kernel families that have NEON versions (bit codes, SDC, int8 GEMM and scan, hash embeddings,
embedding bags, the encoder's float operations) and run under qemu-aarch64; it compares every
NEON path with the scalar one (and a plain reference) on random and edge-case inputs, exactly
for the integer kernels, the hash embeddings and the embedding bags, within a float tolerance
for the encoder's, and exits nonzero on any mismatch. A second test checks that the
rest of the C++ core (all but the Python bindings and the x86 files) compiles for aarch64.

The cross compiler and emulator are looked up on PATH (`aarch64-linux-gnu-g++`,
`qemu-aarch64`); EMBEDRT_CROSS_CXX / EMBEDRT_QEMU_AARCH64 name other ones.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CSRC = REPO / "csrc"
DRIVER = REPO / "tests" / "cross" / "neon_check.cpp"

# The families whose NEON files the driver exercises: <family>.cpp, _scalar.cpp, _neon.cpp.
FAMILIES = ["hamming", "pack_bits", "sdc", "int8_gemm", "int8_scan", "hash_embed",
            "embedding_bag", "encoder_ops"]

CXX = os.environ.get("EMBEDRT_CROSS_CXX", "aarch64-linux-gnu-g++")
QEMU = os.environ.get("EMBEDRT_QEMU_AARCH64", "qemu-aarch64")

# The same flags CMakeLists.txt gives an aarch64 build (NEON files get their -march).
COMMON_FLAGS = ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-pthread",
                f"-I{CSRC}", "-DEMBEDRT_HAVE_NEON=1"]
NEON_FLAGS = ["-march=armv8.2-a+dotprod"]


# The portable files (all but <family>_<isa>.cpp) and the NEON ones are not contracted to FMA
# (CMakeLists.txt).
PORTABLE_FLAGS = ["-ffp-contract=off"]


def _flags(src: Path) -> list[str]:
    return COMMON_FLAGS + (NEON_FLAGS if src.stem.endswith("_neon") else []) + PORTABLE_FLAGS


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip("aarch64 cross check needs " + " and ".join(missing) + " on PATH "
                    "(e.g. Debian packages g++-aarch64-linux-gnu and qemu-user)")


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _compile_all(jobs: list[tuple[Path, list[str]]]) -> None:
    """Runs the compile commands two at a time; fails with the compiler output of the first error."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: (job[0], _run(job[1], 300)), jobs))
    for src, res in results:
        if res.returncode != 0:
            pytest.fail(f"aarch64 compile of {src.relative_to(REPO)} failed:\n{res.stderr[-4000:]}")


def _check_no_shared_symbols(objects: list[Path]) -> None:
    """ISA files must not define weak (inline / template) symbols that other files share: the
    linker could keep the NEON copy for everyone."""
    nm = CXX[:-3] + "nm" if CXX.endswith("g++") else "nm"
    if shutil.which(nm) is None:
        return
    for obj in objects:
        res = _run([nm, "-C", str(obj)], 60)
        assert res.returncode == 0, res.stderr
        weak = [line for line in res.stdout.splitlines() if line[17:19] in ("W ", "V ", "u ")]
        assert not weak, f"{obj.stem} defines shared weak symbols:\n" + "\n".join(weak)


def test_neon_kernels_match_scalar_under_qemu(tmp_path):
    _require(CXX, QEMU)
    sources = [CSRC / "dispatch.cpp", CSRC / "parallel.cpp", DRIVER]
    for fam in FAMILIES:
        sources += [CSRC / "kernels" / f"{fam}{suffix}.cpp" for suffix in ("", "_scalar", "_neon")]
    jobs, objects = [], []
    for src in sources:
        obj = tmp_path / (src.parent.name + "_" + src.stem + ".o")
        objects.append(obj)
        jobs.append((src, [CXX, *_flags(src), "-c", str(src), "-o", str(obj)]))
    _compile_all(jobs)
    _check_no_shared_symbols([o for o in objects if o.stem.endswith("_neon")])
    exe = tmp_path / "neon_check"
    link = _run([CXX, "-static", "-pthread", *map(str, objects), "-o", str(exe)], 300)
    assert link.returncode == 0, f"aarch64 link failed:\n{link.stderr[-4000:]}"

    # "max": every feature the emulator implements (ASIMD and the dot product included)
    res = _run([QEMU, "-cpu", "max", str(exe)], 300)
    out = res.stdout + res.stderr
    if res.returncode == 2:
        pytest.skip("the emulated CPU does not offer the neon level: " + out.strip())
    assert res.returncode == 0, f"NEON and scalar results differ (exit {res.returncode}):\n{out[-6000:]}"
    assert "0 mismatches" in out, out
    print(out.strip())  # the number of cases compared (shown with pytest -s)


def test_core_sources_compile_for_aarch64():
    """Every C++ source of the core but the bindings and the x86 files compiles for aarch64."""
    _require(CXX)
    sources = sorted(CSRC.glob("*.cpp")) + sorted((CSRC / "encoder").glob("*.cpp"))
    sources += [p for p in sorted((CSRC / "kernels").glob("*.cpp"))
                if not p.stem.endswith(("_avx2", "_avx512", "_avx512vnni", "_avx512icl"))]
    _compile_all([(src, [CXX, *_flags(src), "-fsyntax-only", str(src)]) for src in sources])
