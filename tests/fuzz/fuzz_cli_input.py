"""Fuzz harness: the texts `embedrt encode` reads (embedrt.cli._read_texts) from --input FILE
and from stdin, as lines and as JSON lines. A refusal is a ValueError (exit 1) or the CLI's
usage error (exit 2). Run through tests/fuzz/run.py."""
import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    from _indexes import write

    from embedrt import cli

DIR = workdir()
PATHS = {"lines": DIR / "texts.txt", "jsonl": DIR / "texts.jsonl"}


def _args(**kw):
    base = dict(texts=[], input=None, input_format="auto", field="text")
    base.update(kw)
    return argparse.Namespace(**base)


def one_input(data: bytes) -> None:
    refused = 0
    calls = []
    for fmt, path in PATHS.items():
        calls.append((_args(input=str(path)), None))
        calls.append((_args(input=str(path), input_format=fmt, field="body"), None))
    calls.append((_args(input="-", input_format="jsonl"), data))
    calls.append((_args(input="-", input_format="lines"), data))
    calls.append((_args(texts=["-"]), data))
    for path in PATHS.values():
        write(path, data)
    for args, stdin in calls:
        old = sys.stdin
        if stdin is not None:
            sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        try:
            texts = cli._read_texts(args)
            assert all(isinstance(t, str) for t in texts)
        except (ValueError, cli._UsageError):
            refused += 1
        finally:
            sys.stdin = old
    if refused:
        raise ValueError("refused")


if __name__ == "__main__":
    main(one_input)
