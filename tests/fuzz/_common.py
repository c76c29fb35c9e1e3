"""Shared pieces of the atheris harnesses (tests/fuzz/fuzz_*.py).

A harness is a function of one bytes input. It writes the bytes where its loader reads (one
file per process, reused), calls the loader and uses what it returns. The loader may refuse the
input only with the exceptions its documentation names (ValueError and its subclasses:
ModelFolderError, SafetensorsError, NotRecognized, UnicodeDecodeError, json's errors); any other
exception, a crash, a hang past libFuzzer's -timeout or memory past -rss_limit_mb is a finding.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = ROOT / "tests" / "data" / "export_corpus"


def workdir() -> Path:
    """A scratch folder for this process (the runner passes one in EMBEDRT_FUZZ_TMP)."""
    base = os.environ.get("EMBEDRT_FUZZ_TMP")
    d = Path(tempfile.mkdtemp(prefix="embedrt-fuzz-", dir=base))
    return d


def instrumented():
    """Context manager: the project's Python modules imported under it are instrumented for
    coverage (the native extension is not: it is checked for crashes, not steered)."""
    return atheris.instrument_imports(include=["embedrt"])


def main(one_input, accepted=(ValueError,)) -> None:
    """Runs libFuzzer over `one_input`; exceptions in `accepted` are the documented refusals."""

    def wrapped(data: bytes) -> None:
        try:
            one_input(data)
        except accepted:
            pass

    # libFuzzer reads its flags from argv; the runner (tests/fuzz/run.py) fills them in
    atheris.Setup(sys.argv, wrapped)
    atheris.Fuzz()
