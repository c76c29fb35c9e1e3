import os
import subprocess
import sys
import threading

import pytest

import embedrt
from conftest import isa_levels


def test_cpu_info_fields():
    info = embedrt.cpu_info()
    assert info["isa"] in {"scalar", "avx2", "avx512-skx", "avx512-vnni", "avx512", "neon"}
    assert isinstance(info["features"], list)
    assert info["num_threads"] >= 1
    assert info["isa"] in info["compiled_isas"]


def test_threads_roundtrip():
    before = embedrt.get_num_threads()
    try:
        embedrt.set_num_threads(1)
        assert embedrt.get_num_threads() == 1
        embedrt.set_num_threads(3)
        assert embedrt.get_num_threads() == 3
        assert embedrt.cpu_info()["num_threads"] == 3
    finally:
        embedrt.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1])
def test_threads_reject_nonpositive(bad):
    with pytest.raises(ValueError, match="num_threads"):
        embedrt.set_num_threads(bad)


def test_threads_reject_non_int():
    with pytest.raises(TypeError):
        embedrt.set_num_threads(2.0)


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full.pop("EMBEDRT_ISA", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


def test_env_forces_lower_level():
    for level in isa_levels():
        r = _run("import embedrt; print(embedrt.cpu_info()['isa'])", EMBEDRT_ISA=level)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == level


def test_env_asking_too_much_warns_and_falls_back():
    import embedrt._core as core

    best = core.best_isa()
    too_high = {"scalar": "avx2", "avx2": "avx512-skx", "avx512-skx": "avx512-vnni",
                "avx512-vnni": "avx512", "neon": "avx2"}.get(best)
    if too_high is None:
        pytest.skip("this CPU already runs the highest level")
    r = _run("import warnings; warnings.simplefilter('always'); import embedrt; "
             "print(embedrt.cpu_info()['isa'])", EMBEDRT_ISA=too_high)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == best
    assert "not supported by this CPU" in r.stderr


def test_env_unknown_level_warns():
    r = _run("import embedrt; print(embedrt.cpu_info()['isa'])", EMBEDRT_ISA="sse9")
    assert r.returncode == 0
    assert "sse9" in r.stderr


def test_env_threads():
    r = _run("import embedrt; print(embedrt.get_num_threads())", EMBEDRT_NUM_THREADS="3")
    assert r.stdout.strip() == "3"


def test_set_isa_cannot_raise_level():
    import embedrt._core as core

    before = core.isa()
    try:
        assert core.set_isa("scalar") == "scalar"
        assert core.set_isa("avx512") == core.best_isa() or core.best_isa() == "avx512"
    finally:
        core.set_isa(before)
    with pytest.raises(ValueError):
        core.set_isa("fast")


def test_set_num_threads_concurrently():
    errors = []

    def work():
        try:
            for n in (1, 2, 3, 2):
                embedrt.set_num_threads(n)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    before = embedrt.get_num_threads()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    embedrt.set_num_threads(before)
    assert not errors


def test_every_level_names_its_variants():
    """Each level this CPU runs can be forced by name, and cpu_info() says per family which
    variant runs there."""
    import embedrt
    import embedrt._core as core

    before = core.isa()
    try:
        for level in isa_levels():
            assert core.set_isa(level) == level
            info = embedrt.cpu_info()
            assert info["isa"] == level
            assert set(info["kernels"]) >= {"int8_gemm", "int8_scan", "hamming", "sdc", "encoder_ops"}
            assert all(v.startswith(level + ": ") for v in info["kernels"].values())
    finally:
        core.set_isa(before)


def test_level_names_parse_with_either_spelling():
    import embedrt._core as core

    before = core.isa()
    try:
        if "avx512-skx" in isa_levels():
            assert core.set_isa("avx512_skx") == "avx512-skx"
            assert core.set_isa("avx512-vnni") in ("avx512-vnni", core.best_isa())
    finally:
        core.set_isa(before)
