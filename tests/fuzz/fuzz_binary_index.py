"""Fuzz harness: BinaryIndex.load (mmap=True/False, verify) on arbitrary bytes, then verify() and a
search. Run through tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    import numpy as np
    from _indexes import MAX_QUERY_DIM, exercise, float_query, write  # noqa: F401

    import embedrt

PATH = workdir() / "f.idx"


def query(ix):
    return None if ix.code_size > MAX_QUERY_DIM else np.full((1, ix.code_size), 0x5A, np.uint8)


def one_input(data: bytes) -> None:
    write(PATH, data)
    exercise(embedrt.BinaryIndex, PATH, query)


if __name__ == "__main__":
    main(one_input)
