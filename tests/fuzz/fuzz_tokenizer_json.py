"""Fuzz harness: a model folder's tokenizer.json as embedrt reads it (embedrt.encoder.tokenize.
TextTokenizer, then a few texts tokenized; the special-token reader special_ids). Run through
tests/fuzz/run.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import instrumented, main, workdir  # noqa: E402

with instrumented():
    import json

    from _indexes import write

    from embedrt.encoder.tokenize import TextTokenizer, special_ids

PATH = workdir() / "tokenizer.json"
TEXTS = ["hello world", "", "\u00e9t\u00e9 \U0001f600 " * 20]


def one_input(data: bytes) -> None:
    write(PATH, data)
    try:
        special_ids(json.loads(data.decode("utf-8")))
    except (ValueError, RecursionError):
        pass  # the JSON itself is the caller's to parse (native._special_ids catches these)
    for lowercase in (False, True):
        tok = TextTokenizer(PATH, max_length=16, lowercase=lowercase)
        tok.ids(TEXTS)
        tok.count(TEXTS[2])


if __name__ == "__main__":
    main(one_input)
