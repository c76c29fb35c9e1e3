"""Fuzz harness: the model-folder config readers (embedrt.encoder.model_dir.read_model_folder,
the native engine's config.json reader read_hf_config) on a copy of tests/data's tiny-bert
folder in which one file is replaced: the input's first byte picks config.json, modules.json,
sentence_bert_config.json, 1_Pooling/config.json or config_sentence_transformers.json, the rest
is its contents. Run through tests/fuzz/run.py."""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA, instrumented, main, workdir  # noqa: E402

with instrumented():
    from embedrt.encoder._native_load import read_hf_config
    from embedrt.encoder.model_dir import read_model_folder

FILES = ("config.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json",
         "config_sentence_transformers.json")
FOLDER = workdir() / "tiny-bert"
shutil.copytree(DATA / "tiny-bert", FOLDER, ignore=shutil.ignore_patterns("*.onnx", "*.data", "*.npz"))
(FOLDER / "onnx" / "model.onnx").write_bytes(b"")  # present: the readers only look for it
ORIGINAL = {name: (FOLDER / name).read_bytes() for name in FILES}


def one_input(data: bytes) -> None:
    if not data:
        return
    name = FILES[data[0] % len(FILES)]
    (FOLDER / name).write_bytes(data[1:])
    try:
        errors = 0
        for call in (lambda: read_model_folder(FOLDER), lambda: read_model_folder(FOLDER, require_onnx=False),
                     lambda: read_hf_config(FOLDER)):
            try:
                call()
            except ValueError:
                errors += 1
        if errors:
            raise ValueError("refused")
    finally:
        (FOLDER / name).write_bytes(ORIGINAL[name])


if __name__ == "__main__":
    main(one_input)
