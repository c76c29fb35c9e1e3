"""Shared fixtures: the reference data beside the repository, and ISA levels."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Converted engines, exported default models and gate verdicts go to a cache of the test run's
# own (a read-only model folder such as ../shared keeps its engine there), never the user's.
if not os.environ.get("EMBEDRT_CACHE_DIR"):
    import atexit
    import shutil
    import tempfile

    _CACHE = tempfile.mkdtemp(prefix="embedrt-test-cache-")
    os.environ["EMBEDRT_CACHE_DIR"] = _CACHE
    atexit.register(shutil.rmtree, _CACHE, True)


def _shared_dir() -> Path:
    env = os.environ.get("EMBEDRT_SHARED")
    return Path(env) if env else REPO.parent / "shared"


SHARED = _shared_dir()
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
REFERENCE = SHARED / "fixtures" / "minilm-reference"
CORPUS = SHARED / "fixtures" / "corpus"

_NO_SHARED = ("the reference model and fixtures (../shared beside the repository, or "
              "EMBEDRT_SHARED) are not present")


def subprocess_env(**extra) -> dict:
    """The environment for a child Python process that must import the same embedrt as this
    one (the installed package, or the source tree of an in-place build)."""
    import embedrt

    package_parent = str(Path(embedrt.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH", "")
    env = dict(os.environ, PYTHONPATH=package_parent + (os.pathsep + path if path else ""))
    env.update(extra)
    return env


def row_cosines(a, b):
    """Cosine of each row of a with the same row of b, in float64."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def copy_tiny_model(data: Path, name: str, tmp_path: Path, maker: str) -> Path:
    """A copy of a committed tiny checkpoint folder (loading may write a converted engine
    beside it); skips, naming the script that makes it, when the folder is absent."""
    import shutil

    if not (data / name / "reference.npz").is_file():
        pytest.skip(f"the tiny checkpoints ({data}) are not present; {maker} makes them")
    dst = tmp_path / name
    shutil.copytree(data / name, dst)
    return dst


def stored_probe(folder: Path):
    """The probe stored with a tiny checkpoint: (ids per text, pooled reference, the npz)."""
    import numpy as np

    ref = np.load(folder / "reference.npz")
    ids = np.split(ref["probe_ids"], np.cumsum(ref["probe_lengths"])[:-1])
    return ids, ref["probe_pooled"], ref


def stored_probe_hidden(folder: Path):
    """The stored probe with its last hidden states split per text: (ids, hidden, the npz)."""
    import numpy as np

    ids, _, ref = stored_probe(folder)
    hidden = np.split(ref["probe_hidden"], np.cumsum(ref["probe_lengths"])[:-1])
    return ids, hidden, ref


def edit_config(folder: Path, **changes) -> None:
    """Updates the keys of folder/config.json."""
    import json

    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def rewrite_checkpoint(folder: Path, edit) -> None:
    """folder/model.safetensors with `edit(tensors)` applied (a dict name -> array)."""
    import numpy as np

    from embedrt.encoder.safetensors_io import read_safetensors
    from test_export import write_safetensors

    tensors = {k: np.array(v) for k, v in read_safetensors(folder / "model.safetensors").items()}
    edit(tensors)
    write_safetensors(folder / "model.safetensors", tensors)


@pytest.fixture
def auto_native(monkeypatch):
    """backend="auto" chooses the native engine at this CPU's level (auto's level table would
    send an AVX2-only CPU to onnxruntime), so the gate and its fallback are tested on every CPU."""
    import embedrt
    from embedrt.encoder import backend

    monkeypatch.setattr(backend, "AUTO_NATIVE_LEVELS", (embedrt.cpu_info()["isa"],))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    if not (MINILM / "onnx" / "model.onnx").is_file():
        pytest.skip(_NO_SHARED)
    return MINILM


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE / "embeddings.npy").is_file():
        pytest.skip(_NO_SHARED)
    return REFERENCE


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "stdlib_docstrings.minilm.npy").is_file():
        pytest.skip(_NO_SHARED)
    return CORPUS


def isa_levels() -> list:
    """The ISA levels this CPU can run, highest first (what EMBEDRT_ISA allows is the top)."""
    import embedrt._core as core

    order = ["avx512", "avx512-vnni", "avx512-skx", "avx2", "neon", "scalar"]
    best = core.best_isa()
    compiled = set(core.compiled_isas())
    arm = best == "neon"
    out = []
    for level in order[order.index(best):]:
        if level in compiled and (level == "scalar" or (level == "neon") == arm):
            out.append(level)
    return out


@contextlib.contextmanager
def forced_isa(level: str):
    """Runs the body with kernels forced to `level`, then restores the previous level."""
    import embedrt._core as core

    before = core.isa()
    got = core.set_isa(level)
    assert got == level, f"could not force ISA {level} (got {got})"
    try:
        yield
    finally:
        core.set_isa(before)


@pytest.fixture(params=isa_levels())
def isa(request):
    """Parametrizes a test over every ISA level this CPU can run."""
    with forced_isa(request.param):
        yield request.param
