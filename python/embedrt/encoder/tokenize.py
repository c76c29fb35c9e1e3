"""Tokenization through Hugging Face `tokenizers`, without the file's own padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _check_text(t, where: str) -> None:
    """TypeError/ValueError naming `where` when `t` is not a str the tokenizer can take
    (tokenizers reports a lone surrogate only as a TypeError about its input type)."""
    if not isinstance(t, str):
        raise TypeError(f"{where} must be a str, got {type(t).__name__}")
    try:
        t.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{where} is not valid Unicode (lone surrogate at position {e.start})") from None


def _find_bad_text(texts, name: str) -> None:
    for i, t in enumerate(texts):
        _check_text(t, f"{name}[{i}]")


class TextTokenizer:
    """Wraps a ``tokenizer.json``: no padding (embedrt pads per batch), truncation at
    ``max_length`` tokens (special tokens included)."""

    def __init__(self, path, max_length=None, lowercase: bool = False):
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a plain Exception on malformed files
            raise ValueError(f"{path}: not a valid Hugging Face tokenizer file ({e})") from None
        self._tok.no_padding()
        self.lowercase = lowercase
        self.set_max_length(max_length)

    def set_max_length(self, max_length) -> None:
        self.max_length = max_length
        if max_length is None:
            self._tok.no_truncation()
        else:
            self._tok.enable_truncation(max_length=int(max_length))

    def ids(self, texts, chunk: int = 2048, name: str = "sentences") -> list:
        """Token ids of each text: a list of int64 arrays, unpadded.

        A text that is not a str raises TypeError, one that is not valid Unicode (a lone
        surrogate) ValueError, both naming it as ``name[i]``."""
        texts = list(texts)
        if self.lowercase:
            if not all(isinstance(t, str) for t in texts):
                _find_bad_text(texts, name)
            texts = [t.lower() for t in texts]
        out = []
        encode = getattr(self._tok, "encode_batch_fast", None) or self._tok.encode_batch
        for start in range(0, len(texts), chunk):
            part = texts[start:start + chunk]
            try:
                encoded = encode(part, add_special_tokens=True)
            except TypeError:
                # find and name the text (only on failure: the common path costs nothing)
                for i, t in enumerate(part):
                    _check_text(t, f"{name}[{start + i}]")
                raise
            for enc in encoded:
                out.append(np.array(enc.ids, dtype=np.int64))
        return out

    @property
    def vocab_size(self) -> int:
        """Ids this tokenizer can produce are below this (added tokens included)."""
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def count(self, text: str, name: str = "prompt") -> int:
        """Number of tokens of one text, special tokens included, before truncation limits apply."""
        _check_text(text, name)
        return len(self._tok.encode(text.lower() if self.lowercase else text).ids)
