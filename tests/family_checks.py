"""Checks every encoder family's tiny checkpoint folder passes on the native engine (and on
onnxruntime through its cached export), against the folder's reference.npz; the family test
modules call them with their folder and sizes."""
from __future__ import annotations

import numpy as np

from conftest import edit_config, rewrite_checkpoint, row_cosines, stored_probe_hidden


def native_matches_reference(folder, precision: str, tol: float, limit: int, dim: int) -> None:
    """The engine on the stored probe, mean-pooled, against the reference; a second load comes
    from the engine cache and gives the same rows."""
    from embedrt.encoder.native import NativeBackend

    ids, _, ref = stored_probe_hidden(folder)
    b = NativeBackend.from_model_dir(folder, precision=precision)
    assert b.verdict.passed is True and b.verdict.reference == "numpy"
    assert b.max_position == limit and b.dim == dim
    got = b.embed(ids, None, "mean")
    cos = row_cosines(got, ref["probe_pooled"])
    assert cos.min() >= tol, (precision, cos)
    if precision == "fp32":
        np.testing.assert_allclose(got, ref["probe_pooled"], atol=1e-4)
    again = NativeBackend.from_model_dir(folder, precision=precision)
    assert again.load_info["cached"] is True
    np.testing.assert_array_equal(again.embed(ids, None, "mean"), got)


def token_types_are_row_zero_unless_given(folder) -> None:
    """No token_type_ids: row 0 of the table; type 1 is another model input, and the engine
    takes it."""
    from embedrt.encoder.native import NativeBackend

    ids, _, ref = stored_probe_hidden(folder)
    b = NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    zeros = b.embed(ids, [np.zeros(len(s), np.int64) for s in ids], "mean")
    np.testing.assert_array_equal(zeros, b.embed(ids, None, "mean"))
    ones = b.embed(ids, [np.ones(len(s), np.int64) for s in ids], "mean")
    assert row_cosines(ones, ref["probe_pooled"]).min() < 0.999


def isa_paths_agree(folder, isa) -> None:
    from embedrt.encoder.native import NativeBackend

    ids, _, ref = stored_probe_hidden(folder)
    for precision, tol in (("fp32", 0.99999), ("int8", 0.99)):
        b = NativeBackend.from_model_dir(folder, precision=precision, cache=False)
        assert b.verdict.passed is True
        cos = row_cosines(b.embed(ids, None, "mean"), ref["probe_pooled"])
        assert cos.min() >= tol, (isa, precision, cos)


def encoder_runs_the_folder(folder, backend: str, dim: int, limit: int) -> None:
    """Encoder(folder) runs the checkpoint on the native int8 engine, within the issue's bars
    of the reference embeddings of the texts."""
    import embedrt

    ref = np.load(folder / "reference.npz")
    texts = [str(t) for t in ref["texts"]]
    enc = embedrt.Encoder(folder, backend=backend)
    info = enc.backend_info
    assert info["backend"] == "native" and info["precision"] == "int8" and info["gate"]["passed"] is True
    assert enc.dim == dim and enc.max_seq_length == limit
    assert [len(x) for x in enc.tokenize(texts)] == ref["lengths"].tolist()
    cos = row_cosines(enc.encode(texts), ref["embeddings"])
    assert cos.min() >= 0.99 and cos.mean() >= 0.997, (cos.min(), cos.mean())


def fp32_encoding_of_texts_matches(folder, limit: int) -> None:
    import embedrt
    from embedrt.encoder.native import NativeBackend

    ref = np.load(folder / "reference.npz")
    enc = embedrt.Encoder(folder, backend="native")
    ids = enc.tokenize([str(t) for t in ref["texts"]])
    assert max(len(x) for x in ids) == limit  # one text truncated at the position limit
    got = NativeBackend.from_model_dir(folder, precision="fp32").embed(ids, None, "mean")
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    assert row_cosines(got, ref["embeddings"]).min() >= 0.99999
    np.testing.assert_allclose(got, ref["embeddings"], atol=1e-4)


def a_text_does_not_depend_on_its_batch_mates(folder, lengths: int = 10) -> None:
    """Alone, together, shuffled in batches of 5: the same rows; the texts have more than
    `lengths` distinct token counts (the batches mix lengths)."""
    import embedrt

    texts = [str(t) for t in np.load(folder / "reference.npz")["texts"]]
    enc = embedrt.Encoder(folder, backend="native")
    assert len({len(x) for x in enc.tokenize(texts)}) > lengths
    together = enc.encode(texts, batch_size=len(texts))
    alone = np.stack([enc.encode([t], batch_size=1)[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    shuffled = [texts[i] for i in np.random.default_rng(0).permutation(len(texts))]
    by_text = dict(zip(shuffled, enc.encode(shuffled, batch_size=5)))
    np.testing.assert_allclose(np.stack([by_text[t] for t in texts]), alone, atol=1e-6)


def onnxruntime_runs_the_exported_graph(folder) -> None:
    import embedrt

    enc = embedrt.Encoder(folder, backend="onnxruntime")  # the graph exported into the cache
    assert enc.backend_info["backend"] == "onnxruntime" and not (folder / "onnx").exists()
    ref = np.load(folder / "reference.npz")
    assert row_cosines(enc.encode([str(t) for t in ref["texts"]]), ref["embeddings"]).min() >= 0.99999


def a_checkpoint_under_a_prefix_loads(folder, prefix: str = "bert.") -> None:
    from embedrt.encoder.native import NativeBackend

    ids, _, ref = stored_probe_hidden(folder)

    def add(t):
        for k in list(t):
            t[prefix + k] = t.pop(k)

    rewrite_checkpoint(folder, add)
    b = NativeBackend.from_model_dir(folder, precision="fp32", cache=False)
    np.testing.assert_allclose(b.embed(ids, None, "mean"), ref["probe_pooled"], atol=1e-4)


def a_config_the_engine_cannot_run_is_refused(folder, change: dict, match: str) -> None:
    """config.json with `change`: the native engine refuses it naming the field; without an
    ONNX graph, auto has nothing to fall back to and says why too."""
    import pytest

    import embedrt
    from embedrt.encoder._native_load import NotRecognized
    from embedrt.encoder.native import NativeBackend

    edit_config(folder, **change)
    with pytest.raises(NotRecognized, match=match):
        NativeBackend.from_model_dir(folder)
    with pytest.raises(NotRecognized, match=match):
        embedrt.Encoder(folder, backend="auto")


def a_missing_field_is_refused(folder, key: str, match: str) -> None:
    """config.json without `key`: the family's published default, which the engine refuses."""
    import json

    import pytest

    from embedrt.encoder._native_load import NotRecognized
    from embedrt.encoder.native import NativeBackend

    cfg = json.loads((folder / "config.json").read_text())
    del cfg[key]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(NotRecognized, match=match):
        NativeBackend.from_model_dir(folder)
