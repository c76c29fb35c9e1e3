"""Fuzz harness: ResidualBinarizer.load on arbitrary bytes, then encode. Run through
tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    from _indexes import float_query, write

    import embedrt

PATH = workdir() / "f.rb"


def one_input(data: bytes) -> None:
    write(PATH, data)
    b = embedrt.ResidualBinarizer.load(PATH)
    q = float_query(b.dim)
    if q is not None:
        b.encode(q)


if __name__ == "__main__":
    main(one_input)
