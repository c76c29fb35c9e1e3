"""Fuzz harness: the safetensors reader (embedrt.encoder.safetensors_io.read_safetensors), with
and without the float32 conversion. Run through tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    import numpy as np
    from _indexes import write

    from embedrt.encoder.safetensors_io import read_safetensors

PATH = workdir() / "model.safetensors"


def one_input(data: bytes) -> None:
    write(PATH, data)
    for float32 in (True, False):
        tensors = read_safetensors(PATH, float32=float32)
        for arr in tensors.values():
            np.asarray(arr).sum()  # every byte the reader mapped is readable
        del tensors


if __name__ == "__main__":
    main(one_input)
