"""fastText: subword (character n-gram) ids, as ``Dictionary::computeSubwords``."""
from __future__ import annotations

from .. import _core
from .._checks import as_int


def fasttext_subword_ids(words, minn: int = 3, maxn: int = 6, bucket: int = 2_000_000,
                         nwords: int = 0, as_list: bool = False):
    """fastText's subword (character n-gram) ids, as ``Dictionary::computeSubwords``.

    For each word, the n-grams of ``"<" + word + ">"`` with ``minn <= n <= maxn`` UTF-8
    characters (a byte ``(c & 0xC0) == 0x80`` never starts one; the 1-grams ``"<"`` and
    ``">"`` alone are skipped), in fastText's order (by start, then length), each
    ``nwords + fnv1a(ngram) % bucket`` with fastText's FNV-1a 32-bit hash over bytes
    sign-extended through int8.

    ``nwords`` is the model's vocabulary size (``len(model.words)``), so the ids index the
    input matrix directly. fastText's ``get_subwords(word)`` puts the word's own id first
    when the word is in the vocabulary; these ids are only the n-grams. fastText's
    end-of-sentence token ``"</s>"`` has no n-grams.

    words: a str or a sequence of str.
    Returns ``(ids, offsets)``: ids int64 flat, offsets int64 [len(words) + 1], word i's ids
    are ``ids[offsets[i]:offsets[i + 1]]`` (ready for :func:`embedding_bag`). With
    ``as_list=True``, a list of int64 arrays. A single str gives its int64 ids array.
    """
    minn = as_int(minn, "minn", minimum=0)
    maxn = as_int(maxn, "maxn", minimum=0)
    bucket = as_int(bucket, "bucket", minimum=1)
    if bucket >= 2 ** 31:
        raise ValueError(f"bucket must be < 2**31 (fastText's int32), got {bucket}")
    nwords = as_int(nwords, "nwords", minimum=0)
    single = isinstance(words, str)
    if single:
        words = [words]
    elif isinstance(words, (bytes, bytearray)):
        raise TypeError("words: expected str or a sequence of str, got bytes (decode it first)")
    if not isinstance(words, (list, tuple)):
        words = list(words)
    ids, offs = _core.fasttext_subwords(words, minn, maxn, bucket, nwords)
    if single:
        return ids
    if as_list:
        return [ids[offs[i]:offs[i + 1]] for i in range(len(words))]
    return ids, offs
