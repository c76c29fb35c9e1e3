"""Fuzz harness: SDCIndex.load (mmap=True/False, verify) on arbitrary bytes, then verify() and a
search. Run through tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():

    from _indexes import MAX_QUERY_DIM, exercise, float_query, write  # noqa: F401

    import embedrt

PATH = workdir() / "f.idx"


def query(ix):
    return float_query(ix.dim)


def one_input(data: bytes) -> None:
    write(PATH, data)
    exercise(embedrt.SDCIndex, PATH, query)


if __name__ == "__main__":
    main(one_input)
