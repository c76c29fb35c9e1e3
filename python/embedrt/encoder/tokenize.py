"""Tokenization through Hugging Face `tokenizers`, without the file's own padding."""
from __future__ import annotations

from pathlib import Path

import numpy as np


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

    def ids(self, texts, chunk: int = 2048) -> list:
        """Token ids of each text: a list of int64 arrays, unpadded."""
        if self.lowercase:
            texts = [t.lower() for t in texts]
        out = []
        encode = getattr(self._tok, "encode_batch_fast", None) or self._tok.encode_batch
        for start in range(0, len(texts), chunk):
            for enc in encode(texts[start:start + chunk], add_special_tokens=True):
                out.append(np.array(enc.ids, dtype=np.int64))
        return out

    def count(self, text: str) -> int:
        """Number of tokens of one text, special tokens included, before truncation limits apply."""
        return len(self._tok.encode(text.lower() if self.lowercase else text).ids)
