"""Fuzz harness: the converted-model file (embedrt container, kind NativeEncoder) as the native
engine's loader reads it (embedrt.encoder.native._read_engine, then the C++ engine built from
its arrays), then one small embed. Run through tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    import numpy as np
    from _indexes import write

    from embedrt.encoder import native

PATH = workdir() / "m.int8.embedrt"
MAX_WORK = 1 << 24  # a model small enough to run once per input (larger ones are only loaded)


def one_input(data: bytes) -> None:
    write(PATH, data)
    for precision in ("int8", "fp32"):
        try:
            cfg, arrays, meta = native._read_engine(PATH, precision)
        except ValueError:
            continue
        backend = native.NativeBackend.from_arrays(cfg, arrays, precision, source=str(PATH))
        if cfg["hidden"] * max(cfg["intermediate"], cfg["hidden"]) * cfg["layers"] <= MAX_WORK:
            n = max(1, min(cfg["vocab"], 4))
            ids = [np.arange(min(3, backend.max_position), dtype=np.int64) % n]
            backend.embed(ids)
        del backend, arrays


if __name__ == "__main__":
    main(one_input)
