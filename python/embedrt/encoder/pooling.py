"""Pooling of per-token outputs into one vector per text, as sentence-transformers' Pooling does.

Inputs are right-padded: ``tokens`` float32 [batch, seq, dim] and ``lengths`` (the number of real
tokens of each row). ``skip`` leading tokens (a prompt, with ``include_prompt=False``) are left out
of the pooling but still attended to. Several modes are concatenated in the order given.
"""
from __future__ import annotations

import numpy as np


def pool(tokens: np.ndarray, lengths: np.ndarray, modes, skip: int = 0) -> np.ndarray:
    """Pooled float32 [batch, dim * len(modes)]."""
    if isinstance(modes, str):
        modes = modes.split("+")
    b, s, d = tokens.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    positions = np.arange(s)
    mask = positions[None, :] < lengths[:, None]
    if skip:
        mask &= positions[None, :] >= skip
    out = []
    count = None
    mean_sum = None
    for mode in modes:
        if mode in ("mean", "mean_sqrt_len_tokens", "mean_sqrt_len"):
            if mean_sum is None:
                m = mask.astype(np.float32)
                # [b, 1, s] @ [b, s, d] -> [b, 1, d]: one batched matrix product
                mean_sum = np.matmul(m[:, None, :], tokens)[:, 0, :]
                count = np.maximum(m.sum(axis=1, keepdims=True), 1e-9)
            out.append(mean_sum / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "cls":
            first = np.argmax(mask, axis=1) if skip else np.zeros(b, dtype=np.int64)
            out.append(tokens[np.arange(b), first])
        elif mode == "max":
            masked = np.where(mask[:, :, None], tokens, np.float32(-np.inf))
            out.append(masked.max(axis=1) if s else np.full((b, d), -np.inf, np.float32))
        elif mode == "weightedmean":
            w = mask * (positions[None, :] + 1).astype(np.float32)
            w = w.astype(np.float32)
            total = np.matmul(w[:, None, :], tokens)[:, 0, :]
            out.append(total / np.maximum(w.sum(axis=1, keepdims=True), 1e-9))
        elif mode == "lasttoken":
            # the last position the (pooling) mask keeps; position s-1 when it keeps none
            last = np.where(mask.any(axis=1), s - 1 - np.argmax(mask[:, ::-1], axis=1), s - 1)
            vec = tokens[np.arange(b), last] * mask[np.arange(b), last][:, None]
            out.append(vec)
        else:
            raise ValueError(f"unknown pooling mode {mode!r}")
    res = out[0] if len(out) == 1 else np.concatenate(out, axis=1)
    return np.ascontiguousarray(res, dtype=np.float32)
