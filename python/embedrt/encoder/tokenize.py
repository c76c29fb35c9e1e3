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


def _as_id(v):
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _vocab_id(model: dict, token: str):
    """The id of `token` in a tokenizer.json model's vocabulary: a mapping (WordPiece, BPE) or
    a list of [piece, score] (Unigram)."""
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if isinstance(vocab, dict):
        return _as_id(vocab.get(token))
    if isinstance(vocab, list):
        for i, entry in enumerate(vocab):
            if isinstance(entry, (list, tuple)) and entry and entry[0] == token:
                return i
    return None


def _template_end(template, specials, index: int):
    """The id of the special token at one end (0 or -1) of a TemplateProcessing template."""
    if not isinstance(template, list) or not template or not isinstance(specials, dict):
        return None
    item = template[index]
    name = item.get("SpecialToken", {}).get("id") if isinstance(item, dict) else None
    ids = specials.get(name, {}).get("ids") if isinstance(specials.get(name), dict) else None
    return _as_id(ids[0]) if isinstance(ids, list) and len(ids) == 1 else None


def _processor_ends(proc) -> tuple:
    """(first, last) special ids that a tokenizer.json post_processor puts around one text."""
    if not isinstance(proc, dict):
        return None, None
    kind = proc.get("type")
    if kind in ("BertProcessing", "RobertaProcessing"):
        cls, sep = proc.get("cls"), proc.get("sep")
        pick = lambda p: _as_id(p[1]) if isinstance(p, list) and len(p) == 2 else None  # noqa: E731
        return pick(cls), pick(sep)
    if kind == "TemplateProcessing":
        single, specials = proc.get("single"), proc.get("special_tokens")
        return _template_end(single, specials, 0), _template_end(single, specials, -1)
    if kind == "Sequence":
        for sub in proc.get("processors") or []:
            ends = _processor_ends(sub)
            if ends != (None, None):
                return ends
    return None, None


def special_ids(tokenizer_json: dict) -> tuple:
    """(CLS, SEP) ids of a parsed tokenizer.json: the tokens its post-processor puts before and
    after a text (BERT's [CLS] / [SEP], RoBERTa's and XLM-R's <s> / </s>), else those names in
    its vocabulary; None for what it does not say."""
    if not isinstance(tokenizer_json, dict):
        return None, None
    first, last = _processor_ends(tokenizer_json.get("post_processor"))
    if first is not None and last is not None:
        return first, last
    model = tokenizer_json.get("model")
    for cls_tok, sep_tok in (("[CLS]", "[SEP]"), ("<s>", "</s>")):
        cls_id, sep_id = _vocab_id(model, cls_tok), _vocab_id(model, sep_tok)
        if cls_id is not None and sep_id is not None:
            return cls_id, sep_id
    return None, None


class TextTokenizer:
    """Wraps a ``tokenizer.json``: no padding (embedrt pads per batch), truncation at
    ``max_length`` tokens (special tokens included)."""

    def __init__(self, path, max_length=None, lowercase: bool = False):
        from tokenizers import Tokenizer

        path = Path(path)
        self.path = path
        try:
            self._tok = Tokenizer.from_file(str(path))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # tokenizers raises a plain Exception (or panics) on malformed files
            raise ValueError(f"{path}: not a valid Hugging Face tokenizer file ({e})") from None
        self.pad_id = self._find_pad_id()
        self._tok.no_padding()
        self.lowercase = lowercase
        self.set_max_length(max_length)

    def _find_pad_id(self):
        """The id the tokenizer pads with: its padding settings' pad_id, else the id of its
        <pad> / [PAD] token; None when it has neither."""
        padding = self._tok.padding
        if isinstance(padding, dict) and _as_id(padding.get("pad_id")) is not None:
            return padding["pad_id"]
        for name in ("<pad>", "[PAD]"):
            tid = self._tok.token_to_id(name)
            if tid is not None:
                return int(tid)
        return None

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
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # a malformed file: tokenizers raises a plain Exception or panics
                raise self._cannot_encode(e) from None
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
        try:
            return len(self._tok.encode(text.lower() if self.lowercase else text).ids)
        except (TypeError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            raise self._cannot_encode(e) from None

    def _cannot_encode(self, e: Exception) -> ValueError:
        return ValueError(f"{self.path}: the tokenizer cannot encode the text ({e}); "
                          "the file is malformed (for example its unknown token is not in its vocabulary)")
