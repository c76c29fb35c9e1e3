#!/usr/bin/env bash
# Smoke test of a cross-built aarch64 wheel on an x86-64 machine: Debian's arm64 CPython run
# under qemu-aarch64 (user-mode emulation), numpy, pytest and hypothesis from PyPI's aarch64
# wheels, then, with the wheel unpacked on the path:
#   - `import embedrt` and `embedrt info` (the best level must be neon);
#   - the kernel test files (bit codes and Hamming, pack_bits, int8 matmul and scan, SDC,
#     top-k merge, the encoder's float operations, the indexes, the file format), at the
#     NEON level, and their ISA-equivalence part again at the scalar level;
#   - the native engine's forward pass from converted files (int8 and fp32) of a tiny BERT,
#     on the same token ids as this machine's x86 build: the embeddings must agree.
#
#   tools/check_wheel_aarch64.sh dist/embedrt-*-manylinux_*_aarch64.whl CACHE_DIR [PYTHON]
#
# CACHE_DIR keeps the arm64 sysroot (Debian bookworm's python3.11 and the libraries it needs,
# fetched with a private apt configuration: the system's apt state is not touched) and the
# aarch64 Python packages, so later runs skip the downloads. PYTHON (default python3) is the
# x86 interpreter with embedrt (and its onnx / onnxruntime dependencies) installed: it
# converts the tiny model and computes the reference embeddings. Exits 0 with a "skipped"
# message when qemu-aarch64, apt-get or the packages cannot be had. KERNEL_TESTS names other
# test files of tests/ (empty: none); under emulation the default ones take a while.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 WHEEL CACHE_DIR [PYTHON]" >&2; exit 2; }
wheel=$(realpath "$1")
mkdir -p "$2"
cache=$(realpath "$2")
PY=${3:-python3}
SUITE=bookworm
PYVER=3.11

skip() { echo "aarch64 wheel check skipped: $*"; exit 0; }

case "$(basename "$wheel")" in
    *-cp${PYVER/./}-*aarch64.whl) ;;
    *) echo "$wheel: not a cp${PYVER/./} aarch64 wheel" >&2; exit 2 ;;
esac
QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
[ -n "$QEMU" ] || skip "no qemu-aarch64 (Debian package qemu-user)"
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || skip "no apt-get / dpkg-deb"

# ---- the arm64 sysroot: python3.11 and libstdc++ (numpy's) with their dependencies
sysroot=$cache/sysroot
if [ ! -e "$cache/.sysroot-done" ]; then
    apt_root=$cache/apt
    rm -rf "$apt_root" "$sysroot"
    mkdir -p "$apt_root"/etc/apt/{sources.list.d,preferences.d,apt.conf.d} \
        "$apt_root"/var/lib/apt/lists/partial "$apt_root"/var/cache/apt/archives/partial \
        "$apt_root"/var/lib/dpkg "$sysroot"
    : > "$apt_root/var/lib/dpkg/status"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    echo "deb [arch=arm64 signed-by=$keyring] http://deb.debian.org/debian $SUITE main" \
        > "$apt_root/etc/apt/sources.list"
    apt_opts=(-o "Dir=$apt_root" -o "Dir::State::status=$apt_root/var/lib/dpkg/status"
              -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1)
    echo "== fetching Debian $SUITE arm64 python$PYVER into $sysroot"
    timeout 600 apt-get "${apt_opts[@]}" -qq update >/dev/null 2>&1 || skip "apt-get update (arm64) failed"
    timeout 900 apt-get "${apt_opts[@]}" -qq -y --download-only --no-install-recommends install \
        "python$PYVER" libstdc++6 >/dev/null 2>&1 || skip "the arm64 python$PYVER packages cannot be downloaded"
    for deb in "$apt_root"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$sysroot"; done
    rm -rf "$apt_root/var/cache/apt/archives" "$apt_root/var/lib/apt/lists"
    touch "$cache/.sysroot-done"
fi
pybin=$sysroot/usr/bin/python$PYVER
[ -x "$pybin" ] || { echo "$pybin is missing (remove $cache to fetch again)" >&2; exit 1; }
arm() { PYTHONNOUSERSITE=1 PYTHONPATH="$site:$pkgs" "$QEMU" -L "$sysroot" "$pybin" "$@"; }

