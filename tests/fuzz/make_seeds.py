"""Writes the seed corpus of the fuzz harnesses (tests/fuzz/corpus/<harness>/) with embedrt's
own writers: small valid files of every format, so that the fuzzer starts from inputs that get
past the magic and the checksums. Run it again after a format changes:

    python tests/fuzz/make_seeds.py
"""
from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "export_corpus"
CORPUS = HERE / "corpus"


def _put(harness: str, data: bytes) -> None:
    d = CORPUS / harness
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def _saved(obj, tmp: Path) -> bytes:
    p = tmp / "seed.bin"
    obj.save(p)
    return p.read_bytes()


def indexes(tmp: Path, rng) -> None:
    import embedrt

    for nbits, n in ((16, 4), (50, 3), (8, 0)):
        b = embedrt.BinaryIndex(nbits)
        if n:
            b.add(rng.integers(0, 256, (n, (nbits + 7) // 8), dtype=np.uint8))
        _put("binary_index", _saved(b, tmp))
    for dim, n in ((8, 5), (3, 1)):
        i8 = embedrt.Int8Index(dim)
        i8.add(rng.standard_normal((n, dim)).astype(np.float32))
        _put("int8_index", _saved(i8, tmp))
    for dim, bits in ((16, 2), (10, 1)):
        s = embedrt.SDCIndex(dim, bits=bits)
        s.add(rng.standard_normal((12, dim)).astype(np.float32))
        _put("sdc_index", _saved(s, tmp))
    for kw in ({}, {"coarse": "sdc"}, {"coarse": None}, {"rescore": None}):
        two = embedrt.Index(8, **kw)
        two.add(rng.standard_normal((6, 8)).astype(np.float32))
        _put("two_stage_index", _saved(two, tmp))
    for kw in ({"bits": 2}, {"bits": 1, "rotate": False}):
        rb = embedrt.ResidualBinarizer(**kw).fit(rng.standard_normal((20, 12)).astype(np.float32))
        _put("binarizer", _saved(rb, tmp))


def converted_models(tmp: Path, rng) -> None:
    from embedrt import _fileformat
    from embedrt.encoder import arch, native
    from embedrt.encoder._native_load import LAYER_KEYS

    cfg = {"vocab": 12, "hidden": 8, "heads": 2, "intermediate": 16, "layers": 1, "max_position": 6,
           "type_vocab": 2, "eps": 1e-12}
    h, inter = cfg["hidden"], cfg["intermediate"]
    shapes = {"q_w": (h, h), "k_w": (h, h), "v_w": (h, h), "ao_w": (h, h), "up_w": (inter, h),
              "down_w": (h, inter), "up_b": (inter,)}
    params = {"word": (12, h), "pos": (6, h), "type": (2, h), "emb_g": (h,), "emb_b": (h,)}
    params.update({f"0.{k}": shapes.get(k, (h,)) for k in LAYER_KEYS})
    params = {k: (0.1 * rng.standard_normal(s)).astype(np.float32) for k, s in params.items()}
    absmax = np.ones(h, np.float32)
    absmax[3] = 50.0  # one outlier channel: the int8 file then holds outlier sections too
    stats = {"0.qkv": absmax, "0.attn_out": absmax, "0.up": absmax,
             "0.down": np.ones(inter, np.float32)}
    for precision in native.PRECISIONS:
        arrays = native.prepare_arrays(cfg, params, precision, stats)
        meta = {"config": {k: cfg[k] for k in native._CFG_KEYS}, "eps": cfg["eps"], "spec": arch.spec_of(cfg),
                "precision": precision, "source": "model.onnx"}
        p = tmp / f"m.{precision}.embedrt"
        _fileformat.write_file(p, native.FILE_KIND, native.FILE_VERSION, meta, arrays)
        _put("converted_model", p.read_bytes())


def safetensors(rng) -> None:
    """The safetensors layout (an 8-byte header length, the JSON header, the data), as the
    Hugging Face writer lays it out."""
    tensors = {"w": rng.standard_normal((3, 4)).astype(np.float32).tobytes(),
               "h": np.arange(6, dtype=np.float16).tobytes(),
               "b": (np.arange(4, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes(),
               "i": np.arange(2, dtype=np.int64).tobytes()}
    kinds = {"w": ("F32", [3, 4]), "h": ("F16", [2, 3]), "b": ("BF16", [4]), "i": ("I64", [2])}
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, raw in tensors.items():
        header[name] = {"dtype": kinds[name][0], "shape": kinds[name][1], "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    _put("safetensors", struct.pack("<Q", len(head)) + head + b"".join(tensors.values()))
    _put("safetensors", struct.pack("<Q", 2) + b"{}")


def folders() -> None:
    files = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
             "config_sentence_transformers.json")  # the order fuzz_model_folder.py picks them in
    for i, name in enumerate(files):
        _put("model_folder", bytes([i]) + (DATA / "tiny-bert" / name).read_bytes())
    _put("tokenizer_json", (DATA / "tiny-bert" / "tokenizer.json").read_bytes())
    _put("tokenizer_json", json.dumps({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[PAD]": 0, "a": 1},
                                                                    "unk_token": "[PAD]"}}).encode())


def texts() -> None:
    _put("cli_input", b"first text\nsecond text\r\n\n  \nthird\n")
    _put("cli_input", b'{"text": "a", "body": "b"}\n"plain"\n\n{"text": "\\u00e9t\\u00e9", "body": "x"}\n')
    _put("cli_input", b'{"text": "a"}\n{"body": ' + b"[" * 3000 + b"]" * 3000 + b"}\n")  # nesting the parser refuses


def onnx_steering(rng) -> None:
    for _ in range(12):  # the harness reads these as mutation choices
        _put("onnx_graph", rng.integers(0, 256, 48, dtype=np.uint8).tobytes())


def main() -> int:
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    rng = np.random.default_rng(20261201)
    with tempfile.TemporaryDirectory() as tmp:
        indexes(Path(tmp), rng)
        converted_models(Path(tmp), rng)
    safetensors(rng)
    folders()
    texts()
    onnx_steering(rng)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"{CORPUS}: {sum(1 for _ in CORPUS.rglob('*') if _.is_file())} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