# ---- aarch64 wheels of numpy, pytest and hypothesis (and their dependencies), unpacked
pkgs=$cache/site
if [ ! -e "$cache/.site-done" ]; then
    rm -rf "$pkgs" "$cache/wheels"
    echo "== fetching aarch64 wheels of numpy, pytest, hypothesis"
    timeout 600 "$PY" -m pip download -q -d "$cache/wheels" --only-binary=:all: --implementation cp \
        --python-version "$PYVER" --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        numpy pytest hypothesis >/dev/null 2>&1 || skip "the aarch64 wheels cannot be downloaded"
    mkdir -p "$pkgs"
    for w in "$cache"/wheels/*.whl; do "$PY" -m zipfile -e "$w" "$pkgs"; done
    rm -rf "$cache/wheels"
    # bytecode once (Debian's packages ship none, and qemu makes compiling slow)
    site=$pkgs
    PYTHONDONTWRITEBYTECODE="" arm -m compileall -q -j 2 -x '/(test|tests|idlelib|tkinter|lib2to3)/' \
        "$sysroot/usr/lib/python$PYVER" "$pkgs" >/dev/null 2>&1 || true
    touch "$cache/.site-done"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site=$work/site
mkdir -p "$site"
"$PY" -m zipfile -e "$wheel" "$site"
export EMBEDRT_CACHE_DIR="$work/cache" EMBEDRT_NUM_THREADS=2
cd "$work"   # not the checkout: embedrt comes from the wheel

echo "== import embedrt, embedrt info (under $(basename "$QEMU"), Debian's arm64 python$PYVER)"
arm -c "import embedrt, platform; assert embedrt.__file__.startswith('$site'), embedrt.__file__; print(platform.machine(), embedrt.__file__)"
arm -c "import sys; from embedrt.cli import main; sys.exit(main(['info']))" | tee info.txt
arm -c "import embedrt._core as c; assert c.best_isa() == 'neon', c.best_isa(); print('best level:', c.best_isa())"

echo "== the kernel tests at the NEON level, the ISA-equivalence ones at scalar"
kernel_tests=${KERNEL_TESTS-test_bits.py test_int8_gemm.py test_sdc.py test_topk_merge.py test_encoder_ops.py
              test_binary_index.py test_int8_index.py test_index_sdc.py test_fileformat.py}
for level in best scalar; do
    [ -n "$kernel_tests" ] || { echo "(KERNEL_TESTS is empty: no test files)"; break; }
    marker=$([ "$level" = best ] || echo "-m isa")
    # shellcheck disable=SC2086
    EMBEDRT_ISA=$([ "$level" = best ] || echo "$level") arm -m pytest -q -p no:cacheprovider -rfE \
        -W ignore::UserWarning $marker $(for t in $kernel_tests; do echo "$repo/tests/$t"; done) \
        | grep -E "^(FAILED|ERROR)|[0-9]+ (passed|failed)"
done

echo "== the native engine: converted tiny BERT, x86 (this build) against aarch64 (the wheel)"
model=$repo/tests/data/export_corpus/tiny-bert
forward='
import sys, numpy as np
from embedrt.encoder import native
out = {}
for precision in ("int8", "fp32"):
    cfg, arrays, _ = native._read_engine(sys.argv[1] + "/tiny." + precision + ".embedrt", precision)
    backend = native.NativeBackend.from_arrays(cfg, arrays, precision)
    rng = np.random.default_rng(5)
    ids = [rng.integers(0, cfg["vocab"], size=n) for n in (1, 3, 8, 17, 40, cfg["max_position"])]
    out[precision] = backend.embed(ids, None, "mean")
np.savez(sys.argv[2], **out)
'
for precision in int8 fp32; do
    "$PY" - "$model" "$work/tiny.$precision.embedrt" "$precision" <<'PY' >/dev/null
import sys
import embedrt
embedrt.convert(sys.argv[1], out=sys.argv[2], precision=sys.argv[3])
PY
done
"$PY" -c "$forward" "$work" "$work/x86.npz"
arm -c "$forward" "$work" "$work/arm.npz"
EMBEDRT_ISA=scalar arm -c "$forward" "$work" "$work/arm-scalar.npz"
"$PY" - "$work" <<'PY'
import sys
import numpy as np
w = sys.argv[1]
x86, arm, scalar = (np.load(f"{w}/{n}.npz") for n in ("x86", "arm", "arm-scalar"))
for precision in ("int8", "fp32"):
    a, b, s = x86[precision], arm[precision], scalar[precision]
    assert a.shape == b.shape == s.shape and np.isfinite(b).all(), (a.shape, b.shape, s.shape)
    for name, other in (("aarch64 neon", b), ("aarch64 scalar", s)):
        cos = (a * other).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(other, axis=1)
        err = np.abs(a - other).max() / np.abs(a).max()
        print(f"{precision}: {name:14s} vs x86: min cosine {cos.min():.7f}, max |diff| / max |x86| {err:.2e}")
        assert cos.min() > 0.9999 and err < 1e-2, (precision, name, cos.min(), err)
PY
echo "aarch64 wheel check: ok"
